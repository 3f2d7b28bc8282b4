"""Noticing that the configured schedule files changed, by polling (mtime, size) of each.

Polling, not inotify: it works the same on every filesystem (network mounts,
containers, editors that replace the file) and costs a glob and a few stats
per poll interval.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

Fingerprint = dict[Path, tuple[int, int]]


def fingerprint(files: list[Path]) -> Fingerprint:
    found: Fingerprint = {}
    for path in files:
        try:
            stat = path.stat()
        except OSError:
            continue  # vanished between the glob and the stat: the next poll sees it gone
        found[path] = (stat.st_mtime_ns, stat.st_size)
    return found


class ScheduleWatch:
    """``changed()`` is true on the first call and whenever the matched files differ."""

    def __init__(self, files: Callable[[], list[Path]]):
        self._files = files
        self._last: Fingerprint | None = None

    def changed(self) -> list[Path] | None:
        """The files to import when something changed since the last call, else None."""
        current = fingerprint(self._files())
        if current == self._last:
            return None
        self._last = current
        return sorted(current)

    def forget(self) -> None:
        """Import everything again on the next ``changed()`` (a database error lost one)."""
        self._last = None

    def reset(self, files: Callable[[], list[Path]]) -> None:
        """Watch another set of globs (after a reload); the next ``changed()`` imports."""
        self._files = files
        self._last = None
