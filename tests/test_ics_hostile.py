"""Hostile .ics input: each parses within its limits or is refused with a clear reason."""

from __future__ import annotations

import pytest

from calendar_svc.errors import InputError
from calendar_svc.ics_in import IcsOptions, parse_ics

HEAD = b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\n"
TAIL = b"END:VCALENDAR\r\n"
EVENT = b"BEGIN:VEVENT\r\nUID:e1\r\nDTSTART:20250902T100000Z\r\nSUMMARY:Meeting\r\nEND:VEVENT\r\n"


def parse(data: bytes, **options: object):  # type: ignore[no-untyped-def]
    return parse_ics(data, IcsOptions(slug="h", zone="UTC", **options), source="h.ics")  # type: ignore[arg-type]


def refused(data: bytes) -> str:
    with pytest.raises(InputError) as caught:
        parse(data)
    return str(caught.value)


def test_nul_bytes_are_refused_naming_the_line() -> None:
    data = HEAD + EVENT.replace(b"SUMMARY:Meeting", b"SUMMARY:Mee\x00ting") + TAIL
    assert refused(data) == "h.ics: line 7: a NUL byte: not allowed in iCalendar text"


def test_broken_folding_is_refused_naming_the_line() -> None:
    data = (
        HEAD
        + EVENT.replace(
            b"SUMMARY:Meeting", b"SUMMARY:A long title that was\r\nfolded without a space"
        )
        + TAIL
    )
    message = refused(data)
    assert message.startswith("h.ics: line 8: not a content line")
    assert "broken folding" in message


def test_deep_nesting_is_refused() -> None:
    data = HEAD + b"BEGIN:X-A\r\n" * 1000 + b"END:X-A\r\n" * 1000 + TAIL
    assert "nested more than 8 deep" in refused(data)


def test_a_body_that_is_not_icalendar_is_refused() -> None:
    assert "not an iCalendar (.ics) body: it starts with '<!doctype html>" in refused(
        b"<!doctype html><html>...</html>"
    )


def test_a_cut_short_file_is_refused() -> None:
    assert "BEGIN:VEVENT on line 4 has no END:VEVENT (the file is cut short)" in refused(
        HEAD + EVENT[:-12]
    )


def test_a_million_lines_parse_within_the_limits() -> None:
    padding = b"X-PADDING:0123456789\r\n" * 1_000_000
    result = parse(HEAD + EVENT.replace(b"END:VEVENT", padding + b"END:VEVENT") + TAIL)
    assert [e.uid for e in result.spec.entries] == ["e1"]


def test_more_lines_than_the_limit_are_refused() -> None:
    assert "more than 2,000,000 lines" in refused(HEAD + b"X:1\n" * 2_000_001 + TAIL)


def test_an_rrule_of_a_million_occurrences_is_refused_with_the_cap() -> None:
    data = HEAD + EVENT.replace(b"SUMMARY", b"RRULE:FREQ=MINUTELY;COUNT=1000000\r\nSUMMARY") + TAIL
    message = refused(data)
    assert "field 'RRULE'" in message and "10,000" in message


def test_a_yearly_rule_with_a_large_count_is_kept_as_a_rule() -> None:
    data = HEAD + EVENT.replace(b"SUMMARY", b"RRULE:FREQ=DAILY;COUNT=300\r\nSUMMARY") + TAIL
    assert parse(data).spec.entries[0].rrule == "FREQ=DAILY;COUNT=300"


def test_invalid_utf8_is_refused_naming_the_line() -> None:
    data = HEAD + EVENT.replace(b"Meeting", b"Meet\xff") + TAIL
    assert "h.ics: line 7: not UTF-8 text: invalid byte 0xff" in refused(data)


def test_a_fold_inside_a_utf8_character_still_reads() -> None:
    title = "Reunión en Quito".encode()
    cut = title.index(b"\xc3") + 1  # between the two bytes of "ó"
    folded = b"SUMMARY:" + title[:cut] + b"\r\n " + title[cut:]
    result = parse(HEAD + EVENT.replace(b"SUMMARY:Meeting", folded) + TAIL)
    assert result.spec.entries[0].title == "Reunión en Quito"
