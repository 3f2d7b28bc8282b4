"""The API's calendars: list, read, create, and change name, description, zone or offsets.

A calendar body is a schedule file's ``[calendar]`` table in JSON, read by the
same readers (``schedule_files.CALENDAR_TABLE``). A calendar that a TOML
schedule file defines takes its name, zone and offsets from that file at every
import, so changing them here is refused (409) rather than silently undone.
A calendar's ETag is its version, which every change a feed shows bumps.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from calendar_svc import entry_edits as edits
from calendar_svc.api import representation as rep
from calendar_svc.api.frame import (
    JSON_TYPES,
    MERGE_TYPES,
    PREFIX,
    Answer,
    Change,
    Frame,
    etag,
    idempotency_key,
    if_match,
    merge,
)
from calendar_svc.api_keys import KeyInfo
from calendar_svc.errors import ApiProblem, InputError
from calendar_svc.models import Calendar, Entry, OriginKind
from calendar_svc.schedule_files import CALENDAR_TABLE
from calendar_svc.store import bump, new_feed_token
from calendar_svc.validation import Place, Table, read_section


class CalendarEndpoints:
    """``/calendars`` and ``/calendars/{slug}``."""

    def __init__(self, frame: Frame) -> None:
        self.frame = frame
        self.store = frame.store

    async def list(self, request: Request, key: KeyInfo) -> Answer:
        calendars = await run_in_threadpool(self.store.calendars)
        return Answer(200, [rep.calendar_json(c) for c in calendars if key.sees(c.slug)])

    async def get(self, request: Request, key: KeyInfo) -> Answer:
        slug = request.path_params["slug"]
        self.frame.in_scope(key, slug)
        calendar = await run_in_threadpool(self.store.get_calendar, slug)
        return Answer(200, rep.calendar_json(calendar), {"ETag": etag(calendar.version)})

    async def create(self, request: Request, key: KeyInfo) -> Answer:
        idempotency_key(request)  # a bad one is refused before anything else
        self.frame.writable(key)
        raw, body = await self.frame.json_body(request, JSON_TYPES)
        values = calendar_values(rep.calendar_table(body))
        slug = values["slug"]
        if not key.sees(slug):
            raise ApiProblem(
                403, f"key {key.name!r} may only use calendars {', '.join(key.calendars or ())}"
            )

        def write(session: Session, now: datetime) -> Answer:
            if session.scalar(select(Calendar.id).where(Calendar.slug == slug)) is not None:
                raise ApiProblem(409, f"calendar {slug!r} exists already")
            calendar = Calendar(
                **values, feed_token=new_feed_token(), version=1, created_at=now, updated_at=now
            )
            session.add(calendar)
            session.flush()
            return Answer(
                201,
                rep.calendar_json(calendar),
                {"ETag": etag(calendar.version), "Location": f"{PREFIX}/calendars/{slug}"},
                Change("calendar_created", slug, None, calendar.version),
            )

        return await self.frame.idempotent(request, key, raw, write)

    async def patch(self, request: Request, key: KeyInfo) -> Answer:
        slug = request.path_params["slug"]
        self.frame.in_scope(key, slug)
        self.frame.writable(key)
        match = if_match(request)
        _raw, body = await self.frame.json_body(request, MERGE_TYPES)
        if "slug" in body:
            raise ApiProblem(422, "a calendar's slug does not change", pointer="/slug")
        rep.calendar_table(body)  # read-only members

        def write() -> Answer:
            now = self.store.clock()
            with self.store.write() as session:
                calendar = edits.lock_calendar(session, slug)
                current = rep.calendar_json(calendar)
                merged = merge({k: current[k] for k in rep.CALENDAR_WRITABLE}, body)
                values = calendar_values(rep.calendar_table(merged))
                edits.check_version(calendar, match, f"calendar {slug!r}")
                defined_by = _defining_file(session, calendar)
                if defined_by is not None:
                    raise ApiProblem(
                        409,
                        f"calendar {slug!r} is defined by schedule file {defined_by}: its name, "
                        "zone and offsets come from that file's [calendar] table; change them "
                        "there",
                    )
                change = None
                if any(getattr(calendar, k) != v for k, v in values.items()):
                    for name, value in values.items():
                        setattr(calendar, name, value)
                    bump(calendar, now)
                    session.flush()
                    change = Change("calendar_changed", slug, None, calendar.version)
                return Answer(
                    200, rep.calendar_json(calendar), {"ETag": etag(calendar.version)}, change
                )

        return await run_in_threadpool(write)


def _defining_file(session: Session, calendar: Calendar) -> str | None:
    """The TOML schedule file that defines ``calendar`` (one owns an entry of it), if any."""
    return session.scalar(
        select(Entry.origin_name)
        .where(
            Entry.calendar_id == calendar.id,
            Entry.origin_kind == str(OriginKind.FILE),
            Entry.origin_name.like("%.toml"),
        )
        .limit(1)
    )


def calendar_values(table: dict[str, Any]) -> dict[str, Any]:
    """A ``[calendar]`` table through the schedule files' readers, as column values; 422
    naming the member otherwise."""
    try:
        values = read_section(CALENDAR_TABLE, Table(table, Place(InputError, "request")))
        spec = CALENDAR_TABLE(**values)
    except InputError as exc:
        raise ApiProblem(422, exc.detail, pointer=f"/{exc.field}" if exc.field else "") from None
    return {
        "slug": spec.slug,
        "name": spec.name,
        "description": spec.description,
        "timezone": spec.timezone,
        "reminders": list(spec.reminders) if spec.reminders is not None else None,
    }
