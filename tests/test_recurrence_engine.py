"""The recurrence engine: what it accepts, and that its bounded expansion is dateutil's.

``recurrence.parse_rule`` / ``check_rule`` refuse what the engine cannot use
(issue 12); the expansion starts a rule without COUNT near the window and moves
the computation by 400-year cycles, which must change nothing: every window
gives exactly what dateutil's plain ``rrule`` gives from the DTSTART.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta

import pytest
from dateutil.rrule import rrulestr
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from calendar_svc.errors import RuleError
from calendar_svc.recurrence import MAX_OCCURRENCES, check_rule, rule_between

START = datetime(2025, 9, 2, 10, 0)


@pytest.mark.parametrize(
    ("rule", "reason"),
    [
        ("FREQ=DAILY;BYHOUR=99", "BYHOUR takes numbers from 0 to 23"),
        ("FREQ=DAILY;BYSECOND=60", "BYSECOND takes numbers from 0 to 59"),
        ("FREQ=DAILY;BYSETPOS=0", "not 0"),
        ("FREQ=MONTHLY;BYDAY=+6MO", "a month has at most 5 of each weekday"),
        ("FREQ=YEARLY;BYDAY=+54MO", "1 to 53"),
        ("FREQ=WEEKLY;BYDAY=+1MO", "only for MONTHLY or YEARLY"),
        ("FREQ=DAILY;;", "an empty part"),
        ("FREQ=DAILY;", "an empty part"),
        ("FREQ=DAILY;X-NAME=1", "unknown part 'X-NAME'"),
        ("FREQ=DAILY;COUNT=2;COUNT=3", "COUNT is given twice"),
        ("FREQ=FORTNIGHTLY", "FREQ=FORTNIGHTLY is not one of"),
        ("COUNT=3", "needs FREQ"),
        ("FREQ=DAILY;INTERVAL=0", "INTERVAL must be a whole number from 1"),
        ("FREQ=DAILY;COUNT=10001", "COUNT must be a whole number from 1 to 10,000"),
        ("FREQ=DAILY;COUNT=3;UNTIL=20251231", "COUNT or UNTIL, not both"),
        ("FREQ=DAILY;UNTIL=20251332", "not a real date"),
        ("FREQ=MINUTELY;BYWEEKNO=-16;BYMONTHDAY=4", "BYWEEKNO is only for FREQ=YEARLY"),
        ("FREQ=WEEKLY;BYMONTHDAY=4", "BYMONTHDAY is not for FREQ=WEEKLY"),
        ("FREQ=MONTHLY;BYYEARDAY=4", "BYYEARDAY is not for FREQ=MONTHLY"),
        ("FREQ=DAILY;BYSETPOS=1", "BYSETPOS needs another BY part"),
        ("FREQ=SECONDLY;BYSETPOS=234;BYHOUR=1", "picks nothing, ever"),
        ("FREQ=SECONDLY", "more than 10,000 times within its first year"),
        ("FREQ=DAILY;BYMONTH=2;BYMONTHDAY=30", "never fires"),
        ("FREQ=MONTHLY;BYDAY=MO;BYSETPOS=6", "never fires"),
        ("FREQ=DAILY;UNTIL=20200101", "never fires"),
        ("FREQ=HOURLY;INTERVAL=2;BYHOUR=11", "never fires"),
    ],
)
def test_rules_the_engine_cannot_use_are_refused_with_the_reason(rule: str, reason: str) -> None:
    started = time.monotonic()
    with pytest.raises(RuleError) as refused:
        check_rule(rule, START, "America/Mexico_City", all_day=False)
    assert reason in refused.value.detail
    # Bounded: even "never fires" is a search of at most a few centuries of days.
    assert time.monotonic() - started < 30


def test_an_all_day_entry_takes_a_date_until() -> None:
    day = datetime(2025, 9, 2)
    assert check_rule("FREQ=DAILY;UNTIL=20250910", day, "UTC", all_day=True)
    with pytest.raises(RuleError, match="UNTIL must be a date"):
        check_rule("FREQ=DAILY;UNTIL=20250910T000000Z", day, "UTC", all_day=True)


def test_a_rule_is_stored_as_written_without_its_prefix() -> None:
    assert check_rule(" RRULE:FREQ=weekly;BYDAY=MO ", START, "UTC", all_day=False) == (
        "FREQ=weekly;BYDAY=MO"
    )


def test_a_window_holds_at_most_max_occurrences() -> None:
    found = rule_between("FREQ=MINUTELY", START, START, START + timedelta(days=30))
    assert len(found) == MAX_OCCURRENCES
    assert found[0] == START and found[-1] == START + timedelta(minutes=MAX_OCCURRENCES - 1)


def test_a_window_centuries_after_the_start_holds_what_it_should() -> None:
    late = datetime(2199, 6, 1)
    found = rule_between("FREQ=MINUTELY;INTERVAL=7", START, late, late + timedelta(hours=1))
    first = -(-(late - START) // timedelta(minutes=7))  # the first step on or after `late`
    expected = [START + timedelta(minutes=7 * (first + n)) for n in range(9)]
    assert found == [w for w in expected if w <= late + timedelta(hours=1)]


FREQUENCIES = ["YEARLY", "MONTHLY", "WEEKLY", "DAILY", "HOURLY", "MINUTELY"]


@st.composite
def rules(draw: st.DrawFn) -> str:
    freq = draw(st.sampled_from(FREQUENCIES))
    parts = [f"FREQ={freq}"]
    if draw(st.booleans()):
        parts.append(f"INTERVAL={draw(st.integers(1, 13))}")
    if draw(st.booleans()):
        weekdays = st.sampled_from(["MO", "TU", "WE", "TH", "FR", "SA", "SU"])
        days = draw(st.lists(weekdays, min_size=1, max_size=3))
        parts.append("BYDAY=" + ",".join(dict.fromkeys(days)))
    if freq != "WEEKLY" and draw(st.booleans()):
        parts.append(f"BYMONTHDAY={draw(st.sampled_from([1, 15, 28, 31, -1]))}")
    if draw(st.booleans()):
        parts.append(f"BYMONTH={draw(st.integers(1, 12))}")
    if freq in ("YEARLY", "MONTHLY", "WEEKLY", "DAILY") and draw(st.booleans()):
        parts.append(f"BYHOUR={draw(st.integers(0, 23))}")
    if draw(st.booleans()):
        parts.append(f"WKST={draw(st.sampled_from(['MO', 'SU', 'WE']))}")
    if draw(st.booleans()):
        parts.append(f"COUNT={draw(st.integers(1, 40))}")
    return ";".join(parts)


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    rule=rules(),
    start=st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2030, 12, 31)),
    data=st.data(),
)
def test_the_bounded_expansion_is_dateutils(
    rule: str, start: datetime, data: st.DataObject
) -> None:
    start = start.replace(second=0, microsecond=0)
    try:
        check_rule(rule, start, "UTC", all_day=False)
    except RuleError:
        return  # refused: the engine never expands it
    # dateutil's plain rule walks from the start: keep its walk short for dense rules.
    dense = "HOURLY" in rule or "MINUTELY" in rule
    after = data.draw(st.sampled_from([0, 3, 40] if dense else [0, 3, 40, 400, 4000]))
    hours = data.draw(st.sampled_from([1, 30, 24 * 40]))
    low = start + timedelta(days=after)
    high = low + timedelta(hours=hours)
    expected = [w for w in rrulestr(rule, dtstart=start).between(low, high, inc=True)]
    assert rule_between(rule, start, low, high) == expected[:MAX_OCCURRENCES]
