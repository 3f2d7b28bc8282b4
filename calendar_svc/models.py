"""The tables, as typed SQLAlchemy 2 models.

Wall time + zone is the truth of an entry; ``start_utc`` / ``end_utc`` are
derived by ``timezones.to_utc`` whenever the wall time or zone is written (and
again when the tz database changes: ``tz_version`` says which one they came
from), and every instant is stored in UTC (``TIMESTAMP WITH TIME ZONE`` on PostgreSQL, an
ISO UTC string on SQLite, read back as an aware UTC datetime either way).

All-day entries keep ``all_day = True`` with ``start_local`` / ``end_local`` at
midnight of the first and the *last* day (inclusive); ``start_day`` /
``last_day`` give them as dates, which is how everything outside the store
treats them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from typing import TypeVar

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    ColumnElement,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    or_,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.sql import text
from sqlalchemy.types import TypeDecorator

from calendar_svc.timezones import UTC


class EntryStatus(StrEnum):
    """An entry's ``status`` (the ICS STATUS of its VEVENT, in lower case)."""

    CONFIRMED = "confirmed"
    TENTATIVE = "tentative"
    CANCELLED = "cancelled"


class OriginKind(StrEnum):
    """Who owns an entry (``Entry.origin_kind``): the one writer allowed to change it.

    A schedule file (TOML or .ics, named by its path), a source (a followed ICS
    feed, named as in ``[[sources]]``) or the API. An import never touches an
    entry that another owner holds; entries of a source are read-only to the CLI.
    """

    FILE = "file"
    SOURCE = "source"
    API = "api"


@dataclass(frozen=True)
class Origin:
    """An entry's owner: its kind and its name (a file's resolved path, a source's name)."""

    kind: OriginKind
    name: str

    def __str__(self) -> str:
        if self.kind == OriginKind.SOURCE:
            return f"source {self.name!r}"
        if self.kind == OriginKind.FILE:
            return f"file {self.name}"
        return str(self.kind)


class DeliveryStatus(StrEnum):
    """Where a delivery is in its life: ``pending`` -> ``sending`` (claimed) -> one of
    ``sent``, ``failed``, ``missed``, ``cancelled``, or back to ``pending`` for a retry."""

    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    CANCELLED = "cancelled"
    MISSED = "missed"


_Status = TypeVar("_Status", bound=StrEnum)


def _one_of(column: str, values: type[StrEnum]) -> str:
    """The SQL of a CHECK that ``column`` holds one of ``values``."""
    return f"{column} IN ({', '.join(repr(str(v)) for v in values)})"


class UTCDateTime(TypeDecorator[datetime]):
    """An aware datetime stored as UTC; naive values are refused on the way in."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("UTCDateTime needs an aware datetime")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class StatusText(TypeDecorator[_Status]):
    """A ``StrEnum`` stored as its text: the same strings as before the enum existed, read
    back as members; a value outside the enum is refused before it reaches the database
    (which refuses it too, with a CHECK constraint since revision 0005)."""

    impl = String(16)
    cache_ok = True

    def __init__(self, enum: type[_Status]):
        super().__init__()
        self.enum = enum

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        if value is None:
            return None
        return str(self.enum(value))

    def process_result_value(self, value: str | None, dialect: Dialect) -> _Status | None:
        if value is None:
            return None
        return self.enum(value)


class Base(DeclarativeBase):
    """Declarative base; every column names its type explicitly."""


class Calendar(Base):
    __tablename__ = "calendars"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(Text)
    description: Mapped[str] = mapped_column(Text, default="")
    timezone: Mapped[str] = mapped_column(String(64))
    # ISO 8601 durations before start; None = the config's default offsets.
    reminders: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    feed_token: Mapped[str] = mapped_column(String(64), unique=True)
    # Bumped in the same transaction as every write that changes what the feed shows.
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)

    entries: Mapped[list[Entry]] = relationship(
        back_populates="calendar", cascade="all, delete-orphan", passive_deletes=True
    )


class Entry(Base):
    __tablename__ = "entries"
    __table_args__ = (
        UniqueConstraint("calendar_id", "uid", name="uq_entries_calendar_uid"),
        Index("ix_entries_start_utc", "start_utc"),
        # Feed order with each entry's change key, read from the index alone (0003).
        Index("ix_entries_feed_order", "calendar_id", "start_utc", "uid", "updated_at", "sequence"),
        # Recurring entries only: read whatever their first start (0011).
        Index(
            "ix_entries_recurring",
            "start_utc",
            sqlite_where=text("rrule IS NOT NULL OR rdates IS NOT NULL"),
            postgresql_where=text("rrule IS NOT NULL OR rdates IS NOT NULL"),
        ),
        # The entries overlapping a span of time, from the index alone (0011).
        Index("ix_entries_span", "start_utc", "end_utc"),
        # ix_entries_reminder_lists (0011): the distinct override lists, one index seek
        # each (reminders.entries); on the column in SQLite, on its text in PostgreSQL.
        CheckConstraint(_one_of("status", EntryStatus), name="ck_entries_status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    calendar_id: Mapped[int] = mapped_column(ForeignKey("calendars.id", ondelete="CASCADE"))
    uid: Mapped[str] = mapped_column(String(255))
    title: Mapped[str] = mapped_column(Text)
    description: Mapped[str] = mapped_column(Text, default="")
    location: Mapped[str] = mapped_column(Text, default="")
    city: Mapped[str] = mapped_column(Text, default="")
    geo_lat: Mapped[float | None] = mapped_column(Float, nullable=True)
    geo_lon: Mapped[float | None] = mapped_column(Float, nullable=True)
    url: Mapped[str] = mapped_column(Text, default="")
    categories: Mapped[list[str]] = mapped_column(JSON, default=list)
    status: Mapped[EntryStatus] = mapped_column(
        StatusText(EntryStatus), default=EntryStatus.CONFIRMED
    )
    transparency: Mapped[str] = mapped_column(String(16), default="opaque")
    # RFC 5545 SEQUENCE: rises on every edit a subscriber can see.
    sequence: Mapped[int] = mapped_column(Integer, default=0)

    all_day: Mapped[bool] = mapped_column(Boolean, default=False)
    start_local: Mapped[datetime] = mapped_column(DateTime(timezone=False))
    start_tz: Mapped[str] = mapped_column(String(64))
    start_fold: Mapped[int | None] = mapped_column(Integer, nullable=True)
    end_local: Mapped[datetime] = mapped_column(DateTime(timezone=False))
    end_tz: Mapped[str] = mapped_column(String(64))
    end_fold: Mapped[int | None] = mapped_column(Integer, nullable=True)
    start_utc: Mapped[datetime] = mapped_column(UTCDateTime)
    end_utc: Mapped[datetime] = mapped_column(UTCDateTime)
    # The version of the tz database start_utc/end_utc were derived with (None: not
    # known, from before revision 0007). When it is not the one in use, the instants are
    # derived again from the wall times (calendar_svc.rederive).
    tz_version: Mapped[str | None] = mapped_column(String(64), nullable=True)
    rrule: Mapped[str | None] = mapped_column(Text, nullable=True)
    # RDATE / EXDATE: extra and excluded occurrence starts, as ISO wall times in start_tz
    # ("2025-09-02T10:00:00"; dates for all-day entries). None = none.
    rdates: Mapped[list[str] | None] = mapped_column(JSON(none_as_null=True), nullable=True)
    exdates: Mapped[list[str] | None] = mapped_column(JSON(none_as_null=True), nullable=True)
    # The owner (OriginKind) and its name (a file's path, a source's name); None for
    # entries written before owners were recorded: the next import adopts them.
    origin_kind: Mapped[str | None] = mapped_column(String(16), nullable=True)
    origin_name: Mapped[str | None] = mapped_column(Text, nullable=True)

    # ISO 8601 durations before start; None = the calendar's, [] = no reminders.
    reminders: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    # Hash of the schedule-file entry as last imported. An import changes the entry only
    # when the file's version changed, so a `cancel` from the CLI survives re-imports of
    # an unchanged file (the daemon re-imports on every start).
    source_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # The row's version (the API's ETag): SQLAlchemy raises it on every ORM write of the
    # row and refuses an UPDATE or DELETE of a row another transaction changed since it
    # was read (``version_id_col``), whoever the writer is (import, CLI, API, rederive).
    version: Mapped[int] = mapped_column(Integer, default=1, server_default="1")

    calendar: Mapped[Calendar] = relationship(back_populates="entries")

    __mapper_args__ = {"version_id_col": version}  # noqa: RUF012 - SQLAlchemy's own form

    @property
    def start_day(self) -> date:
        return self.start_local.date()

    @property
    def last_day(self) -> date:
        """Last day of an all-day entry, inclusive."""
        return self.end_local.date()

    @property
    def cancelled(self) -> bool:
        return self.status == EntryStatus.CANCELLED

    @property
    def origin(self) -> Origin | None:
        """Who owns the entry (None: written before owners were recorded)."""
        if self.origin_kind is None:
            return None
        return Origin(OriginKind(self.origin_kind), self.origin_name or "")


def recurring() -> ColumnElement[bool]:
    """Entries with more than one occurrence (an RRULE or RDATEs): the condition of
    ``ix_entries_recurring`` in the same words, so that SQLite reads that index for it."""
    return or_(Entry.rrule.is_not(None), Entry.rdates.is_not(None))


class Delivery(Base):
    """One reminder instance on one channel: the durable record of what was sent.

    ``dedupe_key`` = (calendar slug, entry uid, occurrence start UTC, offset,
    channel); the planner inserts it if absent, the dispatcher claims it with a
    conditional UPDATE on ``status``.
    """

    __tablename__ = "deliveries"
    __table_args__ = (
        Index("ix_deliveries_status_next", "status", "next_attempt_at"),
        Index("ix_deliveries_entry", "calendar_slug", "entry_uid"),
        CheckConstraint(_one_of("status", DeliveryStatus), name="ck_deliveries_status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    dedupe_key: Mapped[str] = mapped_column(String(512), unique=True)
    idempotency_key: Mapped[str] = mapped_column(String(64))
    calendar_slug: Mapped[str] = mapped_column(String(64))
    entry_uid: Mapped[str] = mapped_column(String(255))
    occurrence_utc: Mapped[datetime] = mapped_column(UTCDateTime)
    offset_seconds: Mapped[int] = mapped_column(Integer)
    channel: Mapped[str] = mapped_column(String(64))
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    status: Mapped[DeliveryStatus] = mapped_column(
        StatusText(DeliveryStatus), default=DeliveryStatus.PENDING
    )
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    claimed_by: Mapped[str | None] = mapped_column(String(255), nullable=True)
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    late: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class PlannerState(Base):
    """One row (id 1): when the last planner pass ran and which daemon ran it.

    A pass that finds the last one older than its window records the reminders
    that came due in between and were never planned as ``missed``.
    """

    __tablename__ = "planner_state"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    last_pass_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_pass_by: Mapped[str] = mapped_column(String(255))


class SourceState(Base):
    """What the daemon knows of one ``[[sources]]`` feed: the validators of its last good
    copy (ETag, Last-Modified, a digest of the body) and how the last fetches went.

    The entries themselves are the last good copy: a failed fetch or an invalid body
    leaves them as they are, and only this row records the failure.
    """

    __tablename__ = "source_states"

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    url: Mapped[str] = mapped_column(Text)
    calendar_slug: Mapped[str] = mapped_column(String(64))
    etag: Mapped[str | None] = mapped_column(Text, nullable=True)
    last_modified: Mapped[str | None] = mapped_column(Text, nullable=True)
    body_digest: Mapped[str | None] = mapped_column(String(64), nullable=True)
    last_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_success_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_change_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    entries: Mapped[int] = mapped_column(Integer, default=0)


class ShareLink(Base):
    """One subscriber's link to a calendar: a token of its own, stored only as a digest.

    The link's token opens the calendar's page and feed like the calendar's own
    token, narrowed to ``cities`` / ``categories`` when they are set, until
    ``expires_at`` or until it is revoked (``revoked_at``; the row stays, so
    ``calendar-svc shares`` still shows who had access). The fetch statistics
    are written in batches by the feed servers that answered the fetches.
    A name is unique among a calendar's live links.
    """

    __tablename__ = "share_links"
    __table_args__ = (
        Index(
            "uq_share_links_live_name",
            "calendar_id",
            "name",
            unique=True,
            sqlite_where=text("revoked_at IS NULL"),
            postgresql_where=text("revoked_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    calendar_id: Mapped[int] = mapped_column(ForeignKey("calendars.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    # Hex SHA-256 of the token; the token itself is shown once and never stored.
    token_digest: Mapped[str] = mapped_column(String(64), unique=True)
    cities: Mapped[list[str]] = mapped_column(JSON, default=list)
    categories: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    fetches: Mapped[int] = mapped_column(Integer, default=0)
    last_fetch_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_user_agent: Mapped[str | None] = mapped_column(Text, nullable=True)

    calendar: Mapped[Calendar] = relationship()


class ApiKey(Base):
    """A bearer key of the HTTP API, stored as the SHA-256 digest of its token.

    ``calendars`` (slugs) is its scope: None = every calendar, else those alone
    (any other is 404 to it). ``read_only`` keys may only read. A key works until
    ``expires_at`` or until it is revoked (``revoked_at``; the row stays, so
    ``calendar-svc api-key list`` still shows who had access). A name is unique among
    the live keys.
    """

    __tablename__ = "api_keys"
    __table_args__ = (
        Index(
            "uq_api_keys_live_name",
            "name",
            unique=True,
            sqlite_where=text("revoked_at IS NULL"),
            postgresql_where=text("revoked_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    # Hex SHA-256 of the token; the token itself is shown once and never stored.
    token_digest: Mapped[str] = mapped_column(String(64), unique=True)
    calendars: Mapped[list[str] | None] = mapped_column(JSON(none_as_null=True), nullable=True)
    read_only: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class IdempotentRequest(Base):
    """The first answer to a ``POST`` that carried an ``Idempotency-Key``, kept for a while
    so that a retry of the same request gets the same answer instead of a second entry.

    ``request_digest`` is a SHA-256 of the method, path and body: the same key with another
    request is refused. Rows older than ``[api] idempotency_ttl`` are deleted on the way.
    """

    __tablename__ = "api_idempotency"
    __table_args__ = (UniqueConstraint("key_id", "idempotency_key", name="uq_api_idempotency"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key_id: Mapped[int] = mapped_column(ForeignKey("api_keys.id", ondelete="CASCADE"))
    idempotency_key: Mapped[str] = mapped_column(String(255))
    request_digest: Mapped[str] = mapped_column(String(64))
    status: Mapped[int] = mapped_column(Integer)
    # The answer's headers that matter to a retry (Location, ETag) and its JSON body.
    headers: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class RenderedEvent(Base):
    """An entry's serialised VEVENT, kept so that a restarted feed server need not build
    it again (``feed.stored``). ``digest`` covers everything the bytes were built from
    (the entry's row, the calendar's slug and inherited offsets, the feed options, the tz
    database, the code's format version): a row whose digest differs is stale."""

    __tablename__ = "rendered_events"
    __table_args__ = (Index("ix_rendered_events_calendar", "calendar_id"),)

    entry_id: Mapped[int] = mapped_column(
        ForeignKey("entries.id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    calendar_id: Mapped[int] = mapped_column(ForeignKey("calendars.id", ondelete="CASCADE"))
    digest: Mapped[str] = mapped_column(String(64))
    # "start_tz end_tz" ("" for all-day) and the earliest local year: what the feed's
    # VTIMEZONEs need, without loading the entry.
    zones: Mapped[str] = mapped_column(String(300))
    year: Mapped[int] = mapped_column(Integer)
    body: Mapped[bytes] = mapped_column(LargeBinary)


class RenderedZone(Base):
    """A zone's VTIMEZONE from ``first_year`` on (``tzid`` None: the zone needs none),
    with the digest of the tz database and format version it was built with."""

    __tablename__ = "rendered_zones"

    zone: Mapped[str] = mapped_column(String(64), primary_key=True)
    first_year: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    digest: Mapped[str] = mapped_column(String(64))
    tzid: Mapped[str | None] = mapped_column(String(64), nullable=True)
    body: Mapped[bytes] = mapped_column(LargeBinary)
