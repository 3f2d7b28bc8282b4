"""ISO 8601 durations as calendar-svc reads them: RFC 5545's shape, read as icalendar does.

calendar-svc reads offsets itself (commands that only read them do not load icalendar);
these tests hold that reading to icalendar's ``vDuration`` over every shape, and to a
clear ValueError for everything else.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from icalendar import vDuration

from calendar_svc.durations import format_duration, parse_duration

numbers = st.integers(0, 10**12)


@st.composite
def shapes(draw: st.DrawFn) -> str:
    """RFC 5545 dur-values without a sign: weeks, or days and/or a time part."""
    if draw(st.booleans()):
        return f"P{draw(numbers)}W"
    days = draw(st.none() | numbers)
    units = [(u, draw(st.none() | numbers)) for u in "HMS"]
    time = "".join(f"{n}{u}" for u, n in units if n is not None)
    if days is None and not time:
        time = "0S"
    return f"P{'' if days is None else f'{days}D'}{'T' + time if time else ''}"


@settings(max_examples=300)
@given(text=shapes(), case=st.sampled_from((str.upper, str.lower)))
def test_every_shape_reads_as_icalendar_reads_it(text: str, case: object) -> None:
    try:
        expected: timedelta | None = vDuration.from_ical(text)  # type: ignore[no-untyped-call]
    except ValueError:  # too long for a timedelta: icalendar refuses it
        expected = None
    spelled = case(text)  # type: ignore[operator]
    if expected is None:
        with pytest.raises(ValueError, match="longer than any duration"):
            parse_duration(spelled)
    else:
        assert parse_duration(spelled) == expected
        assert parse_duration(format_duration(expected)) == expected


@pytest.mark.parametrize(
    "text", ["", "P", "PT", "P1H", "PT1D", "P1WT1H", "PT1.5H", "-PT1H", "P1Y", "PT1H1", "1H"]
)
def test_other_text_is_refused_with_examples(text: str) -> None:
    with pytest.raises(ValueError, match=r"not an ISO 8601 duration .*'PT15M'"):
        parse_duration(text)


@pytest.mark.parametrize("value", [None, 60, ["PT1H"], {"PT1H": 1}])
def test_what_is_not_text_is_refused(value: object) -> None:
    with pytest.raises(ValueError, match="expected an ISO 8601 duration string"):
        parse_duration(value)


@settings(max_examples=300)
@given(value=st.timedeltas(min_value=timedelta(0)))
def test_durations_are_written_as_icalendar_writes_them(value: timedelta) -> None:
    written = vDuration(value).to_ical().decode()  # type: ignore[no-untyped-call]
    assert format_duration(value) == written
    assert parse_duration(written) == timedelta(days=value.days, seconds=value.seconds)


def test_negative_durations_are_not_written() -> None:
    with pytest.raises(ValueError, match="never negative"):
        format_duration(timedelta(minutes=-5))
