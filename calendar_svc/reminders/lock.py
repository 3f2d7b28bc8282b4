"""One daemon per SQLite database: an exclusive ``flock`` on ``<database file>.daemon.lock``.

Two daemons on one SQLite file would each think every ``sending`` row left at
start-up is theirs to recover, and SQLite is not meant for several writers
across machines anyway; several daemons is what PostgreSQL is for. The lock
dies with its process (even ``kill -9``), so there is never a stale lock to
clean up; the PID written into the file is only for the refusal message.
The database file comes from ``db.sqlite_file``.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from calendar_svc.db import why
from calendar_svc.errors import AlreadyRunningError, StoreError


def lock_path(database: Path) -> Path:
    return database.with_name(database.name + ".daemon.lock")


class DaemonLock:
    def __init__(self, database: Path):
        self.path = lock_path(database)
        self.database = database
        self._fd: int | None = None

    def acquire(self) -> None:
        try:
            self._acquire()
        except OSError as exc:
            raise StoreError(
                f"cannot take the daemon lock {self.path}: {why(exc, self.database)}"
            ) from None

    def _acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # 0600 whatever the umask, as the database beside it (db.private_file).
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            os.fchmod(fd, 0o600)
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode("ascii", "replace").strip() or "unknown"
            os.close(fd)
            raise AlreadyRunningError(
                f"another `calendar-svc run` (pid {holder}) already uses {self.database}; "
                "only one daemon may run per SQLite database. Stop it first, or use "
                "PostgreSQL ([database] url) to run several daemons."
            ) from None
        try:
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode("ascii"))
        except OSError:
            os.close(fd)
            raise
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the flock
            self._fd = None


def holder_pid(database: Path) -> int | None:
    """PID of the daemon holding the lock, or None when no daemon runs (for ``status``)."""
    path = lock_path(database)
    if not path.exists():
        return None
    fd = os.open(path, os.O_RDONLY)
    try:
        try:
            # A shared lock is refused only while the daemon holds its exclusive one.
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            text = os.read(fd, 32).decode("ascii", "replace").strip()
            return int(text) if text.isdigit() else -1
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)
