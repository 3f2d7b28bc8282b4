"""Share links in the store: created with a digest only, listed, revoked alone, fetch statistics
added in batches. Runs on SQLite and PostgreSQL (the ``store`` fixture)."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta

import pytest
import sqlalchemy as sa
from conftest import FakeClock

from calendar_svc.errors import InputError, NotFoundError
from calendar_svc.filters import EntryFilter
from calendar_svc.shares import OWNER, Fetches, ShareLinks, parse_expiry, token_digest
from calendar_svc.store import Store
from calendar_svc.timezones import UTC

SLUG = "rubio-2025-09"


@pytest.fixture
def links(trip_store: Store) -> ShareLinks:
    return ShareLinks(trip_store)


def test_only_a_digest_of_the_token_is_stored(links: ShareLinks, trip_store: Store) -> None:
    info, token = links.create(SLUG, "Press office")
    assert info.name == "Press office" and info.state(trip_store.clock()) == "active"
    assert len(token) >= 43
    with trip_store.engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT * FROM share_links")).mappings().all()
    assert len(rows) == 1
    stored = " ".join(str(value) for value in rows[0].values())
    assert token not in stored and token[:12] not in stored
    assert rows[0]["token_digest"] == hashlib.sha256(token.encode()).hexdigest()


def test_create_and_revoke_bump_the_version_but_not_last_modified(
    links: ShareLinks, trip_store: Store, clock: FakeClock
) -> None:
    before = trip_store.get_calendar(SLUG)
    clock.advance(timedelta(hours=1))
    links.create(SLUG, "Press office")
    created = trip_store.get_calendar(SLUG)
    assert created.version == before.version + 1
    assert created.updated_at == before.updated_at  # the feed's bytes did not change
    links.revoke(SLUG, "Press office")
    assert trip_store.get_calendar(SLUG).version == before.version + 2


def test_grants_hold_live_links_by_digest(links: ShareLinks, trip_store: Store) -> None:
    _, press = links.create(SLUG, "Press office")
    _, quito = links.create(SLUG, "Embassy Quito", cities=["quito"], categories=["MEETING"])
    links.revoke(SLUG, "Press office")
    grants = links.grants(trip_store.get_calendar(SLUG).id)
    assert set(grants) == {token_digest(quito)}
    grant = grants[token_digest(quito)]
    # Stored as the calendar spells them.
    assert grant.cities == ("Quito",) and grant.categories == ("meeting",)
    assert press not in repr(grants) and quito not in repr(grants)
    narrowed = trip_store.entries(grant.narrow(EntryFilter(calendar=SLUG)))
    assert [e.uid for e in narrowed] == ["noboa-meeting"]
    assert OWNER.narrow(EntryFilter(city="Quito")) == EntryFilter(city="Quito")


def test_names_are_unique_among_live_links(links: ShareLinks) -> None:
    links.create(SLUG, "Press office")
    with pytest.raises(InputError, match="already has a link called 'Press office'"):
        links.create(SLUG, "  Press   office ")
    links.revoke(SLUG, "Press office")
    links.create(SLUG, "Press office")  # a revoked name may be used again
    assert [(i.name, i.revoked_at is None) for i in links.list(SLUG)] == [
        ("Press office", True),
        ("Press office", False),
    ]


def test_bad_input_is_refused_with_the_reason(links: ShareLinks) -> None:
    with pytest.raises(InputError, match=r"has city 'Lima' \(its cities: Mexico City, Quito"):
        links.create(SLUG, "x", cities=["Lima"])
    with pytest.raises(InputError, match="has category 'golf'"):
        links.create(SLUG, "x", categories=["golf"])
    with pytest.raises(InputError, match="must not be empty"):
        links.create(SLUG, "   ")
    with pytest.raises(InputError, match="at most 200"):
        links.create(SLUG, "x" * 201)
    with pytest.raises(NotFoundError, match="no calendar 'nope'"):
        links.create("nope", "x")
    with pytest.raises(NotFoundError, match=r"no live link called 'ghost' \(it has none\)"):
        links.revoke(SLUG, "ghost")
    assert links.list(SLUG) == []


def test_parse_expiry() -> None:
    now = datetime(2025, 9, 1, 12, 0, tzinfo=UTC)
    zone = "America/Mexico_City"
    # A day: through that day in the calendar's zone (UTC-06:00).
    assert parse_expiry("2025-09-30", zone, now) == datetime(2025, 10, 1, 6, 0, tzinfo=UTC)
    assert parse_expiry("2025-09-30T18:00", zone, now) == datetime(2025, 10, 1, 0, 0, tzinfo=UTC)
    assert parse_expiry("2025-09-30T18:00Z", zone, now) == datetime(2025, 9, 30, 18, tzinfo=UTC)
    assert parse_expiry("P30D", zone, now) == now + timedelta(days=30)
    assert parse_expiry("PT2S", zone, now) == now + timedelta(seconds=2)
    for bad, reason in [
        ("2025-08-31", "not in the future"),
        ("2025-09-40", "--expires expects a date as YYYY-MM-DD"),
        ("soon", "--expires expects a day"),
        ("P1Y", "--expires: 'P1Y' is not an ISO 8601 duration"),
    ]:
        with pytest.raises(InputError, match=reason):
            parse_expiry(bad, zone, now)
    with pytest.raises(InputError, match="--expires: "):
        parse_expiry("2026-03-08T02:30", "America/New_York", now)  # a DST gap there


def test_expired_links_are_listed_as_expired(links: ShareLinks, clock: FakeClock) -> None:
    links.create(SLUG, "Visit", expires_at=clock.now + timedelta(days=1))
    (info,) = links.list(SLUG)
    assert info.state(clock.now) == "active"
    assert info.state(clock.now + timedelta(days=1)) == "expired"
    with pytest.raises(InputError, match="not in the future"):
        links.create(SLUG, "Late", expires_at=clock.now)


def test_fetch_counts_add_up_and_keep_the_newest_client(
    links: ShareLinks, trip_store: Store
) -> None:
    links.create(SLUG, "Press office")
    links.create(SLUG, "Family")
    ids = {g.name: g.share_id for g in links.grants(trip_store.get_calendar(SLUG).id).values()}
    press, family = ids["Press office"], ids["Family"]
    assert press is not None and family is not None
    t0 = datetime(2025, 9, 2, 12, 0, tzinfo=UTC)
    links.record_fetches({press: Fetches(3, t0, "Google-Calendar-Importer")})
    # Another server's batch, older: counts add up, the newest fetch stays.
    links.record_fetches(
        {
            press: Fetches(2, t0 - timedelta(minutes=5), "iOS/18.0 (22A3354) dataaccessd/1.0"),
            family: Fetches(1, t0, "Microsoft Outlook 16.0"),
        }
    )
    by_name = {info.name: info for info in links.list(SLUG)}
    assert by_name["Press office"].fetches == 5
    assert by_name["Press office"].last_fetch_at == t0
    assert by_name["Press office"].last_user_agent == "Google-Calendar-Importer"
    assert by_name["Family"].last_user_agent == "Microsoft Outlook 16.0"
    links.record_fetches({press: Fetches(1, t0 + timedelta(hours=1), "iOS/18.0")})
    (press_info,) = [i for i in links.list(SLUG) if i.name == "Press office"]
    assert press_info.fetches == 6 and press_info.last_user_agent == "iOS/18.0"
    # Current: fetched within twice the refresh interval.
    refresh = timedelta(hours=1)
    assert press_info.current(t0 + timedelta(hours=3), refresh)
    assert not press_info.current(t0 + timedelta(hours=3, seconds=1), refresh)
    assert not by_name["Family"].current(t0 + timedelta(days=1), refresh)
