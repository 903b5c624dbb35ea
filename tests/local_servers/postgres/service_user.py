"""Running the server as an unprivileged system user when this process is root.

PostgreSQL refuses to run as root (as in CI containers), so ``initdb`` and ``postgres``
then run as ``dks_postgres``, created on first use.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import subprocess
from pathlib import Path
from typing import Any

from local_servers.postgres.errors import PostgresLocalError

SERVICE_USER = "dks_postgres"

Account = pwd.struct_passwd


def service_account() -> Account | None:
    """Return the account to run the server as: None (the caller) unless this is root."""
    if os.geteuid() != 0:
        return None
    with contextlib.suppress(KeyError):
        return pwd.getpwnam(SERVICE_USER)
    cmd = ["useradd", "--system", "--user-group", "--no-create-home", "--home-dir"]
    cmd += ["/nonexistent", "--shell", "/usr/sbin/nologin", SERVICE_USER]
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    with contextlib.suppress(KeyError):
        return pwd.getpwnam(SERVICE_USER)  # also when a parallel worker created it meanwhile
    message = f"could not create the system user {SERVICE_USER!r}: {result.stderr.strip()}"
    raise PostgresLocalError(message)


def run_as(account: Account | None) -> dict[str, Any]:
    """Return the ``subprocess`` arguments that run a child as ``account`` (if any)."""
    if account is None:
        return {}
    # extra_groups=[] drops root's supplementary groups as well.
    return {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []}


def give_to(account: Account | None, *paths: Path) -> None:
    """Hand ``paths`` over to ``account`` (a no-op when the server runs as the caller)."""
    if account is not None:
        for path in paths:
            os.chown(path, account.pw_uid, account.pw_gid)
