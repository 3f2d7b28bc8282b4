"""The API's entries: list (with the feed's filters), read, create, replace, patch, cancel,
delete.

A body becomes the ``[[entries]]`` table a schedule file holds
(``representation.entry_table``) and goes through the one validator
(``entry_edits.validate``), whose refusal is a 422 naming the member as a JSON
pointer. A change runs in one transaction with the calendar row locked, in this
order: the entry (404), the body (422: a wrong body is wrong whatever the
version), ``If-Match`` (412), the owner (409 unless ``"detach": true``), then
the write (``entry_edits``), which raises SEQUENCE and the calendar's version.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
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
from calendar_svc.errors import ApiProblem, InputError, NotFoundError
from calendar_svc.filters import parse_filter
from calendar_svc.models import Calendar, Entry, EntryStatus
from calendar_svc.schedule_files import EntrySpec

_SOURCE = "request"  # what the validator's errors would call the file (never shown)


class EntryEndpoints:
    """``/calendars/{slug}/entries`` and below."""

    def __init__(self, frame: Frame) -> None:
        self.frame = frame
        self.store = frame.store

    async def list(self, request: Request, key: KeyInfo) -> Answer:
        slug = request.path_params["slug"]
        self.frame.in_scope(key, slug)
        query = request.query_params
        flt = parse_filter(
            calendar=slug,
            city=query.get("city"),
            category=query.get("category"),
            from_=query.get("from"),
            to=query.get("to"),
        )
        entries = await run_in_threadpool(self.store.entries, flt)
        return Answer(200, [rep.entry_json(e, slug) for e in entries])

    async def get(self, request: Request, key: KeyInfo) -> Answer:
        slug, uid = request.path_params["slug"], request.path_params["uid"]
        self.frame.in_scope(key, slug)

        def read() -> Answer:
            with self.store.read() as session:
                calendar = session.scalar(select(Calendar).where(Calendar.slug == slug))
                if calendar is None:
                    raise NotFoundError(f"no calendar {slug!r}")
                entry = edits.find(session, calendar, uid)
                return Answer(200, rep.entry_json(entry, slug), {"ETag": etag(entry.version)})

        return await run_in_threadpool(read)

    async def create(self, request: Request, key: KeyInfo) -> Answer:
        idempotency_key(request)  # a bad one is refused before anything else
        slug = request.path_params["slug"]
        self.frame.in_scope(key, slug)
        self.frame.writable(key)
        raw, body = await self.frame.json_body(request, JSON_TYPES)
        rep.check_members(body)
        _detach(body)
        table = rep.entry_table(body)
        table.setdefault("uid", f"api-{secrets.token_hex(8)}")

        def write(session: Session, now: datetime) -> Answer:
            calendar = edits.lock_calendar(session, slug)
            spec = _validate(table, calendar.timezone)
            entry = edits.create(session, calendar, spec, owner=key.name, now=now)
            return Answer(
                201,
                rep.entry_json(entry, slug),
                {
                    "ETag": etag(entry.version),
                    "Location": f"{PREFIX}/calendars/{slug}/entries/{entry.uid}",
                },
                Change("created", slug, entry.uid, entry.version),
            )

        return await self.frame.idempotent(request, key, raw, write)

    async def replace(self, request: Request, key: KeyInfo) -> Answer:
        slug, uid = request.path_params["slug"], request.path_params["uid"]
        self.frame.in_scope(key, slug)
        self.frame.writable(key)
        match = if_match(request)
        _raw, body = await self.frame.json_body(request, JSON_TYPES)
        rep.check_members(body)
        detach = _detach(body)
        table = rep.entry_table(body)
        if table.get("uid", uid) != uid:
            raise ApiProblem(
                422, f"an entry's uid does not change (the path says {uid!r})", pointer="/uid"
            )
        table["uid"] = uid
        return await self._edit(slug, uid, key, match, detach, "replaced", lambda _entry: table)

    async def patch(self, request: Request, key: KeyInfo) -> Answer:
        slug, uid = request.path_params["slug"], request.path_params["uid"]
        self.frame.in_scope(key, slug)
        self.frame.writable(key)
        match = if_match(request)
        _raw, body = await self.frame.json_body(request, MERGE_TYPES)
        rep.check_members(body)
        detach = _detach(body)
        patch = {k: v for k, v in body.items() if k != "detach"}
        if patch.get("uid", uid) != uid:
            raise ApiProblem(
                422, f"an entry's uid does not change (the path says {uid!r})", pointer="/uid"
            )

        def patched(entry: Entry) -> dict[str, Any]:
            current = rep.table_body(edits.raw_of(entry))
            if patch.get("duration") is not None and not _names_end(patch):
                # A new length replaces the end: keep only the zone it ends in.
                end = current.get("end", {})
                current["end"] = {k: v for k, v in end.items() if k == "zone"}
            table = rep.entry_table(merge(current, patch))
            if _names(patch, "start") and not _names_end(patch) and "duration" not in patch:
                # A new start alone moves the entry: it keeps its length.
                fold = table.get("fold") if patch["start"].get("fold") is not None else None
                edits.keep_length(entry, table, table["start"])
                if fold is not None:
                    table["fold"] = fold
            return table

        return await self._edit(slug, uid, key, match, detach, "patched", patched)

    async def cancel(self, request: Request, key: KeyInfo) -> Answer:
        slug, uid = request.path_params["slug"], request.path_params["uid"]
        self.frame.in_scope(key, slug)
        self.frame.writable(key)
        match = if_match(request)

        def cancelled(entry: Entry) -> dict[str, Any]:
            return {**edits.raw_of(entry), "status": str(EntryStatus.CANCELLED)}

        return await self._edit(slug, uid, key, match, False, "cancelled", cancelled)

    async def delete(self, request: Request, key: KeyInfo) -> Answer:
        slug, uid = request.path_params["slug"], request.path_params["uid"]
        self.frame.in_scope(key, slug)
        self.frame.writable(key)
        match = if_match(request)

        def write() -> Answer:
            now = self.store.clock()
            with self.store.write() as session:
                calendar = edits.lock_calendar(session, slug)
                entry = edits.find(session, calendar, uid)
                edits.check_version(entry, match, f"entry {uid!r}")
                edits.check_owner(entry, detach=False, how='PATCH with "detach": true first')
                version = entry.version
                edits.remove(session, entry, now=now)
            return Answer(204, change=Change("deleted", slug, uid, version))

        return await run_in_threadpool(write)

    async def _edit(
        self,
        slug: str,
        uid: str,
        key: KeyInfo,
        match: set[int] | None,
        detach: bool,
        action: str,
        table_of: Callable[[Entry], dict[str, Any]],
    ) -> Answer:
        """Change entry ``uid`` to what ``table_of(entry)`` says, in one transaction."""

        def write() -> Answer:
            now = self.store.clock()
            with self.store.write() as session:
                calendar = edits.lock_calendar(session, slug)
                entry = edits.find(session, calendar, uid)
                # A body that is wrong is wrong whatever the version: 422 before 412 or 409.
                spec = _validate(table_of(entry), calendar.timezone)
                edits.check_version(entry, match, f"entry {uid!r}")
                took = edits.check_owner(entry, detach=detach, how='"detach": true')
                changed = edits.replace(session, entry, spec, owner=key.name, detach=took, now=now)
                change = None
                if changed or took:
                    change = Change(action if changed else "detached", slug, uid, entry.version)
                return Answer(
                    200, rep.entry_json(entry, slug), {"ETag": etag(entry.version)}, change
                )

        return await run_in_threadpool(write)


def _detach(body: Mapping[str, Any]) -> bool:
    value = body.get("detach", False)
    if not isinstance(value, bool):
        raise ApiProblem(422, f"expected true or false, got {value!r}", pointer="/detach")
    return value


def _validate(table: dict[str, Any], zone: str) -> EntrySpec:
    try:
        return edits.validate(table, source=_SOURCE, default_zone=zone)
    except InputError as exc:
        raise ApiProblem(422, exc.detail, pointer=rep.pointer(exc.field)) from None
    except (OverflowError, ValueError, TypeError) as exc:
        # A value the readers let through but the arithmetic cannot hold (a date out of range).
        raise ApiProblem(422, f"cannot be represented: {exc}", pointer="") from None


def _names(patch: Mapping[str, Any], time: str) -> bool:
    """Whether a patch gives ``start.local`` or ``end.local``."""
    value = patch.get(time)
    return isinstance(value, dict) and value.get("local") is not None


def _names_end(patch: Mapping[str, Any]) -> bool:
    return _names(patch, "end")
