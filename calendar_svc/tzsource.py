"""Where the tz database comes from, and noticing that its folder changed.

The tz database is a folder of TZif files laid out as ``zic -d DIR`` writes
it. Which folder, first match wins:

1. ``$CALENDAR_SVC_TZDIR`` (so ``calendar-svc --version``, which runs before
   the config is read, can name it too);
2. ``[time] tzdir`` in config.toml;
3. pytz's own folder, with pytz's release as its version.

A ``TzSource`` says which of these is in force and opens it. A ``FolderWatch``
tells a long-running process that the folder changed: it compares a
fingerprint of the files' names, sizes and modification times (a few
milliseconds for a full release) and only when that moved reads the folder
again. A folder rewritten with the same bytes opens as the same database,
so it is no change.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from calendar_svc import timezones
from calendar_svc.tzdb import TzDatabase

ENV_TZDIR = "CALENDAR_SVC_TZDIR"

# Where a folder was named, for people reading `--version`, `doctor` and the logs.
FROM_ENV = f"${ENV_TZDIR}"
FROM_CONFIG = "[time] tzdir"
BUNDLED = "pytz"


@dataclass(frozen=True)
class TzSource:
    """The tz database folder to use (None: pytz's own) and where it was named."""

    folder: Path | None = None
    origin: str = BUNDLED

    def open(self) -> TzDatabase:
        """The database, read now; TzDatabaseError when the folder is unusable."""
        if self.folder is None:
            return timezones.bundled()
        return TzDatabase.open(self.folder, label=str(self.folder))

    def describe(self) -> str:
        """``pytz's own folder`` or ``/srv/tz (from $CALENDAR_SVC_TZDIR)``."""
        if self.folder is None:
            return "pytz's own folder"
        return f"{self.folder} (from {self.origin})"


def resolve(configured: Path | None, env_value: str | None = None) -> TzSource:
    """The source in force: ``env_value`` (``$CALENDAR_SVC_TZDIR``; relative to the working
    folder), else ``configured`` (``[time] tzdir``, already absolute), else pytz's folder."""
    value = (env_value or "").strip()
    if value:
        return TzSource(Path(value).expanduser().absolute(), FROM_ENV)
    if configured is not None:
        return TzSource(configured, FROM_CONFIG)
    return TzSource(None)


def from_environment() -> TzSource:
    """The source ``$CALENDAR_SVC_TZDIR`` names, else pytz's folder (no config read)."""
    return resolve(None, os.environ.get(ENV_TZDIR))


Fingerprint = tuple[tuple[str, int, int], ...]


def fingerprint(folder: Path) -> Fingerprint:
    """Each file's path (relative), size and modification time, and the folder's real path:
    what moves when a release is unpacked over the folder or a symlink is pointed elsewhere.
    Empty when the folder cannot be read (opening it then says why)."""
    try:
        real = folder.resolve(strict=True)
    except OSError:
        return ()
    found: list[tuple[str, int, int]] = [(str(real), 0, 0)]
    for root, dirs, files in os.walk(real):
        dirs.sort()
        for name in sorted(files):
            path = os.path.join(root, name)
            try:
                stat = os.stat(path)
            except OSError:
                continue
            found.append((os.path.relpath(path, real), stat.st_size, stat.st_mtime_ns))
    return tuple(found)


class FolderWatch:
    """Tells when the folder of a ``TzSource`` holds another database than ``database``.

    ``changed()`` is cheap while the folder's fingerprint stays put; when it moved
    it opens the folder and returns the new database if it differs (another
    version or other bytes), else None. A folder that cannot be opened raises
    TzDatabaseError once; later looks return None until the folder changes again
    (so the caller logs it once and keeps the database it has). pytz's own
    folder is not watched: a new pytz needs a restart anyway.
    """

    def __init__(self, source: TzSource, database: TzDatabase):
        self.source = source
        self.database = database
        self._print = fingerprint(source.folder) if source.folder is not None else ()
        self._failed: Fingerprint | None = None

    def changed(self) -> TzDatabase | None:
        """The new database when the folder now holds another one, else None."""
        if self.source.folder is None:
            return None
        now = fingerprint(self.source.folder)
        if now == self._print or now == self._failed:
            return None
        try:
            opened = self.source.open()
        except Exception:
            self._failed = now  # reported once; checked again when it changes
            raise
        self._print, self._failed = now, None
        if opened == self.database:
            return None
        self.database = opened
        return opened

    def failing(self) -> bool:
        """Whether the last look found the folder unusable (and it has not changed since)."""
        return self._failed is not None
