"""Entries the engine cannot use, kept out of planning and rendering: defence in depth.

Import refuses what the engine cannot use, but a bad value can still be in the
database: an older version wrote it, or someone edited a row by hand. Such a
row must cost its own entry and nothing else. ``problem`` runs the import's
own checks again on what an entry holds (the same readers and the same
recurrence engine, ``recurrence.check_rule``): its zones in the tz database in
use, its days within ``validation.FIRST_DAY``..``LAST_DAY``, its RRULE, RDATEs
and EXDATEs, its reminder offsets (or its calendar's, when it inherits them)
and its categories. The answer is kept per set of values, so a poll costs a
dictionary lookup.

A ``Screen`` (the store has one) applies it where entries are read for
planning or rendering: ``usable(entries)`` returns the entries the engine can
use and tells each one it cannot as ``EntryIsolated``, once per change of its
reason (so each is logged once, not on every planner pass), and an entry that
was isolated and is usable again (or gone: ``recheck``) as ``EntryRestored``.
Health lists the isolated entries (``/healthz`` says ``degraded``), metrics
count them, the log names them, and the CLI prints them as warnings.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime
from functools import lru_cache
from typing import Any, Protocol, TypeVar

from calendar_svc import timezones, validation
from calendar_svc.errors import InputError
from calendar_svc.events import EntryIsolated, EntryRestored, EventBus
from calendar_svc.recurrence import check_rule, parse_wall

Key = tuple[str, str]  # (calendar slug, uid)


class _Calendar(Protocol):
    @property
    def slug(self) -> str: ...
    @property
    def reminders(self) -> list[str] | None: ...


class Stored(Protocol):
    """What the checks read of an entry (``models.Entry`` has it all)."""

    @property
    def uid(self) -> str: ...
    @property
    def all_day(self) -> bool: ...
    @property
    def start_local(self) -> datetime: ...
    @property
    def start_tz(self) -> str: ...
    @property
    def end_local(self) -> datetime: ...
    @property
    def end_tz(self) -> str: ...
    @property
    def start_utc(self) -> datetime: ...
    @property
    def end_utc(self) -> datetime: ...
    @property
    def rrule(self) -> str | None: ...
    @property
    def rdates(self) -> list[str] | None: ...
    @property
    def exdates(self) -> list[str] | None: ...
    @property
    def reminders(self) -> list[str] | None: ...
    @property
    def categories(self) -> list[str]: ...
    @property
    def calendar(self) -> _Calendar: ...


E = TypeVar("E", bound=Stored)


def problem(entry: Stored) -> str | None:
    """Why the engine cannot use ``entry`` (``field 'rrule': ...``), or None when it can."""
    values = (
        entry.all_day,
        entry.start_local,
        entry.start_tz,
        entry.end_local,
        entry.end_tz,
        entry.start_utc,
        entry.end_utc,
        entry.rrule,
        _frozen(entry.rdates),
        _frozen(entry.exdates),
        _frozen(entry.reminders),
        _frozen(entry.calendar.reminders) if entry.reminders is None else None,
        _frozen(entry.categories),
        timezones.version(),
    )
    try:
        return _problem(values)
    except TypeError:  # a value nobody can hash (a table in a JSON column): not cached
        return _check(values)


@lru_cache(maxsize=65536)
def _problem(values: tuple[Any, ...]) -> str | None:
    return _check(values)


def _frozen(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def _check(values: tuple[Any, ...]) -> str | None:
    (all_day, start_local, start_tz, end_local, end_tz, start_utc, end_utc, rrule, rdates,
     exdates, reminders, inherited, categories, _version) = values  # fmt: skip
    for field, zone in (("start_tz", start_tz), ("end_tz", end_tz)):
        if not isinstance(zone, str) or not timezones.is_zone(zone):
            return (
                f"field {field!r}: zone {zone!r} is not in the tz database in use "
                f"({timezones.version()})"
            )
    for field, wall in (("start_local", start_local), ("end_local", end_local)):
        if not isinstance(wall, datetime):
            return f"field {field!r}: not a date-time: {wall!r}"
        try:
            validation.in_range(wall.date(), "it is on")
        except ValueError as exc:
            return f"field {field!r}: {exc}"
    if not isinstance(start_utc, datetime) or not isinstance(end_utc, datetime):
        return "field 'start_utc': the instants are missing; run calendar-svc doctor --fix"
    if end_utc < start_utc:
        return "field 'end_utc': it ends before it starts"
    if rrule is not None:
        try:
            check_rule(rrule, start_local, start_tz, all_day=bool(all_day))
        except (InputError, ValueError, OverflowError) as exc:
            return f"field 'rrule': {getattr(exc, 'detail', exc)}"
    for field, walls in (("rdates", rdates), ("exdates", exdates)):
        reason = _walls_problem(walls)
        if reason is not None:
            return f"field {field!r}: {reason}"
    for field, offsets in (("reminders", reminders), ("calendar.reminders", inherited)):
        reason = _offsets_problem(offsets)
        if reason is not None:
            return f"field {field!r}: {reason}"
    if not isinstance(categories, tuple) or not all(isinstance(c, str) for c in categories):
        return f"field 'categories': expected a list of strings, got {categories!r}"
    return None


def _walls_problem(walls: Any) -> str | None:
    if walls is None:
        return None
    if not isinstance(walls, tuple):
        return f"expected a list of wall times, got {walls!r}"
    for text in walls:
        try:
            wall = parse_wall(text)
            day = wall.date() if isinstance(wall, datetime) else wall
            assert isinstance(day, date)
            validation.in_range(day, "a date on")
        except (TypeError, ValueError) as exc:
            return f"{text!r}: {exc}"
    return None


def _offsets_problem(offsets: Any) -> str | None:
    if offsets is None:
        return None
    if not isinstance(offsets, tuple):
        return f"expected a list of ISO 8601 durations, got {offsets!r}"
    try:
        validation.durations(list(offsets))
    except (ValueError, OverflowError) as exc:
        return str(exc)
    return None


class Screen:
    """Keeps the entries ``problem`` refuses out of what is read, and tells them on
    ``events`` once per change (thread-safe)."""

    def __init__(self, events: EventBus):
        self.events = events
        self._lock = threading.Lock()
        self._isolated: dict[Key, str] = {}

    def usable(self, entries: Iterable[E]) -> list[E]:
        """The entries the engine can use, in order; each one it cannot use is told as
        ``EntryIsolated`` (once per reason), each isolated before and usable now as
        ``EntryRestored``."""
        kept: list[E] = []
        for entry in entries:
            reason = problem(entry)
            key = (entry.calendar.slug, entry.uid)
            if reason is None:
                kept.append(entry)
                if key in self._isolated:
                    self._restore(key)
            else:
                self._isolate(key, reason)
        return kept

    def isolated(self) -> dict[Key, str]:
        """(calendar, uid) -> reason of every entry told as isolated and not restored."""
        with self._lock:
            return dict(self._isolated)

    def recheck(self, found: Mapping[Key, Stored]) -> None:
        """Look again at the isolated entries: ``found`` holds those that still exist (by
        key); the others are gone, and restored with the ones now usable."""
        for key in self.isolated():
            entry = found.get(key)
            if entry is None:
                self._restore(key)
            else:
                self.usable([entry])

    def _isolate(self, key: Key, reason: str) -> None:
        with self._lock:
            if self._isolated.get(key) == reason:
                return
            self._isolated[key] = reason
        self.events.emit(EntryIsolated(calendar=key[0], uid=key[1], reason=reason))

    def _restore(self, key: Key) -> None:
        with self._lock:
            if self._isolated.pop(key, None) is None:
                return
        self.events.emit(EntryRestored(calendar=key[0], uid=key[1]))


def keys_of(isolated: Sequence[Key]) -> tuple[set[str], set[str]]:
    """The calendars and uids of ``isolated`` keys, for a query that finds them again."""
    return {slug for slug, _ in isolated}, {uid for _, uid in isolated}
