"""Finding ``initdb`` and ``postgres``, and copying them where the server's user can run them.

They come from the ``pgserver`` wheel (a dev extra; only its files are used, never its
server management) or, without it (no wheel for Python 3.13+), from Debian's
``postgresql`` package, newest major version first.
"""

from __future__ import annotations

import hashlib
import importlib.util
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from local_servers import processes
from local_servers.postgres.errors import PostgresLocalError
from local_servers.postgres.service_user import Account, run_as

# Where pgserver's binaries are copied when the service user cannot reach them (root only).
SHARED_BIN_CACHE = Path("/var/cache/dbt-kafka-sync")


@dataclass(frozen=True)
class Binaries:
    """A PostgreSQL installation: the ``bin`` directory with initdb and postgres, its version."""

    bin_dir: Path
    version: str


def _candidates() -> list[Path]:
    """The ``bin`` directories to try: pgserver's (found without importing it), then Debian's."""
    try:
        spec = importlib.util.find_spec("pgserver")
    except (ImportError, ValueError):
        spec = None
    wheel = [Path(p) / "pginstall/bin" for p in (spec and spec.submodule_search_locations) or []]
    debian = Path("/usr/lib/postgresql").glob("*/bin")
    by_major = sorted(debian, key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0)
    return wheel + by_major[::-1]


def _version(postgres: Path, account: Account | None) -> str | None:
    """Return what ``postgres --version`` says when ``account`` runs it; None if it cannot."""
    try:
        result = subprocess.run(
            [str(postgres), "--version"],
            capture_output=True,
            text=True,
            cwd="/",  # the caller's may be out of the account's reach
            check=True,
            **run_as(account),
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return str(result.stdout).split()[2]  # "postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)"


def _shared_copy(bin_dir: Path) -> Path:
    """Copy pgserver's binaries to :data:`SHARED_BIN_CACHE`; return the copy's ``bin``.

    A virtualenv under ``/root`` (mode 0700) is out of the service user's reach. The copy
    keeps the wheel's layout: the binaries find the libraries auditwheel vendored through
    ``RPATH $ORIGIN/../../../pgserver.libs``.
    """
    install = bin_dir.parent  # .../site-packages/pgserver/pginstall
    package = install.parent
    stamp = f"{install}\0{(bin_dir / 'postgres').stat().st_mtime_ns}"
    target = SHARED_BIN_CACHE / f"pgserver-{hashlib.sha256(stamp.encode()).hexdigest()[:12]}"
    SHARED_BIN_CACHE.mkdir(parents=True, exist_ok=True)
    with processes.file_lock(SHARED_BIN_CACHE / ".lock"):  # parallel workers copy once
        if not (target / ".complete").is_file():
            shutil.rmtree(target, ignore_errors=True)
            shutil.copytree(install, target / package.name / install.name, symlinks=True)
            vendored = package.parent / f"{package.name}.libs"
            if vendored.is_dir():
                shutil.copytree(vendored, target / vendored.name, symlinks=True)
            (target / ".complete").touch()
    return target / package.name / install.name / bin_dir.name


def find_binaries(account: Account | None = None) -> Binaries:
    """Return the first installation whose ``postgres --version`` runs as ``account``."""
    for bin_dir in _candidates():
        if not ((bin_dir / "initdb").is_file() and (bin_dir / "postgres").is_file()):
            continue
        version = _version(bin_dir / "postgres", account)
        if version is None and account is not None and bin_dir.parent.name == "pginstall":
            bin_dir = _shared_copy(bin_dir)
            version = _version(bin_dir / "postgres", account)
        if version is not None:
            return Binaries(bin_dir.resolve(), version)
    raise PostgresLocalError(
        "no runnable PostgreSQL binaries: install the dev extras or Debian's postgresql package"
    )
