"""Which zone an .ics file means by a TZID: an IANA zone wherever one fits. Pure.

In order:

1. a TZID that is an IANA name (``Europe/Berlin``), or ends in one
   (``/mozilla.org/20070129_1/Europe/Berlin``, ``/freeassociation.sourceforge.net/
   Tzfile/Europe/London``): that zone of our tz database, whatever rules the
   file's VTIMEZONE carries (often older ones: Mexico City with DST in 2025);
2. a Windows name (``Pacific Standard Time``, ``Romance Standard Time``, what
   Outlook and Exchange write): CLDR's mapping, as icalendar ships it;
3. otherwise the file's own VTIMEZONE (``(UTC+01:00) Amsterdam, Berlin, ...``,
   ``Customized Time Zone``): its STANDARD/DAYLIGHT rules are compared with our
   zones over the years the file uses, and the first zone that keeps the same
   clocks is taken (the caller's hints first, then a zone whose city the TZID
   names);
4. a VTIMEZONE that matches no zone is honoured from its own rules
   (``CustomZone``): instants are computed from it, a warning says so, and the
   caller stores them as wall times in an IANA zone of its choice.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import NoReturn

from icalendar.timezone.windows_to_olson import WINDOWS_TO_OLSON

from calendar_svc import timezones
from calendar_svc.errors import InputError
from calendar_svc.ics_in import values
from calendar_svc.ics_in.reader import Component
from calendar_svc.recurrence import rule_between

_WINDOWS = {name.casefold(): zone for name, zone in WINDOWS_TO_OLSON.items()}
_UTC_NAMES = {"utc", "gmt", "z", "etc/utc", "etc/gmt", "universal", "zulu", "etc/zulu"}
_UNTIL_UTC = re.compile(r"UNTIL=(\d{8}T\d{6})Z", re.IGNORECASE)
# Zones of these regions are candidates for a VTIMEZONE match (not SystemV/, US/, ...).
_REGIONS = (
    "Europe/",
    "America/",
    "Asia/",
    "Africa/",
    "Australia/",
    "Pacific/",
    "Atlantic/",
    "Indian/",
    "Antarctica/",
    "Etc/GMT",
)


def iana_name(tzid: str) -> str | None:
    """The IANA zone a TZID names by itself (an IANA name, a path ending in one, a Windows
    name), or None. ``UTC`` and its spellings give ``UTC``."""
    name = tzid.strip().strip('"')
    if name.casefold() in _UTC_NAMES:
        return "UTC"
    if "/" in name or name.isalpha():
        segments = [s for s in name.split("/") if s]
        for count in (3, 2, 1):
            if len(segments) < count:
                continue
            candidate = "/".join(segments[-count:])
            if count == 1 and candidate.casefold() not in _UTC_NAMES:
                continue  # "Berlin" alone is no zone name
            if timezones.is_zone(candidate):
                return timezones.current().canonical(candidate)
    windows = _WINDOWS.get(name.casefold())
    if windows is not None and timezones.is_zone(windows):
        return timezones.current().canonical(windows)
    return None


class VTimezoneRules:
    """The clocks a VTIMEZONE describes: offset at any instant, from its observances."""

    def __init__(self, component: Component):
        self.tzid = (component.get("TZID") or _missing("TZID")).value
        self.observances: list[tuple[datetime, timedelta, timedelta, list[str], list[str]]] = []
        for child in component.components:
            if child.name not in ("STANDARD", "DAYLIGHT"):
                continue
            start = values.when((child.get("DTSTART") or _missing("DTSTART")).value, {})
            begin = start.value if isinstance(start.value, datetime) else _wall(1970, 1, 1)
            before = values.offset((child.get("TZOFFSETFROM") or _missing("TZOFFSETFROM")).value)
            after = values.offset((child.get("TZOFFSETTO") or _missing("TZOFFSETTO")).value)
            rules = [p.value for p in child.all("RRULE")]
            rdates = [p.value for p in child.all("RDATE")]
            self.observances.append((begin, before, after, rules, rdates))
        if not self.observances:
            raise ValueError("a VTIMEZONE without STANDARD or DAYLIGHT")
        self._years: tuple[int, int] | None = None
        self._changes: list[tuple[datetime, timedelta]] = []

    def changes(self, first: int, last: int) -> list[tuple[datetime, timedelta]]:
        """(UTC instant, offset after) of every onset from ``first - 1`` to ``last``."""
        if self._years is not None and self._years[0] <= first and last <= self._years[1]:
            return self._changes
        low = _wall(first - 1, 1, 1)
        high = _wall(last, 12, 31, 23, 59, 59)
        found: list[tuple[datetime, timedelta]] = []
        for begin, before, after, rules, rdates in self.observances:
            onsets = [begin] if begin <= high else []
            for rule in rules:
                text = _local_until(rule, before)
                onsets.extend(rule_between(text, begin, low, high))
            for raw in rdates:
                onsets.extend(
                    w.value for w in values.whens(raw, {}) if isinstance(w.value, datetime)
                )
            for onset in onsets:
                found.append(((onset - before).replace(tzinfo=UTC), after))
        found.sort()
        self._years, self._changes = (first, last), found
        return found

    def offset_at(self, instant: datetime) -> timedelta:
        """The UTC offset in force at ``instant`` (aware)."""
        year = instant.astimezone(UTC).year
        changes = self.changes(min(year, self._years[0] if self._years else year), year)
        current = self.observances[0][1]
        for at, after in changes:
            if at > instant:
                break
            current = after
        return current

    def to_utc(self, wall: datetime) -> datetime:
        """The instant of wall time ``wall`` (naive): of two, the first; in a gap, the
        offset before it."""
        offsets = sorted({o[1] for o in self.observances} | {o[2] for o in self.observances})
        for candidate in reversed(offsets):  # the largest offset is the earliest instant
            instant = (wall - candidate).replace(tzinfo=UTC)
            if self.offset_at(instant) == candidate:
                return instant
        before = self.offset_at((wall - offsets[0]).replace(tzinfo=UTC) - timedelta(hours=3))
        return (wall - before).replace(tzinfo=UTC)


def _wall(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    """A naive wall time (VTIMEZONE onsets are wall times in their offset before)."""
    return datetime(year, month, day, hour, minute, second)  # noqa: DTZ001


def _local_until(rule: str, before: timedelta) -> str:
    """An observance's RRULE with a UTC UNTIL written as the wall time it is (in the
    offset before its onsets), to go with its naive DTSTART."""

    def local(match: re.Match[str]) -> str:
        return "UNTIL=" + (_parse_wall(match.group(1)) + before).strftime("%Y%m%dT%H%M%S")

    return _UNTIL_UTC.sub(local, rule)


def _parse_wall(text: str) -> datetime:
    return datetime.strptime(text, "%Y%m%dT%H%M%S")  # noqa: DTZ007


def _missing(name: str) -> NoReturn:
    raise ValueError(f"a VTIMEZONE observance without {name}")


@dataclass(frozen=True)
class CustomZone:
    """A VTIMEZONE that keeps the clocks of no IANA zone: instants come from ``rules``."""

    tzid: str
    rules: VTimezoneRules


Zone = str | CustomZone


class ZoneResolver:
    """Resolves a file's TZIDs once each, collecting warnings for the import's report."""

    def __init__(
        self, vtimezones: Iterable[Component], *, hints: Sequence[str | None], source: str
    ):
        self.source = source
        self.vtimezones: dict[str, Component] = {}
        for component in vtimezones:
            tzid = component.get("TZID")
            if tzid is not None:
                self.vtimezones[values.text(tzid.value).strip()] = component
        self.hints = [h for h in hints if h]
        self.warnings: list[str] = []
        self._known: dict[str, Zone] = {}

    def resolve(self, tzid: str, year: int, *, line: int, where: str) -> Zone:
        tzid = tzid.strip()
        found = self._known.get(tzid)
        if found is not None:
            return found
        zone: Zone | None = iana_name(tzid)
        if zone is None:
            component = self.vtimezones.get(tzid)
            if component is None:
                raise InputError(
                    f"unknown TZID {tzid!r}: not an IANA or Windows zone name, and the file "
                    "has no VTIMEZONE for it",
                    file=self.source,
                    location=where,
                    field="TZID",
                )
            try:
                rules = VTimezoneRules(component)
                zone = self._match(rules, year, tzid)
            except ValueError as exc:
                raise InputError(
                    f"VTIMEZONE {tzid!r} (line {component.line}): {exc}",
                    file=self.source,
                    location=where,
                    field="TZID",
                ) from None
            if zone is None:
                zone = CustomZone(tzid, rules)
                self.warnings.append(
                    f"TZID {tzid!r}: its VTIMEZONE (line {component.line}) keeps the clocks "
                    "of no IANA zone; its times are computed from its own rules and kept as "
                    "instants"
                )
        self._known[tzid] = zone
        return zone

    def _match(self, rules: VTimezoneRules, year: int, tzid: str) -> str | None:
        """The first IANA zone with the same offset as ``rules`` at every sample of
        ``year`` and the next one, or None."""
        year = min(max(year, timezones.FIRST_YEAR + 1), timezones.LAST_YEAR - 1)
        changes = [at for at, _ in rules.changes(year, year + 1) if at.year >= year]
        samples = [datetime(year, 1, 1, 12, tzinfo=UTC) + timedelta(days=d) for d in range(730)]
        for at in changes:
            samples.extend((at - timedelta(minutes=1), at + timedelta(minutes=1)))
        expected = [rules.offset_at(s) for s in samples]
        probes = (0, 181, 365, 546)
        for zone in self._candidates(tzid):
            if all(_offset(zone, samples[i]) == expected[i] for i in probes) and all(
                _offset(zone, s) == e for s, e in zip(samples, expected, strict=True)
            ):
                return zone
        return None

    def _candidates(self, tzid: str) -> list[str]:
        names = sorted(
            n for n in timezones.current().names() if n.startswith(_REGIONS) and "/" in n
        )
        words = {w.casefold() for w in re.findall(r"[A-Za-z]+(?:[ _][A-Za-z]+)*", tzid)}
        text = tzid.casefold()
        named = sorted(
            (n for n in names if n.rsplit("/", 1)[-1].replace("_", " ").casefold() in words),
            key=lambda n: text.find(n.rsplit("/", 1)[-1].replace("_", " ").casefold()),
        )
        hinted = [h for h in self.hints if timezones.is_zone(h)]
        # CLDR's zone for each Windows zone: one well-known zone per set of rules
        # (Europe/Berlin before Africa/Ceuta, which keeps the same clocks). Outlook's
        # "(UTC+01:00) Amsterdam, Berlin, ..." is the display name of W. Europe Standard
        # Time, whose CLDR zone is Berlin: a named zone that is CLDR's comes first.
        primary = sorted(z for z in set(WINDOWS_TO_OLSON.values()) if timezones.is_zone(z))
        named_primary = [n for n in named if n in set(primary)]
        return list(dict.fromkeys([*named_primary, *named, *hinted, *primary, *names]))


def _offset(zone: str, instant: datetime) -> timedelta | None:
    return timezones.to_local(instant, zone).utcoffset()


def date_of(value: date | datetime) -> date:
    return value.date() if isinstance(value, datetime) else value
