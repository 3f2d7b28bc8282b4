"""Fetch statistics of share links, counted in memory and written in batches (feed/fetches.py):
nothing is lost when a write fails, everything is written at close, never a write per fetch."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

import pytest

from calendar_svc.feed.fetches import FetchLog
from calendar_svc.shares import ShareLinks
from calendar_svc.store import Store
from calendar_svc.timezones import UTC

SLUG = "rubio-2025-09"
T0 = datetime(2025, 9, 2, 12, 0, tzinfo=UTC)


def test_counts_wait_in_memory_and_survive_a_failed_write(
    trip_store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    links = ShareLinks(trip_store)
    links.create(SLUG, "Press office")
    (grant,) = links.grants(trip_store.get_calendar(SLUG).id).values()
    assert grant.share_id is not None
    down = ShareLinks(Store("postgresql+psycopg://nobody@127.0.0.1:9/none?connect_timeout=2"))
    target = [down]
    log = FetchLog(lambda counts: target[0].record_fetches(counts), interval=3600)
    for second in range(5):
        log.record(grant.share_id, T0 + timedelta(seconds=second), b"Google-Calendar-Importer")
    assert log.pending() == 5
    assert links.list(SLUG)[0].fetches == 0  # nothing written per fetch

    caplog.set_level(logging.WARNING, "calendar_svc.feed")
    assert log.flush() == 0  # the database is away: kept for the next write
    assert "feed.stats_write_failed" in caplog.text and log.pending() == 5
    log.record(grant.share_id, T0 + timedelta(minutes=1), b"iOS/18.6 dataaccessd/1.0")

    target[0] = links
    log.close()  # the server stops: the rest is written
    (info,) = links.list(SLUG)
    assert info.fetches == 6 and log.pending() == 0
    assert info.last_fetch_at == T0 + timedelta(minutes=1)
    assert info.last_user_agent == "iOS/18.6 dataaccessd/1.0"
    target[0].store.close()
    down.store.close()


def test_a_long_user_agent_is_cut(trip_store: Store) -> None:
    links = ShareLinks(trip_store)
    links.create(SLUG, "Family")
    (grant,) = links.grants(trip_store.get_calendar(SLUG).id).values()
    assert grant.share_id is not None
    log = FetchLog(links.record_fetches, interval=3600)
    log.record(grant.share_id, T0, b"A" * 5000)
    log.close()
    assert links.list(SLUG)[0].last_user_agent == "A" * 300


def test_the_interval_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        FetchLog(lambda counts: None, interval=0)
