"""Run one command and write its wall time, CPU time and peak RSS as JSON.

    python -S benchmarks/bench_rusage.py RESULT.json COMMAND [ARGS...]

Why a separate, tiny process: Linux carries a process's peak RSS across exec(), so a
command started straight from the benchmark harness (hundreds of MB, DuckDB and Arrow
loaded) would report at least the harness's own peak. Forked from this stdlib-only
process, the command's peak RSS is its own (give or take this process's ~10 MB).
"""

from __future__ import annotations

import json
import os
import sys
import time


def main() -> int:
    result, command = sys.argv[1], sys.argv[2:]
    start = time.perf_counter()
    pid = os.fork()
    if pid == 0:  # the child: become the measured command
        try:
            os.execvp(command[0], command)
        finally:
            os._exit(127)
    _, status, usage = os.wait4(pid, 0)
    wall = time.perf_counter() - start
    code = os.waitstatus_to_exitcode(status)
    stats = {
        "wall_s": wall,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "peak_rss_kib": usage.ru_maxrss,  # KiB on Linux
        "returncode": code,
    }
    with open(result, "w", encoding="utf-8") as file:
        json.dump(stats, file)
    return 0 if code == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
