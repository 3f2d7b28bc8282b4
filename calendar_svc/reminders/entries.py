"""The entry reads of the planner and the dispatcher, in the caller's transaction.

The planner asks which entries may have reminders due in a window
(``entries_for_window``, bounded by ``longest_offset``); the dispatcher asks
for the entries of the rows it claimed (``entries_by_key``), to check that
the rules still want each reminder (an entry the engine cannot use,
``isolation.problem``, is left out: its reminders are not sent). Every entry comes with its calendar
loaded. Each function takes a session: the caller owns the transaction.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Text, and_, or_, select, text
from sqlalchemy.orm import Session, contains_eager, selectinload

from calendar_svc.db import is_sqlite
from calendar_svc.isolation import problem
from calendar_svc.models import Calendar, Entry, recurring
from calendar_svc.validation import offset


def entries_for_window(
    session: Session, start: datetime, end: datetime, *, lead: timedelta, all_day_lead: timedelta
) -> list[Entry]:
    """Entries that may have reminders due in ``[start, end]`` (calendar loaded).

    A timed entry's reminders are due at most ``lead`` before it starts, an
    all-day entry's at most ``all_day_lead``; recurring entries (an RRULE or
    RDATEs) are all returned, their occurrences are found by the rules.
    """
    timed = and_(Entry.all_day.is_(False), Entry.start_utc.between(start, end + lead))
    all_day = and_(Entry.all_day.is_(True), Entry.start_utc.between(start, end + all_day_lead))
    widest = Entry.start_utc.between(start, end + max(lead, all_day_lead))
    # Two reads, each on an index (``start_utc``; ``ix_entries_recurring``, 0011), rather
    # than one OR that SQLite answers by scanning every entry: at a million entries the
    # difference is seconds on every planner pass and every ``calendar-svc reminders``.
    found: dict[int, Entry] = {}
    for where in (and_(widest, or_(timed, all_day)), recurring()):
        # No join: joined to calendars, SQLite walked a calendar's whole feed-order index
        # for the recurring ones. The few calendars come in one more SELECT.
        query = select(Entry).options(selectinload(Entry.calendar)).where(where)
        found.update((entry.id, entry) for entry in session.scalars(query))
    return sorted(found.values(), key=lambda entry: (entry.start_utc, entry.id))


def entries_by_key(
    session: Session, keys: Iterable[tuple[str, str]]
) -> dict[tuple[str, str], Entry]:
    """``(calendar slug, uid) -> entry`` for those of ``keys`` that exist."""
    wanted = set(keys)
    if not wanted:
        return {}
    query = (
        select(Entry)
        .join(Entry.calendar)
        .options(contains_eager(Entry.calendar))
        .where(Calendar.slug.in_({s for s, _ in wanted}), Entry.uid.in_({u for _, u in wanted}))
    )
    found = {(e.calendar.slug, e.uid): e for e in session.scalars(query).unique()}
    # An entry the engine cannot use is as good as gone: its reminders are not sent.
    return {key: entry for key, entry in found.items() if key in wanted and problem(entry) is None}


# The distinct override lists of all entries. There are few (most entries inherit their
# calendar's: null), so they are read as a loose index scan on ``ix_entries_reminder_lists``
# (0011): one index seek per distinct list, where a DISTINCT walks every entry (0.16 s of
# every planner pass and every `calendar-svc reminders` at a million entries, against well
# under a millisecond). The index is on the column in SQLite (JSON kept as text) and on its
# text in PostgreSQL (json has no ordering), so the query names the same expression.
_LOOSE_SCAN = """
    WITH RECURSIVE lists(v) AS (
        SELECT MIN({list}) FROM entries
        UNION ALL
        SELECT (SELECT MIN({list}) FROM entries WHERE {list} > lists.v)
        FROM lists WHERE lists.v IS NOT NULL
    )
    SELECT v FROM lists WHERE v IS NOT NULL
    """
_DISTINCT_OVERRIDES = {
    True: text(_LOOSE_SCAN.format(list="reminders")).columns(v=Text),
    False: text(_LOOSE_SCAN.format(list="CAST(reminders AS TEXT)")).columns(v=Text),
}


def longest_offset(session: Session, defaults: Sequence[timedelta]) -> timedelta:
    """The largest offset any entry can have: config, calendar and entry overrides. An
    offset the engine cannot use (a hand-edited row) counts for nothing: its entry is
    isolated (``isolation``); at most ``validation.MAX_OFFSET``."""
    found: list[Any] = []
    for offsets in session.scalars(select(Calendar.reminders)):
        found.extend(offsets if isinstance(offsets, list) else [])
    for raw in session.scalars(_DISTINCT_OVERRIDES[is_sqlite(session)]):
        try:
            offsets = json.loads(raw) if raw else None
        except ValueError:
            continue
        found.extend(offsets if isinstance(offsets, list) else [])
    usable = list(defaults)
    for written in found:
        try:
            usable.append(offset(written))
        except (ValueError, OverflowError):
            continue
    return max(usable, default=timedelta(0))
