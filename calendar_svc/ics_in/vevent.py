"""One VEVENT -> the table a schedule file's ``[[entries]]`` would hold. Pure.

The table then goes through the schedule files' own validator
(``schedule_files.parse_entry``), so an .ics entry is accepted or refused
exactly as the same entry written in TOML. What the validator cannot know
about (which property a value came from, the line) is added to its errors
by the caller.

Times keep the meaning their producer gave them:

* ``TZID=<zone>``: wall time in the IANA zone ``zones`` finds for it;
* ``...Z`` (UTC, what airlines write): an instant, shown in the display zone;
  a recurring one repeats in UTC, as RFC 5545 says it does;
* a custom VTIMEZONE: an instant from its own rules, shown in the display zone;
* floating (no TZID, no Z): wall time in ``X-WR-TIMEZONE`` or ``--zone``, and
  refused without either;
* a DATE: an all-day entry (DTEND is the day after the last, as in RFC 5545).

A time in a DST gap or fold reads as RFC 5545 says (the offset before the
change; of two, the first): ``fold = 0``.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

from calendar_svc import timezones
from calendar_svc.durations import format_duration
from calendar_svc.errors import InputError, RuleError
from calendar_svc.ics_in import values
from calendar_svc.ics_in.reader import Component, Property
from calendar_svc.ics_in.values import When
from calendar_svc.ics_in.zones import CustomZone, ZoneResolver
from calendar_svc.recurrence import check_rule
from calendar_svc.schedule_files import UID_RE
from calendar_svc.timezones import UTC

# The schedule-file key each VEVENT property fills: an error about the key names the property.
PROPERTY_OF = {
    "uid": "UID",
    "title": "SUMMARY",
    "start": "DTSTART",
    "end": "DTEND",
    "duration": "DURATION",
    "timezone": "DTSTART",
    "end_timezone": "DTEND",
    "fold": "DTSTART",
    "end_fold": "DTEND",
    "location": "LOCATION",
    "geo": "GEO",
    "url": "URL",
    "categories": "CATEGORIES",
    "status": "STATUS",
    "description": "DESCRIPTION",
    "reminders": "VALARM TRIGGER",
    "transparency": "TRANSP",
    "rrule": "RRULE",
    "rdate": "RDATE",
    "exdate": "EXDATE",
}
_STATUS = {"CONFIRMED": "confirmed", "TENTATIVE": "tentative", "CANCELLED": "cancelled"}
_UID_JUNK = re.compile(r"[^A-Za-z0-9._:@+-]+")
_URL = re.compile(r"^https?://\S+$")
NO_TITLE = "(no title)"


@dataclass
class Context:
    """What converting a VEVENT needs from its file and the caller."""

    source: str
    resolver: ZoneResolver
    display_zone: str  # where instants are shown (the calendar's zone, or --zone)
    floating_zone: str | None  # X-WR-TIMEZONE, else --zone; None: floating is refused
    reminders: tuple[str, ...] | None  # the source's offsets, overriding VALARMs
    own_suffix: re.Pattern[str] | None  # "@<slug>.<domain>" of our own feed's UIDs
    warnings: list[str] = field(default_factory=list)


@dataclass
class Event:
    """A VEVENT read into an entry table (``raw``), with what series handling needs."""

    uid: str  # the entry uid (sanitised UID; overrides get +RECURRENCE-ID later)
    line: int
    raw: dict[str, Any]
    start: When
    recurrence_id: When | None = None
    this_and_future: bool = False
    sequence: int = 0

    @property
    def where(self) -> str:
        return f"{self.uid} (VEVENT at line {self.line})"


def entry_uid(raw_uid: str, own_suffix: re.Pattern[str] | None) -> str:
    """The entry uid for a UID: itself when a schedule file could hold it, else a stable
    cleaned form (``<cleaned>-<8 hex digits>``); our own feed's ``@slug.domain`` dropped."""
    uid = raw_uid.strip()
    if own_suffix is not None:
        uid = own_suffix.sub("", uid)
    if UID_RE.fullmatch(uid) and len(uid) <= 180:
        return uid
    digest = hashlib.sha256(raw_uid.encode("utf-8")).hexdigest()[:8]
    cleaned = _UID_JUNK.sub("-", uid).strip("-._:@+")[:160] or "event"
    return f"{cleaned}-{digest}"


def read_event(component: Component, ctx: Context) -> Event:
    """The entry table of one VEVENT (times resolved, VALARMs read); InputError naming
    the VEVENT and the property when a value cannot be read."""
    uid_prop = component.get("UID")
    if uid_prop is not None and uid_prop.value.strip():
        uid = entry_uid(values.text(uid_prop.value), ctx.own_suffix)
    else:
        basis = "|".join(p.value for p in (component.get("DTSTART"), component.get("SUMMARY")) if p)
        uid = "ics-" + hashlib.sha256(basis.encode("utf-8")).hexdigest()[:16]
        ctx.warnings.append(f"VEVENT at line {component.line} has no UID; it is called {uid}")
    where = f"{uid} (VEVENT at line {component.line})"

    def fail(prop: Property | str, message: str) -> InputError:
        name = prop if isinstance(prop, str) else prop.name
        line = "" if isinstance(prop, str) else f" (line {prop.line})"
        return InputError(message + line, file=ctx.source, location=where, field=name)

    def read(prop: Property, reader: Any) -> Any:
        try:
            return reader(prop.value)
        except ValueError as exc:
            raise fail(prop, str(exc)) from None

    start_prop = component.get("DTSTART")
    if start_prop is None:
        raise fail("DTSTART", "required, and missing")
    start = read(start_prop, lambda v: values.when(v, start_prop.params))
    raw: dict[str, Any] = {"uid": uid}
    summary = component.get("SUMMARY")
    raw["title"] = values.text(summary.value).strip() if summary is not None else ""
    if not raw["title"]:
        raw["title"] = NO_TITLE
    for key, name in (("description", "DESCRIPTION"), ("location", "LOCATION")):
        prop = component.get(name)
        if prop is not None:
            raw[key] = values.text(prop.value)
    if (prop := component.get("URL")) is not None:
        url = prop.value.strip()
        if _URL.match(url):
            raw["url"] = url
        elif url:
            ctx.warnings.append(f"{where}: URL {url[:80]!r} is not an http(s) URL; left out")
    if (prop := component.get("GEO")) is not None:
        try:
            raw["geo"] = list(values.geo(prop.value))
        except ValueError as exc:
            ctx.warnings.append(f"{where}: GEO left out: {exc}")
    categories = [c for p in component.all("CATEGORIES") for c in values.text_list(p.value)]
    if categories:
        raw["categories"] = list(dict.fromkeys(categories))
    if (prop := component.get("STATUS")) is not None:
        raw["status"] = _STATUS.get(prop.value.strip().upper(), "confirmed")
    transp = component.get("TRANSP")
    busy = component.get("X-MICROSOFT-CDO-BUSYSTATUS")
    if transp is not None:
        raw["transparency"] = (
            "transparent" if transp.value.strip().upper() == "TRANSPARENT" else "opaque"
        )
    elif busy is not None and busy.value.strip().upper() == "FREE":
        raw["transparency"] = "transparent"

    end_prop = component.get("DTEND")
    duration_prop = component.get("DURATION")
    end = read(end_prop, lambda v: values.when(v, end_prop.params)) if end_prop else None
    length = read(duration_prop, values.duration) if duration_prop and not end_prop else None
    if length is not None and length < timedelta(0):
        raise fail(duration_prop or "DURATION", "a negative DURATION")
    all_day_flag = component.get("X-MICROSOFT-CDO-ALLDAYEVENT")
    if (
        all_day_flag is not None
        and all_day_flag.value.strip().upper() == "TRUE"
        and not start.is_date
        and isinstance(start.value, datetime)
        and start.value.time() == time()
        and (end is None or (isinstance(end.value, datetime) and end.value.time() == time()))
    ):
        # Outlook's all-day events written as midnights: the dates they mean.
        start = When(start.value.date())
        end = When(end.value.date()) if end is not None else None  # type: ignore[union-attr]

    recurring = bool(component.get("RRULE") or component.get("RDATE"))
    if start.is_date:
        _all_day_times(raw, start, end, length, ctx, fail, component)
    else:
        _timed_times(raw, start, end, length, recurring, ctx, where, fail, start_prop, end_prop)

    rules = component.all("RRULE")
    if rules:
        raw["rrule"] = rules[0].value.strip()
        if len(rules) > 1:
            ctx.warnings.append(f"{where}: {len(rules)} RRULEs; only the first is used")
        _check_rule(raw, rules[0], fail)
    for key, name in (("rdate", "RDATE"), ("exdate", "EXDATE")):
        props = component.all(name)
        if props:
            raw[key] = _occurrence_walls(props, raw, ctx, where, fail, read)
    reminders = (
        list(ctx.reminders)
        if ctx.reminders is not None
        else _alarm_offsets(component, raw, ctx, where)
    )
    if reminders is not None:
        raw["reminders"] = reminders
    event = Event(uid=uid, line=component.line, raw=raw, start=start)
    rid = component.get("RECURRENCE-ID")
    if rid is not None:
        event.recurrence_id = read(rid, lambda v: values.when(v, rid.params))
        event.this_and_future = rid.params.get("RANGE", "").upper() == "THISANDFUTURE"
    if (sequence := component.get("SEQUENCE")) is not None:
        event.sequence = int(sequence.value) if sequence.value.strip().isdigit() else 0
    return event


def _all_day_times(
    raw: dict[str, Any],
    start: When,
    end: When | None,
    length: timedelta | None,
    ctx: Context,
    fail: Any,
    component: Component,
) -> None:
    first = start.value
    assert not isinstance(first, datetime)
    raw["start"] = first
    raw["timezone"] = ctx.display_zone
    if end is not None:
        if not end.is_date:
            raise fail(component.get("DTEND") or "DTEND", "DTSTART is a DATE, so DTEND must be too")
        last = end.value - timedelta(days=1) if end.value > first else first
        raw["end"] = last
    elif length is not None:
        raw["end"] = first + timedelta(days=max(1, length.days) - 1)


def _timed_times(
    raw: dict[str, Any],
    start: When,
    end: When | None,
    length: timedelta | None,
    recurring: bool,
    ctx: Context,
    where: str,
    fail: Any,
    start_prop: Property,
    end_prop: Property | None,
) -> None:
    wall = start.value
    assert isinstance(wall, datetime)
    if start.utc:
        if recurring:
            # A recurring UTC time repeats in UTC, whatever the display zone's DST does.
            raw["start"], raw["timezone"] = wall, "UTC"
        else:
            raw["start"] = wall.replace(tzinfo=UTC)
            raw["timezone"] = ctx.display_zone
    else:
        zone = _zone_of(start, ctx, where, start_prop, fail)
        if isinstance(zone, CustomZone):
            raw["start"] = zone.rules.to_utc(wall)
            raw["timezone"] = ctx.display_zone
        else:
            raw["start"], raw["timezone"] = wall, zone
    if end is not None:
        if end.is_date:
            raise fail(end_prop or "DTEND", "DTSTART is a DATE-TIME, so DTEND must be too")
        end_wall = end.value
        assert isinstance(end_wall, datetime)
        if end.utc:
            raw["end"] = end_wall.replace(tzinfo=UTC)
        else:
            zone = _zone_of(end, ctx, where, end_prop or start_prop, fail)
            if isinstance(zone, CustomZone):
                raw["end"] = zone.rules.to_utc(end_wall)
            else:
                raw["end"], raw["end_timezone"] = end_wall, zone
    elif length is not None:
        raw["duration"] = format_duration(length)


def _check_rule(raw: dict[str, Any], prop: Property, fail: Any) -> None:
    """The recurrence engine's check of the RRULE from the event's start (``check_rule``:
    its parts, that it fires, at most ``MAX_OCCURRENCES`` times in its first year), before
    the series code walks it; a start the validator will refuse is left to it."""
    start, zone = raw["start"], raw["timezone"]
    try:
        if isinstance(start, datetime) and start.tzinfo is not None:
            wall = timezones.wall_time(start.astimezone(UTC), zone)[0]
        else:
            wall = start if isinstance(start, datetime) else datetime.combine(start, time())
    except (InputError, ValueError, OverflowError):
        return
    try:
        check_rule(raw["rrule"], wall, zone, all_day=not isinstance(start, datetime))
    except RuleError as exc:
        raise fail(prop, exc.detail) from None
    except (InputError, OverflowError):
        return  # a start out of range: the validator names it


def _zone_of(when: When, ctx: Context, where: str, prop: Property, fail: Any) -> str | CustomZone:
    if when.tzid is not None:
        return ctx.resolver.resolve(when.tzid, when.value.year, line=prop.line, where=where)
    if ctx.floating_zone is None:
        raise fail(
            prop,
            "a floating time (no TZID, no Z) and the file names no zone (X-WR-TIMEZONE); "
            "give the zone it is in with --zone (a source: zone = ...)",
        )
    return ctx.floating_zone


def with_folds(raw: dict[str, Any]) -> dict[str, Any] | None:
    """``raw`` with ``fold = 0`` on a start or end in a DST gap or fold (RFC 5545: the
    offset before the change; of two, the first), or None when neither is."""
    out = dict(raw)
    for key, zone_key, fold_key in (
        ("start", "timezone", "fold"),
        ("end", "end_timezone", "end_fold"),
    ):
        wall, zone = raw.get(key), raw.get(zone_key) or raw.get("timezone")
        if isinstance(wall, datetime) and wall.tzinfo is None and isinstance(zone, str):
            try:
                if timezones.classify(wall, zone) != "ok":
                    out[fold_key] = 0
            except InputError:
                continue  # out of range: the validator says so, naming the field
    return out if out != raw else None


def _occurrence_walls(
    props: list[Property],
    raw: dict[str, Any],
    ctx: Context,
    where: str,
    fail: Any,
    read: Any,
) -> list[date | datetime]:
    """RDATE/EXDATE values as wall times in the entry's zone (dates for all-day)."""
    start = raw["start"]
    zone = raw["timezone"]
    out: list[date | datetime] = []
    for prop in props:
        for item in read(prop, lambda v, p=prop: values.whens(v, p.params)):
            value = item.value
            if not isinstance(start, datetime):
                out.append(value.date() if isinstance(value, datetime) else value)
                continue
            if not isinstance(value, datetime):
                # A date against a timed series: the occurrence on that day.
                out.append(datetime.combine(value, start.time()))
                continue
            if item.utc:
                instant = value.replace(tzinfo=UTC)
            else:
                item_zone = _zone_of(item, ctx, where, prop, fail)
                if isinstance(item_zone, CustomZone):
                    instant = item_zone.rules.to_utc(value)
                elif item_zone == zone:
                    out.append(value)
                    continue
                else:
                    instant = timezones.to_utc(value, item_zone, fold=0)
            out.append(timezones.wall_time(instant, zone)[0])
    return out


def _alarm_offsets(
    component: Component, raw: dict[str, Any], ctx: Context, where: str
) -> list[str] | None:
    """Reminder offsets from the VALARMs' triggers (before the start), or None without any."""
    alarms = [c for c in component.components if c.name == "VALARM"]
    if not alarms:
        return None
    offsets: set[timedelta] = set()
    for alarm in alarms:
        trigger = alarm.get("TRIGGER")
        if trigger is None:
            continue
        try:
            if trigger.params.get("VALUE", "").upper() == "DATE-TIME":
                when = values.when(trigger.value, {})
                begin = raw["start"]
                if not when.utc or not isinstance(begin, datetime) or begin.tzinfo is None:
                    ctx.warnings.append(
                        f"{where}: an absolute VALARM trigger (line {trigger.line}) on a zoned "
                        "time is left out"
                    )
                    continue
                assert isinstance(when.value, datetime)
                before = begin - when.value.replace(tzinfo=UTC)
            else:
                amount = values.duration(trigger.value)
                if trigger.params.get("RELATED", "START").upper() == "END":
                    amount += _length(raw)
                before = -amount
        except (ValueError, TypeError) as exc:
            ctx.warnings.append(f"{where}: VALARM TRIGGER (line {trigger.line}) left out: {exc}")
            continue
        if before < timedelta(0):
            ctx.warnings.append(
                f"{where}: a VALARM after the start (line {trigger.line}) is left out: "
                "reminders come before the start"
            )
            continue
        offsets.add(before)
    return [format_duration(o) for o in sorted(offsets, reverse=True)]


def _length(raw: dict[str, Any]) -> timedelta:
    """The event's length, for a trigger related to its end."""
    if "duration" in raw:
        return values.duration(raw["duration"])
    start, end = raw["start"], raw.get("end")
    if end is None:
        return timedelta(days=1) if not isinstance(start, datetime) else timedelta(0)
    if not isinstance(start, datetime):
        return end - start + timedelta(days=1)  # type: ignore[no-any-return]
    if (start.tzinfo is None) == (end.tzinfo is None):
        return end - start  # type: ignore[no-any-return]
    return timedelta(0)
