"""Run a measured command as a child process: wall time, CPU time and peak RSS of that child.

The numbers come from wait4(2), the kernel's own account of the child (and of any
descendants it waited for), taken by bench_rusage.py, a tiny stdlib-only process that
forks the command: see there why the harness does not fork it itself.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

RUSAGE = Path(__file__).resolve().parent / "bench_rusage.py"


class MeasuredProcessError(RuntimeError):
    """A measured command failed: its exit code and the tail of its output."""


@dataclass(frozen=True)
class ProcessStats:
    """What the kernel reports about one finished child process."""

    wall_s: float
    cpu_s: float  # user + system, all threads
    peak_rss_mb: float  # MiB
    returncode: int
    stdout: str
    stderr: str


def run_measured(
    command: list[str],
    log_dir: Path,
    name: str,
    timeout_s: float,
    cwd: Path | None = None,
) -> ProcessStats:
    """Run a command to completion; its output goes to log_dir/name.out and .err."""
    log_dir.mkdir(parents=True, exist_ok=True)
    out_path, err_path = log_dir / f"{name}.out", log_dir / f"{name}.err"
    result = log_dir / f"{name}.rusage.json"
    result.unlink(missing_ok=True)
    wrapped = [sys.executable, "-S", str(RUSAGE), str(result), *command]
    with out_path.open("wb") as out, err_path.open("wb") as err:
        # Its own session: a timeout or Ctrl-C stops the whole process group, nothing else.
        process = subprocess.Popen(wrapped, stdout=out, stderr=err, cwd=cwd, start_new_session=True)
        try:
            process.wait(timeout_s)
        except BaseException as exc:  # a timeout, Ctrl-C: leave no measured process behind
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            if isinstance(exc, subprocess.TimeoutExpired):
                raise MeasuredProcessError(f"{name} timed out after {timeout_s:g} s") from None
            raise
    return _stats(result, out_path, err_path, process.returncode)


def _stats(result: Path, out_path: Path, err_path: Path, wrapper_code: int) -> ProcessStats:
    stdout = out_path.read_text(encoding="utf-8", errors="replace")
    stderr = err_path.read_text(encoding="utf-8", errors="replace")
    if not result.exists():
        raise MeasuredProcessError(f"the measuring wrapper failed ({wrapper_code}):\n{stderr}")
    usage = json.loads(result.read_text(encoding="utf-8"))
    return ProcessStats(
        wall_s=usage["wall_s"],
        cpu_s=usage["cpu_s"],
        peak_rss_mb=usage["peak_rss_kib"] / 1024,
        returncode=usage["returncode"],
        stdout=stdout,
        stderr=stderr,
    )


def check_ok(stats: ProcessStats, what: str) -> ProcessStats:
    """Raise with the output's tail when the command did not exit 0."""
    if stats.returncode != 0:
        tail = "\n".join((stats.stdout + stats.stderr).splitlines()[-25:])
        raise MeasuredProcessError(f"{what} exited with {stats.returncode}:\n{tail}")
    return stats
