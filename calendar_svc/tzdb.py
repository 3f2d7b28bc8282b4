"""A tz database: a folder of TZif files laid out by zone name, and each zone's history.

The folder is what ``zic -d DIR`` writes (``DIR/America/New_York`` and so on);
pytz ships one inside its package, and ``timezones`` uses that one unless told
otherwise. A database has one **version**: the text of its ``+VERSION`` file
when there is one (``2026f``), else a digest of every file in it, so two
folders with the same data have the same version and a changed file changes it.

``TzDatabase.history(name)`` gives what the zone's clocks did and will do:
the changes listed in the file, and the footer's rule for every instant after
them (``ZoneHistory.changes_through``). Offsets are rounded to the minute as
pytz rounds them (local mean times such as -4:56:02 become -4:56), so the
conversions in ``timezones`` and the VTIMEZONEs in ``vtimezone`` say the same.

A database compares equal to another of the same folder, version and (for one
``open`` read) bytes: caches keyed by it never serve a zone from another folder
or another release.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path

from calendar_svc import tzif
from calendar_svc.errors import TzDatabaseError, UnknownTimezoneError
from calendar_svc.tzif import LocalTimeType

VERSION_FILE = "+VERSION"
# The years zones are computed for: a rule that still changes the clocks is followed
# up to the end of LAST_YEAR (and, for a file that lists no change, from FIRST_YEAR).
FIRST_YEAR = 1000
LAST_YEAR = 2399
# Folders zic's installers put beside the zones; they hold no zone of their own.
_NOT_ZONES = {"posix", "right", "posixrules", "localtime"}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Places people type that are not zones of their own.
_ALIASES = {
    "america/quito": "America/Guayaquil",
    "america/washington": "America/New_York",
    "america/washington_dc": "America/New_York",
    "america/quito_city": "America/Guayaquil",
}


@dataclass(frozen=True, slots=True)
class Change:
    """The zone's clocks change at ``at`` (aware, UTC) from ``before`` to ``after``."""

    at: datetime
    before: LocalTimeType
    after: LocalTimeType

    @property
    def local_onset(self) -> datetime:
        """The naive wall time at which the change happens, read on the clocks before it."""
        return (self.at + self.before.offset).replace(tzinfo=None)


@dataclass(frozen=True)
class ZoneHistory:
    """One zone: its first period, the changes its file lists, and the rule after them.

    ``rule`` is the TZif footer (None when the file has none: the last period
    then holds for ever). ``rule.fixed`` is not None for a zone that no longer
    changes its clocks.
    """

    name: str
    initial: LocalTimeType
    changes: tuple[Change, ...]
    rule: tzif.PosixTz | None

    @property
    def final(self) -> LocalTimeType:
        """The period in force after the last listed change (before the rule takes over)."""
        return self.changes[-1].after if self.changes else self.initial

    @property
    def keeps_changing(self) -> bool:
        """Whether the zone's rule still changes its clocks every year (it has DST)."""
        return self.rule is not None and self.rule.fixed is None

    def rule_changes(self, first_year: int, last_year: int) -> list[Change]:
        """The changes the footer rule alone makes in the years given, in time order."""
        if self.rule is None or self.rule.fixed is not None:
            return []
        out: list[Change] = []
        for year in range(first_year, last_year + 1):
            for change in _rule_year(self.rule, year):
                if out and out[-1].at == change.at:
                    # A rule whose year ends where the next begins: one change, not two.
                    out[-1] = Change(out[-1].at, out[-1].before, change.after)
                else:
                    out.append(change)
        return [change for change in out if change.before != change.after]

    def changes_through(self, last_year: int) -> tuple[Change, ...]:
        """Every change up to the end of ``last_year`` (UTC): those listed, then the rule's."""
        if not self.keeps_changing:
            return self.changes
        last_listed = self.changes[-1].at if self.changes else None
        start_year = last_listed.year if last_listed else FIRST_YEAR
        extra = []
        current = self.final
        for change in self.rule_changes(start_year, last_year):
            if (last_listed is not None and change.at <= last_listed) or change.after == current:
                continue
            extra.append(Change(change.at, current, change.after))
            current = change.after
        return self.changes + tuple(extra)


@lru_cache(maxsize=65536)
def _rule_year(rule: tzif.PosixTz, year: int) -> tuple[Change, ...]:
    """One year of a footer rule's changes (zones that share a rule share these)."""
    assert rule.daylight is not None
    standard, daylight = period_of(rule.standard), period_of(rule.daylight)
    return tuple(
        Change(
            _EPOCH + timedelta(seconds=seconds),
            standard if kind.is_dst else daylight,
            period_of(kind),
        )
        for seconds, kind in rule.changes_in(year)
    )


@lru_cache(maxsize=4096)
def period_of(kind: LocalTimeType) -> LocalTimeType:
    """``kind`` rounded to the minute as pytz rounds it (one value per distinct type)."""
    return kind.rounded()


class TzDatabase:
    """A folder of TZif files by zone name, with its version.

    ``TzDatabase.open(folder)`` reads the whole folder once, so that what its
    zones say is the data its version names even if the folder changes later
    (a new release unpacked over it): open it again to see the new release.
    ``timezones.bundled()`` is pytz's folder, read zone by zone as pytz reads it.
    Zones are parsed once and kept (thread-safe).
    """

    def __init__(
        self,
        folder: Path,
        version: str,
        *,
        names: Iterable[str] | None = None,
        common_names: Iterable[str] | None = None,
        label: str | None = None,
        files: dict[str, bytes] | None = None,
        digest: str = "",
    ) -> None:
        self.folder = folder
        self.version = version
        self.label = label or str(folder)
        self._files = files
        self._digest = digest
        if names is None and files is not None:
            names = files
        self._names = frozenset(names) if names is not None else None
        self._folded: dict[str, str] | None = None
        self._common = tuple(common_names) if common_names is not None else None
        self._histories: dict[str, ZoneHistory] = {}
        self._lock = threading.Lock()
        self._hash = hash(self._key())

    @classmethod
    def open(cls, folder: str | os.PathLike[str], *, label: str | None = None) -> TzDatabase:
        """The database in ``folder``, read now; TzDatabaseError if there is none.

        The version is the first line of ``+VERSION`` when present, else
        ``sha256:`` and the start of a digest of every file in the folder.
        """
        path = Path(folder).expanduser()
        if not path.is_dir():
            raise TzDatabaseError(f"tz database {str(path)!r} is not a folder")
        contents = _read_folder(path)
        digest = hashlib.sha256()
        for relative in sorted(contents):
            content = contents[relative]
            digest.update(relative.encode("utf-8") + b"\x00")
            digest.update(len(content).to_bytes(8, "big") + content)
        hexdigest = digest.hexdigest()
        marker = contents.get(VERSION_FILE, b"").decode("utf-8", "replace").strip()
        version = marker.splitlines()[0].strip() if marker else f"sha256:{hexdigest[:16]}"
        zones = {
            name: data
            for name, data in contents.items()
            if data[:4] == b"TZif" and name.split("/", 1)[0] not in _NOT_ZONES
        }
        return cls(path, version, files=zones, digest=hexdigest, label=label)

    @property
    def fingerprint(self) -> str:
        """Version and content digest in one string: what a cache kept outside the process
        (the feed's stored renders) keys on."""
        return f"{self.version}:{self._digest}"

    # Same folder, version and bytes: the same zones. Caches key on this.
    def _key(self) -> tuple[Path, str, str]:
        return (self.folder, self.version, self._digest)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TzDatabase):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return self._hash

    def __repr__(self) -> str:
        return f"TzDatabase({str(self.folder)!r}, version={self.version!r})"

    # --- names ---------------------------------------------------------------------

    def names(self) -> frozenset[str]:
        """Every zone name in the folder (links such as ``US/Eastern`` included)."""
        if self._names is None:
            self._names = frozenset(_zone_files(self.folder))
        return self._names

    def canonical(self, name: str) -> str:
        """The zone's name as the folder spells it (``america/new_york`` finds
        ``America/New_York``); UnknownTimezoneError with a hint otherwise."""
        if not isinstance(name, str) or not name:
            raise UnknownTimezoneError(f"timezone must be an IANA zone name, got {name!r}")
        if name in self.names():
            return name
        if self._folded is None:
            self._folded = {known.casefold(): known for known in sorted(self.names())}
        known = self._folded.get(name.casefold())
        if known is not None:
            return known
        raise UnknownTimezoneError(f"unknown timezone {name!r}{self._suggest(name)}")

    def _suggest(self, name: str) -> str:
        alias = _ALIASES.get(name.lower())
        if alias:
            return f" (it is not an IANA zone; use {alias!r})"
        pool = self._common if self._common is not None else sorted(self.names())
        city = name.rsplit("/", 1)[-1].lower()
        matches = sorted(z for z in pool if z.rsplit("/", 1)[-1].lower() == city)
        if matches:
            return f" (did you mean {', '.join(repr(m) for m in matches[:3])}?)"
        return " (use an IANA name such as 'America/Mexico_City')"

    # --- zones ---------------------------------------------------------------------

    def read_bytes(self, name: str) -> bytes:
        """The TZif bytes of zone ``name`` (canonical spelling)."""
        if self._files is not None:
            return self._files[name]
        path = self.folder.joinpath(*_segments(name))
        try:
            return path.read_bytes()
        except OSError as exc:
            raise TzDatabaseError(
                f"tz database {self.label}: cannot read {name}: {exc.strerror or exc}"
            ) from None

    def history(self, name: str) -> ZoneHistory:
        """Zone ``name``'s history (any spelling ``canonical`` accepts), read once."""
        name = self.canonical(name)
        with self._lock:
            found = self._histories.get(name)
        if found is not None:
            return found
        data = tzif.read(self.read_bytes(name), source=f"{self.label}/{name}")
        history = _history(name, data)
        with self._lock:
            return self._histories.setdefault(name, history)


def _history(name: str, data: tzif.TzifData) -> ZoneHistory:
    changes: list[Change] = []
    current = period_of(data.initial)
    for seconds, kind in data.transitions:
        after = period_of(kind)
        changes.append(Change(_EPOCH + timedelta(seconds=seconds), current, after))
        current = after
    return ZoneHistory(name, period_of(data.initial), tuple(changes), data.footer)


def _read_folder(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` by its path relative to it (``/``-separated)."""
    contents = {}
    for relative in _files(folder):
        try:
            contents[relative] = folder.joinpath(relative).read_bytes()
        except OSError as exc:
            raise TzDatabaseError(
                f"tz database {str(folder)!r}: cannot read {relative}: {exc.strerror or exc}"
            ) from None
    if not contents:
        raise TzDatabaseError(f"tz database {str(folder)!r} is empty")
    return contents


def _files(folder: Path) -> Iterator[str]:
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        for file in files:
            yield Path(root, file).relative_to(folder).as_posix()


def _zone_files(folder: Path) -> Iterator[str]:
    for relative in _files(folder):
        if relative.split("/", 1)[0] in _NOT_ZONES:
            continue
        try:
            with folder.joinpath(relative).open("rb") as handle:
                if handle.read(4) == b"TZif":
                    yield relative
        except OSError:
            continue


def _segments(name: str) -> list[str]:
    parts = name.split("/")
    if any(part in ("", ".", "..") or "\\" in part or "\x00" in part for part in parts):
        raise UnknownTimezoneError(f"unknown timezone {name!r}")
    return parts
