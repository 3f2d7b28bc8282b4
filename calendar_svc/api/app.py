"""The API's Starlette app, mounted at ``/api/v1`` by the feed app when ``[api] enabled``.

Each request goes: the client address's failure count (429), the key (401), the
calendar within the key's scope (404 for any other, as for one that does not
exist), read-only keys refused for writes (403), ``If-Match`` on PUT, PATCH,
DELETE and cancel (428 without, 412 when stale), the body (415 for another
media type, 413 above ``[api] max_body``, 400 for broken JSON), then the one
validator (422 naming the field as a JSON pointer). Reads and writes run in
worker threads, each write in one transaction of the store with the calendar
row locked first. A POST with an ``Idempotency-Key`` is answered, on a retry,
with the answer recorded in the transaction of its first try.

Nothing a client sends makes a 500: a refusal is an ``ApiProblem``; anything
else that escapes is a bug, logged as ``api.failed`` with its traceback and
answered 500 without detail.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route

from calendar_svc import entry_edits as edits
from calendar_svc import idempotency
from calendar_svc.api import representation as rep
from calendar_svc.api.auth import Authenticator, FailureLimiter
from calendar_svc.api.problems import from_error, problem_response
from calendar_svc.api.schema import openapi
from calendar_svc.api_keys import ApiKeys, KeyInfo
from calendar_svc.config import Config
from calendar_svc.durations import format_duration
from calendar_svc.errors import ApiProblem, CalendarSvcError, InputError, NotFoundError
from calendar_svc.filters import parse_filter
from calendar_svc.logs import log_event
from calendar_svc.models import Calendar, Entry, EntryStatus, OriginKind
from calendar_svc.reminders.planner import Planner
from calendar_svc.schedule_files import CALENDAR_TABLE
from calendar_svc.store import Store, bump, new_feed_token
from calendar_svc.timezones import UTC, iso_utc, to_local
from calendar_svc.validation import Place, Table, read_section

log = logging.getLogger("calendar_svc.api")

PREFIX = "/api/v1"
JSON_TYPES = ("application/json",)
MERGE_TYPES = ("application/json", "application/merge-patch+json")
# The widest reminder preview one request may ask for.
MAX_WINDOW = timedelta(days=366)
_SOURCE = "request"  # what the validator's errors would call the file (not shown)


@dataclass
class Answer:
    """A JSON answer: status, body (None: no content) and headers."""

    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)

    def response(self) -> Response:
        if self.body is None:
            return Response(status_code=self.status, headers=self.headers)
        return Response(
            json.dumps(self.body, ensure_ascii=False) + "\n",
            status_code=self.status,
            media_type="application/json",
            headers={"cache-control": "no-store", **self.headers},
        )


def _etag(version: int) -> str:
    return f'"{version}"'


def _if_match(request: Request) -> set[int] | None:
    """The versions ``If-Match`` names (None: ``*``, any); 428 without the header."""
    value = request.headers.get("if-match")
    if value is None:
        raise ApiProblem(
            428,
            "this request changes what it names: send If-Match with the ETag you read "
            '(e.g. If-Match: "3"), so a change made since is not overwritten',
        )
    if not value.strip():
        raise ApiProblem(400, 'If-Match is empty: send the ETag you read (e.g. If-Match: "3")')
    if value.strip() == "*":
        return None
    versions = set()
    for tag in value.split(","):
        tag = tag.strip()
        # A weak tag never matches for If-Match (RFC 9110: strong comparison).
        if len(tag) > 2 and tag[0] == tag[-1] == '"' and tag[1:-1].isdigit() and len(tag) < 20:
            versions.add(int(tag[1:-1]))
    return versions


def _merge(target: Any, patch: Any) -> Any:
    """RFC 7396 JSON merge patch."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = _merge(result.get(key), value)
    return result


def _detach(body: Mapping[str, Any]) -> bool:
    value = body.get("detach", False)
    if not isinstance(value, bool):
        raise ApiProblem(422, f"expected true or false, got {value!r}", pointer="/detach")
    return value


def _validate(table: dict[str, Any], zone: str) -> Any:
    try:
        return edits.validate(table, source=_SOURCE, default_zone=zone)
    except InputError as exc:
        raise ApiProblem(422, exc.detail, pointer=rep.pointer(exc.field)) from None
    except (OverflowError, ValueError, TypeError) as exc:
        # A value the readers let through but the arithmetic cannot hold (a date out of range).
        raise ApiProblem(422, f"cannot be represented: {exc}", pointer="") from None


def _window(request: Request, horizon: timedelta, now: datetime) -> tuple[datetime, datetime]:
    def instant(name: str, *, end: bool) -> datetime | None:
        value = request.query_params.get(name)
        if not value:
            return None
        try:
            if len(value) == 10:
                day = date.fromisoformat(value) + (timedelta(days=1) if end else timedelta(0))
                return datetime.combine(day, time(), tzinfo=UTC)
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
            return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
        except (ValueError, OverflowError):
            raise ApiProblem(
                400,
                f"{name} expects YYYY-MM-DD or an ISO date-time (UTC unless it has an offset), "
                f"got {value!r}",
            ) from None

    start = instant("from", end=False) or now
    finish = instant("to", end=True) or start + horizon
    if finish < start:
        raise ApiProblem(400, f"to {iso_utc(finish)} is before from {iso_utc(start)}")
    if finish - start > MAX_WINDOW:
        raise ApiProblem(400, f"the window is longer than {MAX_WINDOW.days} days; ask for less")
    return start, finish


class Api:
    """The API's endpoints over one store; ``app`` is what the feed app mounts."""

    def __init__(self, store: Store, config: Config) -> None:
        self.store = store
        self.config = config
        self.keys = ApiKeys(store)
        self.auth = Authenticator(
            self.keys,
            FailureLimiter(config.api.auth_failures, config.api.auth_window.total_seconds()),
        )
        self.document = json.dumps(openapi(), ensure_ascii=False, indent=1).encode()
        self.app = Starlette(
            routes=self.routes(),
            exception_handlers={HTTPException: self._http_exception},
        )

    def routes(self) -> list[Route]:
        entry = "/calendars/{slug}/entries/{uid}"
        # One route per path, whatever its methods, so a 405 lists them all in Allow.
        table = {
            "/calendars": {"GET": self.list_calendars, "POST": self.create_calendar},
            "/calendars/{slug}": {"GET": self.get_calendar, "PATCH": self.patch_calendar},
            "/calendars/{slug}/entries": {"GET": self.list_entries, "POST": self.create_entry},
            entry: {
                "GET": self.get_entry,
                "PUT": self.replace_entry,
                "PATCH": self.patch_entry,
                "DELETE": self.delete_entry,
            },
            f"{entry}/cancel": {"POST": self.cancel_entry},
            "/calendars/{slug}/reminders": {"GET": self.reminders},
        }
        routes = [Route("/openapi.json", self.openapi_json, methods=["GET"])]
        for path, handlers in table.items():
            routes.append(Route(path, self._wrap(handlers), methods=list(handlers)))
        return routes

    # --- the frame every endpoint runs in ----------------------------------------------

    async def _http_exception(self, request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        detail = {404: "no such resource in this API", 405: "method not allowed here"}.get(
            exc.status_code, str(exc.detail)
        )
        headers = dict(exc.headers or {})
        return problem_response(ApiProblem(exc.status_code, detail, headers=headers))

    def _wrap(
        self, handlers: Mapping[str, Callable[[Request, KeyInfo], Awaitable[Answer]]]
    ) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            # HEAD is answered as GET (Starlette sends no body for it).
            handler = handlers["GET" if request.method == "HEAD" else request.method]
            try:
                address = request.client.host if request.client else "unknown"
                self.auth.check_address(address)
                key = await run_in_threadpool(
                    self.auth.authenticate, request.headers.get("authorization"), address
                )
                answer = await handler(request, key)
            except CalendarSvcError as exc:
                return problem_response(from_error(exc), request.url.path)
            except StaleDataError:
                return problem_response(
                    ApiProblem(412, "it changed while this request ran; read it again"),
                    request.url.path,
                )
            except IntegrityError:
                return problem_response(
                    ApiProblem(409, "a concurrent request made the same change first; read again"),
                    request.url.path,
                )
            except (OperationalError, SQLAlchemyError):
                log_event(log, "api.database_unavailable", logging.WARNING, path=request.url.path)
                return problem_response(
                    ApiProblem(
                        503, "the database is unreachable; try again", headers={"Retry-After": "5"}
                    ),
                    request.url.path,
                )
            except Exception:
                log.exception("api.failed", extra={"path": request.url.path})
                return problem_response(ApiProblem(500, "internal error"), request.url.path)
            return answer.response()

        return endpoint

    async def openapi_json(self, request: Request) -> Response:
        return Response(self.document, media_type="application/json")

    def _calendar_in_scope(self, key: KeyInfo, slug: str) -> None:
        if not key.sees(slug):
            raise NotFoundError(f"no calendar {slug!r}")

    @staticmethod
    def _writable(key: KeyInfo) -> None:
        if key.read_only:
            raise ApiProblem(403, f"key {key.name!r} is read-only")

    async def _json_body(
        self, request: Request, types: tuple[str, ...]
    ) -> tuple[bytes, dict[str, Any]]:
        """The request's JSON object: 415, 413, 400 or 422 (not an object) otherwise."""
        media = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if media not in types:
            accept = ", ".join(types)
            raise ApiProblem(
                415,
                f"send the body as {accept}, not {media or 'nothing'}",
                headers={"Accept-Post" if request.method == "POST" else "Accept-Patch": accept},
            )
        limit = self.config.api.max_body
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise ApiProblem(413, f"the body is {int(declared)} bytes; at most {limit} are taken")
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise ApiProblem(413, f"the body is over {limit} bytes, the most taken")
            chunks.append(chunk)
        raw = b"".join(chunks)

        def refuse(constant: str) -> Any:
            raise ValueError(f"{constant} is not JSON")

        try:
            body = json.loads(raw.decode("utf-8"), parse_constant=refuse)
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            raise ApiProblem(400, f"the body is not JSON: {exc}") from None
        if not isinstance(body, dict):
            raise ApiProblem(422, f"expected a JSON object, got {type(body).__name__}", pointer="")
        return raw, body

    def _changed(self, action: str, key: KeyInfo, slug: str, uid: str | None, version: int) -> None:
        log_event(
            log,
            "api.changed",
            action=action,
            calendar=slug,
            uid=uid or "",
            key=key.name,
            version=version,
        )

    # --- calendars ----------------------------------------------------------------------

    async def list_calendars(self, request: Request, key: KeyInfo) -> Answer:
        calendars = await run_in_threadpool(self.store.calendars)
        return Answer(200, [rep.calendar_json(c) for c in calendars if key.sees(c.slug)])

    async def get_calendar(self, request: Request, key: KeyInfo) -> Answer:
        slug = request.path_params["slug"]
        self._calendar_in_scope(key, slug)
        calendar = await run_in_threadpool(self.store.get_calendar, slug)
        return Answer(200, rep.calendar_json(calendar), {"ETag": _etag(calendar.version)})

    async def create_calendar(self, request: Request, key: KeyInfo) -> Answer:
        _idempotency_key(request)  # a bad one is refused before anything else
        self._writable(key)
        raw, body = await self._json_body(request, JSON_TYPES)
        table = rep.calendar_table(body)
        values = _calendar_values(table)
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
            self._changed("calendar_created", key, slug, None, calendar.version)
            return Answer(
                201,
                rep.calendar_json(calendar),
                {"ETag": _etag(calendar.version), "Location": f"{PREFIX}/calendars/{slug}"},
            )

        return await self._idempotent(request, key, raw, write)

    async def patch_calendar(self, request: Request, key: KeyInfo) -> Answer:
        slug = request.path_params["slug"]
        self._calendar_in_scope(key, slug)
        self._writable(key)
        match = _if_match(request)
        _raw, body = await self._json_body(request, MERGE_TYPES)
        if "slug" in body:
            raise ApiProblem(422, "a calendar's slug does not change", pointer="/slug")
        rep.calendar_table(body)  # read-only members

        def write() -> Answer:
            now = self.store.clock()
            with self.store.write() as session:
                calendar = edits.lock_calendar(session, slug)
                current = rep.calendar_json(calendar)
                merged = _merge({k: current[k] for k in rep.CALENDAR_WRITABLE}, body)
                values = _calendar_values(rep.calendar_table(merged))
                edits.check_version(calendar, match, f"calendar {slug!r}")
                owner = session.scalar(
                    select(Entry.origin_name)
                    .where(
                        Entry.calendar_id == calendar.id,
                        Entry.origin_kind == str(OriginKind.FILE),
                        Entry.origin_name.like("%.toml"),
                    )
                    .limit(1)
                )
                if owner is not None:
                    raise ApiProblem(
                        409,
                        f"calendar {slug!r} is defined by schedule file {owner}: its name, zone "
                        "and offsets come from that file's [calendar] table; change them there",
                    )
                if any(getattr(calendar, k) != v for k, v in values.items()):
                    for name, value in values.items():
                        setattr(calendar, name, value)
                    bump(calendar, now)
                    session.flush()
                    self._changed("calendar_changed", key, slug, None, calendar.version)
                return Answer(200, rep.calendar_json(calendar), {"ETag": _etag(calendar.version)})

        return await run_in_threadpool(write)

    # --- entries ------------------------------------------------------------------------

    async def list_entries(self, request: Request, key: KeyInfo) -> Answer:
        slug = request.path_params["slug"]
        self._calendar_in_scope(key, slug)
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

    async def get_entry(self, request: Request, key: KeyInfo) -> Answer:
        slug, uid = request.path_params["slug"], request.path_params["uid"]
        self._calendar_in_scope(key, slug)

        def read() -> Answer:
            with self.store.read() as session:
                calendar = session.scalar(select(Calendar).where(Calendar.slug == slug))
                if calendar is None:
                    raise NotFoundError(f"no calendar {slug!r}")
                entry = edits.find(session, calendar, uid)
                return Answer(200, rep.entry_json(entry, slug), {"ETag": _etag(entry.version)})

        return await run_in_threadpool(read)

    async def create_entry(self, request: Request, key: KeyInfo) -> Answer:
        _idempotency_key(request)  # a bad one is refused before anything else
        slug = request.path_params["slug"]
        self._calendar_in_scope(key, slug)
        self._writable(key)
        raw, body = await self._json_body(request, JSON_TYPES)
        rep.check_members(body)
        _detach(body)
        table = rep.entry_table(body)
        table.setdefault("uid", f"api-{secrets.token_hex(8)}")

        def write(session: Session, now: datetime) -> Answer:
            calendar = edits.lock_calendar(session, slug)
            spec = _validate(table, calendar.timezone)
            entry = edits.create(session, calendar, spec, owner=key.name, now=now)
            self._changed("created", key, slug, entry.uid, entry.version)
            return Answer(
                201,
                rep.entry_json(entry, slug),
                {
                    "ETag": _etag(entry.version),
                    "Location": f"{PREFIX}/calendars/{slug}/entries/{entry.uid}",
                },
            )

        return await self._idempotent(request, key, raw, write)

    async def replace_entry(self, request: Request, key: KeyInfo) -> Answer:
        slug, uid = request.path_params["slug"], request.path_params["uid"]
        self._calendar_in_scope(key, slug)
        self._writable(key)
        match = _if_match(request)
        _raw, body = await self._json_body(request, JSON_TYPES)
        rep.check_members(body)
        detach = _detach(body)
        table = rep.entry_table(body)
        if table.get("uid", uid) != uid:
            raise ApiProblem(
                422, f"an entry's uid does not change (the path says {uid!r})", pointer="/uid"
            )
        table["uid"] = uid
        return await self._edit(slug, uid, key, match, detach, "replaced", lambda _entry: table)

    async def patch_entry(self, request: Request, key: KeyInfo) -> Answer:
        slug, uid = request.path_params["slug"], request.path_params["uid"]
        self._calendar_in_scope(key, slug)
        self._writable(key)
        match = _if_match(request)
        _raw, body = await self._json_body(request, MERGE_TYPES)
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
            table = rep.entry_table(_merge(current, patch))
            if _names(patch, "start") and not _names_end(patch) and "duration" not in patch:
                # A new start alone moves the entry: it keeps its length.
                fold = table.get("fold") if patch["start"].get("fold") is not None else None
                edits.keep_length(entry, table, table["start"])
                if fold is not None:
                    table["fold"] = fold
            return table

        return await self._edit(slug, uid, key, match, detach, "patched", patched)

    async def cancel_entry(self, request: Request, key: KeyInfo) -> Answer:
        slug, uid = request.path_params["slug"], request.path_params["uid"]
        self._calendar_in_scope(key, slug)
        self._writable(key)
        match = _if_match(request)

        def cancelled(entry: Entry) -> dict[str, Any]:
            return {**edits.raw_of(entry), "status": str(EntryStatus.CANCELLED)}

        return await self._edit(slug, uid, key, match, False, "cancelled", cancelled)

    async def delete_entry(self, request: Request, key: KeyInfo) -> Answer:
        slug, uid = request.path_params["slug"], request.path_params["uid"]
        self._calendar_in_scope(key, slug)
        self._writable(key)
        match = _if_match(request)

        def write() -> Answer:
            now = self.store.clock()
            with self.store.write() as session:
                calendar = edits.lock_calendar(session, slug)
                entry = edits.find(session, calendar, uid)
                edits.check_version(entry, match, f"entry {uid!r}")
                edits.check_owner(entry, detach=False, how='PATCH with "detach": true first')
                version = entry.version
                edits.remove(session, entry, now=now)
            self._changed("deleted", key, slug, uid, version)
            return Answer(204)

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
                if changed or took:
                    self._changed(action if changed else "detached", key, slug, uid, entry.version)
                return Answer(200, rep.entry_json(entry, slug), {"ETag": _etag(entry.version)})

        return await run_in_threadpool(write)

    async def _idempotent(
        self,
        request: Request,
        key: KeyInfo,
        raw: bytes,
        write: Callable[[Session, datetime], Answer],
    ) -> Answer:
        """``write`` in one transaction; with an ``Idempotency-Key``, its answer recorded
        there, and a retry answered with it (422 when the key came with another request)."""
        name = _idempotency_key(request)
        digest = idempotency.request_digest(request.method, request.url.path, raw)

        def run() -> Answer:
            now = self.store.clock()
            with self.store.write() as session:
                if name is not None:
                    found = idempotency.find(session, key.id, name)
                    if found is not None:
                        return _replay(found, digest)
                answer = write(session, now)
                if name is not None:
                    stored = idempotency.StoredAnswer(
                        status=answer.status,
                        headers=answer.headers,
                        body=json.dumps(answer.body, ensure_ascii=False),
                        request_digest=digest,
                    )
                    idempotency.record(
                        session, key.id, name, stored, now=now, keep=self.config.api.idempotency_ttl
                    )
                return answer

        try:
            return await run_in_threadpool(run)
        except IntegrityError:
            if name is None:
                raise

            # A concurrent first try of the same key won: answer as it did.
            def again() -> Answer:
                with self.store.read() as session:
                    found = idempotency.find(session, key.id, name)
                if found is None:
                    raise ApiProblem(409, "a concurrent request made the same change first")
                return _replay(found, digest)

            return await run_in_threadpool(again)

    # --- reminders ----------------------------------------------------------------------

    async def reminders(self, request: Request, key: KeyInfo) -> Answer:
        slug = request.path_params["slug"]
        self._calendar_in_scope(key, slug)
        start, end = _window(request, self.config.reminders.horizon, self.store.clock())

        def read() -> Answer:
            self.store.get_calendar(slug)  # 404 for an unknown calendar
            found = Planner(self.store, self.config.reminders).schedule(start, end)
            return Answer(
                200,
                [
                    {
                        "due_utc": iso_utc(r.due_at),
                        "due_local": to_local(r.due_at, r.start_tz).isoformat(),
                        "timezone": r.start_tz,
                        "uid": r.entry_uid,
                        "title": r.title,
                        "start_utc": iso_utc(r.occurrence_utc),
                        "offset": format_duration(r.offset),
                        "channel": r.channel,
                        "idempotency_key": r.idempotency_key,
                    }
                    for r in found
                    if r.calendar_slug == slug
                ],
            )

        return await run_in_threadpool(read)


def _idempotency_key(request: Request) -> str | None:
    """The request's ``Idempotency-Key`` (None: none); 400 when it is empty or too long."""
    name = request.headers.get("idempotency-key")
    if name is not None and not 0 < len(name) <= idempotency.KEY_MAX:
        raise ApiProblem(
            400, f"Idempotency-Key must be 1 to {idempotency.KEY_MAX} characters, got {len(name)}"
        )
    return name


def _names(patch: Mapping[str, Any], time: str) -> bool:
    """Whether a patch gives ``start.local`` or ``end.local``."""
    value = patch.get(time)
    return isinstance(value, dict) and value.get("local") is not None


def _names_end(patch: Mapping[str, Any]) -> bool:
    return _names(patch, "end")


def _replay(found: idempotency.StoredAnswer, digest: str) -> Answer:
    if found.request_digest != digest:
        raise ApiProblem(
            422,
            "this Idempotency-Key came with another request (method, path or body); use a new "
            "key for a new request",
        )
    return Answer(
        found.status, json.loads(found.body), {**found.headers, "Idempotent-Replayed": "true"}
    )


def _calendar_values(table: dict[str, Any]) -> dict[str, Any]:
    """A ``[calendar]`` table through the schedule files' readers, as column values."""
    try:
        values = read_section(CALENDAR_TABLE, Table(table, Place(InputError, _SOURCE)))
        spec = CALENDAR_TABLE(**values)
    except InputError as exc:
        raise ApiProblem(422, exc.detail, pointer=f"/{exc.field}" if exc.field else "") from None
    reminders = list(spec.reminders) if spec.reminders is not None else None
    return {
        "slug": spec.slug,
        "name": spec.name,
        "description": spec.description,
        "timezone": spec.timezone,
        "reminders": reminders,
    }


def build_api(store: Store, config: Config) -> Starlette:
    """The API app (its paths relative to ``/api/v1``)."""
    return Api(store, config).app


def mount(store: Store, config: Config) -> Mount:
    """The API mounted at ``/api/v1``, for the feed app's routes.

    Starlette matches a mount with ``.*``, which stops at a newline: a path such as
    ``/api/v1/calendars/a%0Ab`` would fall through to the feed's plain 404. Matched
    with DOTALL, every path under the prefix is the API's, and gets its problems.
    """
    mounted = Mount(PREFIX, app=build_api(store, config))
    mounted.path_regex = re.compile(mounted.path_regex.pattern, re.DOTALL)
    return mounted
