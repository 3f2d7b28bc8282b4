"""Recurring series of an .ics file: a master VEVENT and its overrides (RECURRENCE-ID),
turned into entries that the one recurrence engine expands. Pure.

* An override of one occurrence becomes an entry of its own, ``<UID>+<RECURRENCE-ID>``
  (the occurrence's original start as wall time in the master's zone:
  ``abc@google.com+20250902T100000``), and the master lists that occurrence as
  an EXDATE: each occurrence is shown and reminded once, as the override says.
* An override with ``RANGE=THISANDFUTURE`` splits the series: the master ends
  before it (``UNTIL``, or a smaller ``COUNT``) and the rest becomes a series of
  its own, ``<UID>+<RECURRENCE-ID>``, with the override's properties and every
  later occurrence moved as the override moved its own. When the rest cannot be
  written as the same RRULE from the new start (a shift to another weekday of a
  ``BYDAY`` rule), a finite rest is listed as RDATEs; an endless one is refused.
* Overrides without a master (an invitation to one occurrence) stand alone.

Every series keeps RRULE, RDATE and EXDATE as written, so our own feed
republishes the rule rather than copies of it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from itertools import islice
from typing import Any

from calendar_svc import timezones
from calendar_svc.errors import InputError
from calendar_svc.ics_in.values import When
from calendar_svc.ics_in.vevent import Context, Event
from calendar_svc.ics_in.zones import CustomZone
from calendar_svc.recurrence import MAX_OCCURRENCES, wall_rule
from calendar_svc.timezones import UTC

# Occurrences compared to check that a moved rest of a series is the same rule.
_PROBE = 200
# The most occurrences a split series' rest may be listed as (RDATEs).
MAX_LISTED = MAX_OCCURRENCES
_COUNT = re.compile(r"(?i)(^|;)COUNT=(\d+)")
_UNTIL = re.compile(r"(?i)(^|;)UNTIL=([0-9TZ]+)")


@dataclass
class _Part:
    """One piece of a series: its entry table, and from which original start it holds."""

    raw: dict[str, Any]
    begins: date | datetime | None  # original start of its first occurrence (None: the master)
    shift: timedelta  # how far its occurrences moved from the original ones


def entries(events: Iterable[Event], ctx: Context) -> list[dict[str, Any]]:
    """The entry tables of every VEVENT, series resolved, in file order of their masters."""
    groups: dict[str, list[Event]] = {}
    for event in events:
        groups.setdefault(event.uid, []).append(event)
    out: list[dict[str, Any]] = []
    for uid, group in groups.items():
        masters = [e for e in group if e.recurrence_id is None]
        overrides = [e for e in group if e.recurrence_id is not None]
        master = None
        if masters:
            master = max(masters, key=lambda e: (e.sequence, e.line))
            if len(masters) > 1:
                ctx.warnings.append(
                    f"UID {uid}: {len(masters)} VEVENTs without RECURRENCE-ID; the one at line "
                    f"{master.line} (highest SEQUENCE, else last) is used"
                )
        if master is None:
            for event in overrides:
                out.append(_standalone(event, _rid_text(event.recurrence_id), ctx))
            continue
        parts = [_Part(dict(master.raw), None, timedelta(0))]
        keyed = sorted(
            ((_rid_wall(e, master, ctx), e) for e in overrides), key=lambda pair: _sort(pair[0])
        )
        singles = []
        for rid, event in keyed:
            if event.this_and_future:
                _split(parts, rid, event, master, ctx)
            else:
                singles.append((rid, event))
        for rid, event in singles:
            part = _part_of(parts, rid)
            moved = rid + part.shift
            part.raw.setdefault("exdate", []).append(moved)
            out.append(_standalone(event, _wall_text(rid), ctx))
        out.extend(p.raw for p in parts)
    return out


def _standalone(event: Event, rid_text: str, ctx: Context) -> dict[str, Any]:
    raw = dict(event.raw)
    raw["uid"] = f"{event.uid}+{rid_text}"
    for key in ("rrule", "rdate", "exdate"):
        if raw.pop(key, None) is not None:
            ctx.warnings.append(
                f"{event.where}: an override (RECURRENCE-ID) with {key.upper()}; it is ignored"
            )
    return raw


def _sort(value: date | datetime) -> datetime:
    return value if isinstance(value, datetime) else datetime.combine(value, time())


def _rid_text(rid: When | None) -> str:
    assert rid is not None
    return _wall_text(rid.value)


def _wall_text(value: date | datetime) -> str:
    return value.strftime("%Y%m%dT%H%M%S" if isinstance(value, datetime) else "%Y%m%d")


def _master_wall(raw: dict[str, Any]) -> date | datetime:
    """The master's start as a wall time in its zone (a date for all-day)."""
    start = raw["start"]
    if isinstance(start, datetime) and start.tzinfo is not None:
        return timezones.wall_time(start, raw["timezone"])[0]
    return start  # type: ignore[no-any-return]


def _rid_wall(event: Event, master: Event, ctx: Context) -> date | datetime:
    """RECURRENCE-ID as the original start it names, in the master's wall time."""
    rid = event.recurrence_id
    assert rid is not None
    start = _master_wall(master.raw)
    zone = master.raw["timezone"]
    value = rid.value
    if not isinstance(start, datetime):
        return value.date() if isinstance(value, datetime) else value
    if not isinstance(value, datetime):
        return datetime.combine(value, start.time())
    if rid.utc:
        return timezones.wall_time(value.replace(tzinfo=UTC), zone)[0]
    if rid.tzid is None:
        return value
    found = ctx.resolver.resolve(rid.tzid, value.year, line=event.line, where=event.where)
    if isinstance(found, CustomZone):
        return timezones.wall_time(found.rules.to_utc(value), zone)[0]
    if found == zone:
        return value
    return timezones.wall_time(timezones.to_utc(value, found, fold=0), zone)[0]


def _part_of(parts: list[_Part], rid: date | datetime) -> _Part:
    found = parts[0]
    for part in parts:
        if part.begins is None or _sort(part.begins) <= _sort(rid):
            found = part
    return found


def _split(
    parts: list[_Part], rid: date | datetime, event: Event, master: Event, ctx: Context
) -> None:
    """Cut the part holding ``rid`` there; the override's series takes the rest."""
    part = _part_of(parts, rid)
    raw = part.raw
    fail = _failer(event, ctx)
    zone = raw["timezone"]
    begin = _master_wall(raw)
    new_raw = dict(event.raw)
    new_raw["uid"] = f"{event.uid}+{_wall_text(rid)}"
    new_start = _master_wall(new_raw) if new_raw.get("timezone") else new_raw["start"]
    if isinstance(begin, datetime) != isinstance(new_start, datetime):
        raise fail("a RANGE=THISANDFUTURE override must keep its series' DATE or DATE-TIME")
    if isinstance(new_start, datetime) and new_raw.get("timezone") != zone:
        instant = _instant(new_raw)
        new_start = timezones.wall_time(instant, zone)[0]
    moved = rid + part.shift
    shift = _diff(new_start, moved)
    rule = raw.get("rrule")
    before_walls: list[Any] = []
    rest: list[Any] = []
    if rule:
        walls = wall_rule(rule, _as_dt(begin), zone)
        for wall in walls:
            value = wall if isinstance(begin, datetime) else wall.date()
            if _sort(value) < _sort(moved):
                before_walls.append(value)
                if len(before_walls) > 1_000_000:
                    raise fail("the occurrence it overrides is too far into its series")
            else:
                break
        rest = list(islice((w for w in walls.xafter(_as_dt(moved), inc=True)), _PROBE))
    # The part before keeps what comes earlier.
    if rule:
        count = _COUNT.search(rule)
        if count is not None:
            kept = len(before_walls)
            raw["rrule"] = _COUNT.sub(rf"\g<1>COUNT={max(kept, 1)}", rule)
            new_rule = _COUNT.sub(rf"\g<1>COUNT={max(int(count.group(2)) - kept, 1)}", rule)
        else:
            raw["rrule"] = _with_until(rule, moved, zone)
            until = _UNTIL.search(rule)
            if until is None:
                new_rule = rule
            else:
                last = _plain(_until_wall(until.group(2), zone), begin) + shift
                new_rule = _with_until(rule, last, zone, inclusive=True)
        if not before_walls:
            raw["rrule"] = None
    else:
        new_rule = None
    for key in ("rdate", "exdate"):
        earlier = [w for w in raw.get(key, []) if _sort(w) < _sort(moved)]
        later = [w + shift for w in raw.get(key, []) if _sort(w) >= _sort(moved)]
        if raw.get(key) is not None:
            raw[key] = earlier
        if later:
            new_raw[key] = later
    new_raw.pop("rrule", None)
    if new_rule:
        expected = [_plain(w, begin) + shift for w in rest]
        got = list(islice(wall_rule(new_rule, _as_dt(new_start), zone), len(expected)))
        if [_plain(w, begin) for w in got] == expected:
            new_raw["rrule"] = new_rule
        elif _COUNT.search(new_rule) or _UNTIL.search(new_rule):
            listed = list(islice(walls.xafter(_as_dt(moved), inc=True), MAX_LISTED + 1))
            if len(listed) > MAX_LISTED:
                raise fail(
                    f"its RANGE=THISANDFUTURE moves more than {MAX_LISTED:,} occurrences to "
                    "times its RRULE cannot express"
                )
            new_raw["rdate"] = [_plain(w, begin) + shift for w in listed[1:]] + new_raw.get(
                "rdate", []
            )
        else:
            raise fail(
                "its RANGE=THISANDFUTURE moves the endless rest of the series to times its "
                "RRULE cannot express (e.g. to another weekday of a BYDAY rule)"
            )
    if raw.get("rrule") is None and not raw.get("rdate") and _sort(begin) >= _sort(moved):
        parts.remove(part)  # the override replaces the whole series from its first occurrence
    parts.append(_Part(new_raw, rid, shift))


def _failer(event: Event, ctx: Context) -> Any:
    def fail(message: str) -> InputError:
        return InputError(message, file=ctx.source, location=event.where, field="RECURRENCE-ID")

    return fail


def _instant(raw: dict[str, Any]) -> datetime:
    start = raw["start"]
    if start.tzinfo is not None:
        return start  # type: ignore[no-any-return]
    return timezones.to_utc(start, raw["timezone"], fold=raw.get("fold"))


def _as_dt(value: date | datetime) -> datetime:
    return value if isinstance(value, datetime) else datetime.combine(value, time())


def _plain(value: datetime, like: date | datetime) -> Any:
    return value if isinstance(like, datetime) else value.date()


def _diff(a: date | datetime, b: date | datetime) -> timedelta:
    return _as_dt(a) - _as_dt(b)


def _until_wall(text: str, zone: str) -> datetime:
    """An RRULE's UNTIL as a wall time in ``zone``."""
    if len(text) == 8:
        return datetime.strptime(text, "%Y%m%d")  # noqa: DTZ007 - a wall time
    if text.upper().endswith("Z"):
        instant = datetime.strptime(text[:-1], "%Y%m%dT%H%M%S").replace(tzinfo=UTC)
        return timezones.wall_time(instant, zone)[0]
    return datetime.strptime(text, "%Y%m%dT%H%M%S")  # noqa: DTZ007 - a wall time


def _with_until(rule: str, bound: date | datetime, zone: str, *, inclusive: bool = False) -> str:
    """``rule`` ending before ``bound`` (at ``bound`` with ``inclusive``): UNTIL in UTC for
    a timed series, a DATE for an all-day one."""
    parts = [p for p in rule.split(";") if p and not p.upper().startswith(("UNTIL=", "COUNT="))]
    if isinstance(bound, datetime):
        last = bound if inclusive else bound - timedelta(seconds=1)
        if zone == "UTC":
            text = last.strftime("%Y%m%dT%H%M%SZ")
        else:
            text = timezones.to_utc(last, zone, fold=0).strftime("%Y%m%dT%H%M%SZ")
    else:
        day = bound if inclusive else bound - timedelta(days=1)
        text = day.strftime("%Y%m%d")
    return ";".join([*parts, f"UNTIL={text}"])
