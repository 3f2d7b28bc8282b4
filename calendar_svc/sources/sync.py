"""One sync of a source: fetch, import (or not), and record how it went.

The import is the one ``calendar-svc import`` makes of an .ics file, with the
source as the owner of its entries and prune on, in one transaction together
with the source's state row: either the new copy and its validators are
stored, or nothing is. On any failure (network, status, a limit, a body that
is not valid iCalendar, a database refusal) the entries stay as the last good
copy and only the state row records the failure, its time and count.

A body whose digest equals the last good copy's is not parsed (some servers
send no ETag); neither is a ``304``.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from datetime import datetime

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session

from calendar_svc.config import Config, SourceConfig
from calendar_svc.errors import CalendarSvcError, NotFoundError
from calendar_svc.events import EventBus, SourceFailed, SourceFetched
from calendar_svc.ics_in import IcsOptions, parse_ics
from calendar_svc.importer import import_specs
from calendar_svc.models import Origin, OriginKind, SourceState
from calendar_svc.sources.fetch import Fetched, auth_headers, fetch, safe_url
from calendar_svc.store import Store


@dataclass(frozen=True)
class SyncResult:
    """How one sync went (also emitted as ``SourceFetched`` / ``SourceFailed``)."""

    name: str
    changed: bool = False
    error: str | None = None
    created: int = 0
    updated: int = 0
    pruned: int = 0
    kept: int = 0
    warnings: tuple[str, ...] = ()


def state_of(session: Session, source: SourceConfig) -> SourceState:
    """The source's state row, created (not yet flushed) when new."""
    state = session.get(SourceState, source.name)
    if state is None:
        state = SourceState(
            name=source.name, url=safe_url(source.url), calendar_slug=source.calendar, failures=0
        )
        session.add(state)
    return state


def states(store: Store) -> dict[str, SourceState]:
    """Every source's state row by name."""
    with store.read() as session:
        return {s.name: s for s in session.scalars(select(SourceState))}


def sync(
    store: Store,
    source: SourceConfig,
    config: Config,
    events: EventBus,
    *,
    client: httpx.Client | None = None,
) -> SyncResult:
    """Fetch ``source`` and import what changed; never raises for the source's own faults.

    ``client``: an HTTP client to reuse from one sync to the next (its connections and
    TLS context; building one costs more than a 304), else one for this sync alone.
    """
    started = time.monotonic()
    now = store.clock()
    with store.read() as session:
        known = session.get(SourceState, source.name)
        validators = (
            (known.etag, known.last_modified, known.body_digest) if known else (None, None, None)
        )
    try:
        headers = auth_headers(source, str(config.path) if config.path else None)
        fetched = fetch(
            source,
            etag=validators[0],
            last_modified=validators[1],
            headers=headers,
            client=client,
        )
        digest = hashlib.sha256(fetched.body).hexdigest() if fetched.body is not None else None
        if fetched.body is None or (digest is not None and digest == validators[2]):
            with store.write(what="the source's state") as session:
                state = state_of(session, source)
                _succeeded(state, now, source)
                if fetched.etag:
                    state.etag = fetched.etag
                if fetched.last_modified:
                    state.last_modified = fetched.last_modified
            result = SyncResult(source.name)
        else:
            result = _import(store, source, config, fetched.body, now, digest, fetched)
    except CalendarSvcError as exc:
        return _failed(store, source, events, now, str(exc))
    except Exception as exc:  # a bug met by a body no test foresaw: keep the last good copy
        return _failed(store, source, events, now, f"unexpected {type(exc).__name__}: {exc}")
    events.emit(
        SourceFetched(
            name=source.name,
            calendar=source.calendar,
            at=now,
            changed=result.changed,
            seconds=time.monotonic() - started,
            created=result.created,
            updated=result.updated,
            pruned=result.pruned,
            kept=result.kept,
            warnings=result.warnings,
        )
    )
    return result


def _import(
    store: Store,
    source: SourceConfig,
    config: Config,
    body: bytes,
    now: datetime,
    digest: str | None,
    fetched: Fetched,
) -> SyncResult:
    try:
        calendar_zone: str | None = store.get_calendar(source.calendar).timezone
    except NotFoundError:
        calendar_zone = None
    parsed = parse_ics(
        body,
        IcsOptions(
            slug=source.calendar,
            zone=source.zone,
            calendar_zone=calendar_zone,
            reminders=source.reminders,
            own_domain=config.feed.domain,
            origin=Origin(OriginKind.SOURCE, source.name),
        ),
        source=f"source {source.name!r} ({safe_url(source.url)})",
    )
    with store.write(what="the source's import") as session:
        report = import_specs(session, [parsed.spec], now=now, prune=True)
        state = state_of(session, source)
        _succeeded(state, now, source)
        state.etag = fetched.etag
        state.last_modified = fetched.last_modified
        state.body_digest = digest
        state.entries = len(parsed.spec.entries)
        cal = report.calendars[0]
        if cal.changed:
            state.last_change_at = now
    return SyncResult(
        source.name,
        changed=True,
        created=len(cal.created),
        updated=len(cal.updated),
        pruned=len(cal.pruned),
        kept=len(cal.kept),
        warnings=tuple(parsed.warnings[:20]),
    )


def _succeeded(state: SourceState, now: datetime, source: SourceConfig) -> None:
    state.url = safe_url(source.url)
    state.calendar_slug = source.calendar
    state.last_attempt_at = now
    state.last_success_at = now
    state.last_error = None
    state.failures = 0


def _failed(
    store: Store, source: SourceConfig, events: EventBus, now: datetime, error: str
) -> SyncResult:
    failures = 1
    last_success = None
    try:
        with store.write(what="the source's state") as session:
            state = state_of(session, source)
            state.url = safe_url(source.url)
            state.last_attempt_at = now
            state.last_error = error[:2000]
            state.failures = (state.failures or 0) + 1
            failures, last_success = state.failures, state.last_success_at
    except CalendarSvcError:
        pass  # the database is away: the event and the log still tell
    events.emit(
        SourceFailed(
            name=source.name,
            calendar=source.calendar,
            at=now,
            error=error,
            failures=failures,
            last_success=last_success,
        )
    )
    return SyncResult(source.name, error=error)
