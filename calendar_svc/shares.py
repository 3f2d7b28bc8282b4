"""Share links: one token per subscriber, each revocable alone, with fetch statistics.

A calendar's own token (``feed-url``, ``rotate-token``) is its owner's link.
A share link is a second token for one subscriber ("Press office"), which
opens the same page and feed, optionally narrowed to some cities or
categories and ending at an expiry. Only the SHA-256 digest of its token is
stored: ``create`` returns the token once, for the operator to hand out, and
nobody can read it back from the database.

How a running feed server learns of a new or revoked link without a query per
request: creating and revoking a link bump the calendar's ``version`` in the
same transaction (the version every feed request already reads); a server
keeps the live links of a calendar per version (``grants``), so the request
after a revoke, in any process, no longer finds it. The bump does not move the
calendar's ``updated_at``: the feed's bytes and Last-Modified stay the same.

Fetch statistics (count, last fetch, last ``User-Agent``) are counted in
memory by the feed server and written here in batches (``record_fetches``),
never one write per poll. Every session opens through the store.
"""

from __future__ import annotations

import hashlib
import secrets
import shlex
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import bindparam, case, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from calendar_svc.durations import parse_duration
from calendar_svc.errors import InputError, NotFoundError, TimeInputError
from calendar_svc.filters import EntryFilter, parse_day
from calendar_svc.holders import holder_name, token_state
from calendar_svc.models import Calendar, ShareLink, UTCDateTime
from calendar_svc.store import Store
from calendar_svc.timezones import day_start_utc, ensure_utc, to_utc

# How much of a User-Agent is kept: enough to tell Google, iOS and Outlook apart.
USER_AGENT_MAX = 300


def new_token() -> str:
    """An unguessable share token (256 bits, URL-safe), like a calendar's own."""
    return secrets.token_urlsafe(32)


def token_digest(token: str) -> bytes:
    """The SHA-256 of a token as presented in a URL (the raw 32 bytes)."""
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).digest()


@dataclass(frozen=True, slots=True)
class Grant:
    """What a token allows, as a feed server keeps it in memory (no token, no digest):
    a live share link's, or ``OWNER`` (the calendar's own token: everything, for ever)."""

    share_id: int | None  # None: the calendar's own token
    name: str
    expires_at: datetime | None
    cities: tuple[str, ...]
    categories: tuple[str, ...]

    def expired(self, now: datetime) -> bool:
        return self.expires_at is not None and now >= self.expires_at

    def narrow(self, flt: EntryFilter) -> EntryFilter:
        """``flt`` (a request's filter) within this link's restriction."""
        if not (self.cities or self.categories):
            return flt
        return EntryFilter(
            calendar=flt.calendar,
            city=flt.city,
            category=flt.category,
            start=flt.start,
            end=flt.end,
            include_cancelled=flt.include_cancelled,
            cities=self.cities,
            categories=self.categories,
        )


OWNER = Grant(share_id=None, name="owner", expires_at=None, cities=(), categories=())


@dataclass(frozen=True, slots=True)
class Fetches:
    """Fetches of one link counted in memory since the last write."""

    count: int
    last_at: datetime
    user_agent: str | None


@dataclass(frozen=True)
class ShareInfo:
    """One link as ``calendar-svc shares`` shows it."""

    name: str
    calendar: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    cities: tuple[str, ...]
    categories: tuple[str, ...]
    fetches: int
    last_fetch_at: datetime | None
    last_user_agent: str | None

    def state(self, now: datetime) -> str:
        """``active``, ``expired`` or ``revoked``."""
        return token_state(now, expires_at=self.expires_at, revoked_at=self.revoked_at)

    def current(self, now: datetime, refresh_interval: timedelta) -> bool:
        """Whether its client keeps up: it fetched within twice the refresh interval apps are
        asked to poll at (``[feed] refresh_interval``)."""
        return self.last_fetch_at is not None and now - self.last_fetch_at <= 2 * refresh_interval


def parse_expiry(value: str, zone: str, now: datetime) -> datetime:
    """When a link given ``--expires VALUE`` stops working, as a UTC instant.

    ``2025-09-30``: it works through that day in ``zone`` (the calendar's);
    ``2025-09-30T18:00`` in ``zone``, or with an offset (``…Z``, ``…-05:00``);
    ``P30D``: that long from ``now``. Refuses a time that is not in the future.
    """
    text = value.strip()
    if text[:1] in ("P", "p"):
        try:
            instant = now + parse_duration(text)
        except ValueError as exc:
            raise InputError(f"--expires: {exc}") from None
    elif len(text) == 10:
        day = parse_day(text, "--expires")
        assert day is not None
        instant = day_start_utc(day + timedelta(days=1), zone)
    else:
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            raise InputError(
                "--expires expects a day (2025-09-30), a date-time (2025-09-30T18:00, in "
                f"{zone} unless it has an offset) or a duration (P30D), got {value!r}"
            ) from None
        try:
            instant = ensure_utc(moment) if moment.tzinfo else to_utc(moment, zone)
        except TimeInputError as exc:
            raise InputError(f"--expires: {exc}") from None
    if instant <= now:
        raise InputError(f"--expires {value!r} is not in the future ({instant:%Y-%m-%d %H:%M}Z)")
    return instant


def _pick(
    wanted: Iterable[str], known: Iterable[str], what: tuple[str, str], slug: str
) -> tuple[str, ...]:
    """``wanted`` spelt as the calendar spells them; InputError naming the unknown ones."""
    by_fold = {name.casefold(): name for name in known if name}
    picked: dict[str, None] = {}
    for name in wanted:
        spelt = by_fold.get(name.strip().casefold())
        if spelt is None:
            choices = ", ".join(sorted(by_fold.values())) or "none"
            raise InputError(
                f"no entry of {slug!r} has {what[0]} {name!r} (its {what[1]}: {choices})"
            )
        picked[spelt] = None
    return tuple(picked)


class ShareLinks:
    """The share links of a store's calendars: create, list, revoke, and what servers read."""

    def __init__(self, store: Store):
        self.store = store

    def create(
        self,
        slug: str,
        name: str,
        *,
        expires_at: datetime | None = None,
        cities: Sequence[str] = (),
        categories: Sequence[str] = (),
    ) -> tuple[ShareInfo, str]:
        """A new link for ``slug``; returns it and its token (the only time it is known).

        ``cities`` / ``categories`` must be ones the calendar's entries use (in any
        case; stored as the calendar spells them). Raises InputError for a name that
        a live link of the calendar already has.
        """
        name = holder_name(name, example='who the link is for ("Press office")')
        calendar = self.store.get_calendar(slug)
        entries = self.store.entries(EntryFilter(calendar=slug))
        picked_cities = _pick(cities, (e.city for e in entries), ("city", "cities"), slug)
        picked_categories = _pick(
            categories,
            (c for e in entries for c in e.categories or []),
            ("category", "categories"),
            slug,
        )
        token = new_token()
        now = self.store.clock()
        if expires_at is not None and expires_at <= now:
            raise InputError("the link's expiry is not in the future")
        try:
            with self.store.write() as session:
                row = session.get(Calendar, calendar.id)
                if row is None:
                    raise NotFoundError(f"no calendar {slug!r}")
                if self._live(session, calendar.id, name) is not None:
                    raise InputError(
                        f"{slug!r} already has a link called {name!r}; pick another name, or "
                        f"revoke it first (calendar-svc unshare {slug} {shlex.quote(name)})"
                    )
                link = ShareLink(
                    calendar_id=calendar.id,
                    name=name,
                    token_digest=token_digest(token).hex(),
                    cities=list(picked_cities),
                    categories=list(picked_categories),
                    created_at=now,
                    expires_at=expires_at,
                    fetches=0,
                )
                session.add(link)
                # Running servers see the new link from their next request on.
                row.version += 1
                session.flush()
                info = _info(link, slug)
        except IntegrityError:
            raise InputError(f"{slug!r} already has a link called {name!r}") from None
        return info, token

    def list(self, slug: str) -> list[ShareInfo]:
        """Every link of ``slug``, live ones first, each group oldest first."""
        calendar = self.store.get_calendar(slug)
        with self.store.read() as session:
            rows = session.scalars(
                select(ShareLink)
                .where(ShareLink.calendar_id == calendar.id)
                .order_by(ShareLink.revoked_at.is_not(None), ShareLink.created_at, ShareLink.id)
            ).all()
            return [_info(row, slug) for row in rows]

    def revoke(self, slug: str, name: str) -> ShareInfo:
        """Revoke the live link ``name`` of ``slug``: it answers 404 from the next request on,
        in every server. NotFoundError, listing the live names, when there is none."""
        calendar = self.store.get_calendar(slug)
        wanted = " ".join(name.split())
        now = self.store.clock()
        with self.store.write() as session:
            link = self._live(session, calendar.id, wanted)
            if link is None:
                live = session.scalars(
                    select(ShareLink.name)
                    .where(ShareLink.calendar_id == calendar.id, ShareLink.revoked_at.is_(None))
                    .order_by(ShareLink.name)
                ).all()
                known = ", ".join(repr(n) for n in live) if live else "it has none"
                raise NotFoundError(f"{slug!r} has no live link called {name!r} ({known})")
            link.revoked_at = now
            row = session.get(Calendar, calendar.id)
            assert row is not None
            row.version += 1
            session.flush()
            return _info(link, slug)

    @staticmethod
    def _live(session: Session, calendar_id: int, name: str) -> ShareLink | None:
        return session.scalar(
            select(ShareLink).where(
                ShareLink.calendar_id == calendar_id,
                ShareLink.name == name,
                ShareLink.revoked_at.is_(None),
            )
        )

    # -- what feed servers read and write ------------------------------------------------

    def grants(self, calendar_id: int) -> dict[bytes, Grant]:
        """The live (unrevoked) links of a calendar by token digest; expired ones included
        (the server compares the expiry with its clock on every request)."""
        with self.store.read() as session:
            rows = session.execute(
                select(
                    ShareLink.id,
                    ShareLink.name,
                    ShareLink.token_digest,
                    ShareLink.expires_at,
                    ShareLink.cities,
                    ShareLink.categories,
                ).where(ShareLink.calendar_id == calendar_id, ShareLink.revoked_at.is_(None))
            ).all()
        return {
            bytes.fromhex(digest): Grant(
                share_id=share_id,
                name=name,
                expires_at=expires_at,
                cities=tuple(cities or ()),
                categories=tuple(categories or ()),
            )
            for share_id, name, digest, expires_at, cities, categories in rows
        }

    def record_fetches(self, counts: Mapping[int, Fetches]) -> None:
        """Add fetches counted in memory (share id -> counts) in one transaction.

        Counts add up, so several servers may write for the same link; the last
        fetch and its User-Agent are kept only when newer than the stored one.
        """
        if not counts:
            return
        # Core, not the ORM: one executemany, with the SET expressions reading the old row.
        table = ShareLink.metadata.tables[ShareLink.__tablename__]
        at = bindparam("at", type_=UTCDateTime())
        newer = or_(table.c.last_fetch_at.is_(None), table.c.last_fetch_at < at)
        statement = (
            update(table)
            .where(table.c.id == bindparam("share_id"))
            .values(
                fetches=table.c.fetches + bindparam("count"),
                last_fetch_at=case((newer, at), else_=table.c.last_fetch_at),
                last_user_agent=case(
                    (newer, bindparam("user_agent")), else_=table.c.last_user_agent
                ),
            )
        )
        params = [
            {
                "share_id": share_id,
                "count": fetches.count,
                "at": fetches.last_at,
                "user_agent": (fetches.user_agent or "")[:USER_AGENT_MAX] or None,
            }
            for share_id, fetches in sorted(counts.items())
        ]
        with self.store.write(what="the fetch statistics") as session:
            session.connection().execute(statement, params)


def _info(link: ShareLink, slug: str) -> ShareInfo:
    return ShareInfo(
        name=link.name,
        calendar=slug,
        created_at=link.created_at,
        expires_at=link.expires_at,
        revoked_at=link.revoked_at,
        cities=tuple(link.cities or ()),
        categories=tuple(link.categories or ()),
        fetches=link.fetches,
        last_fetch_at=link.last_fetch_at,
        last_user_agent=link.last_user_agent,
    )
