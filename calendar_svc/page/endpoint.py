"""The page over HTTP: ``/c/{token}/{slug}``, ``/c/{token}/{slug}/{uid}.ics``, ``/static/{name}``.

The same token rules as the feed (``feed.access``): the calendar's own token or
a live share link's opens the page, narrowed to the link's cities and
categories; anything else gets the one 404 every unknown path gets. Pages are
cached per (calendar, version, link, filter) until a day of the page becomes
past (``PageView.stale_at``), and answered 304 on a matching If-None-Match
(or, without one, an If-Modified-Since not older than the page's last change).

Headers: a Content-Security-Policy that allows scripts, styles and images from
the server itself and nothing inline, ``Referrer-Policy: no-referrer`` (the
page's URL holds its token: no link may leak it), ``nosniff``, no framing, no
indexing. Static files are immutable under their hashed names.
"""

from __future__ import annotations

import hashlib
import re
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime, parsedate_to_datetime
from urllib.parse import urlsplit

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from calendar_svc import ics
from calendar_svc.config import Config
from calendar_svc.errors import InputError, NotFoundError, StoreError
from calendar_svc.events import EventBus, PageAnswered
from calendar_svc.feed.access import Access
from calendar_svc.feed.cache import FilterKey, filter_key
from calendar_svc.filters import EntryFilter, matches, parse_query
from calendar_svc.links import check_public_url
from calendar_svc.page.assets import Assets
from calendar_svc.page.html import PageRenderer
from calendar_svc.page.view import PageAddress, build_view
from calendar_svc.shares import Grant
from calendar_svc.store import CalendarHead, Store
from calendar_svc.timezones import UTC

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
_PROTECTED = {
    "referrer-policy": "no-referrer",
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "x-robots-tag": "noindex, nofollow",
}
_PAGE_HEADERS = {
    "content-security-policy": CONTENT_SECURITY_POLICY,
    # Revalidated on every visit (a 304 when nothing changed): days fold as time passes.
    "cache-control": "private, no-cache",
    **_PROTECTED,
}
_STATIC_CACHE = "public, max-age=31536000, immutable"
_MAX_PAGES = 128


@dataclass(frozen=True)
class RenderedPage:
    body: bytes
    etag: str  # quoted
    stale_at: datetime | None
    last_modified: datetime


# (calendar id, version, share link id or None, filter, public URL)
PageKey = tuple[int, int, int | None, FilterKey, str]


class PageEndpoints:
    """The page's routes for one app (``routes()``), sharing the feed's ``Access``."""

    def __init__(
        self,
        store: Store,
        config: Config,
        access: Access,
        events: EventBus,
        *,
        not_found: Callable[[], Response],
    ):
        self.store = store
        self.public_url: str | None = config.feed.public_url
        try:
            check_public_url(config.feed.public_url)
        except InputError:
            # [feed] port = 0 and no public_url: the address the page was reached at is
            # the best guess there is (a test or a local run); links use it instead.
            self.public_url = None
        self.options = ics.FeedOptions.from_config(config)
        self.access = access
        self.events = events
        self.not_found = not_found
        self.assets = Assets.load()
        base_path = urlsplit(self.public_url or "").path.rstrip("/")
        self.renderer = PageRenderer(self.assets, base_path)
        self._pages: OrderedDict[PageKey, RenderedPage] = OrderedDict()

    def routes(self) -> list[Route]:
        return [
            Route("/c/{token}/{slug}", self.page, methods=["GET", "HEAD"]),
            # path: a uid may hold a "/" (sent as %2F, which the server decodes).
            Route("/c/{token}/{slug}/{uid:path}.ics", self.entry, methods=["GET", "HEAD"]),
            Route("/static/{name}", self.static, methods=["GET", "HEAD"]),
        ]

    # -- routes --------------------------------------------------------------------------

    async def page(self, request: Request) -> Response:
        found = await self._open(request)
        if isinstance(found, Response):
            return found
        head, grant, token = found
        try:
            flt = parse_query(request.scope.get("query_string", b""))
        except InputError as exc:
            return self._answer(_plain(400, f"Bad Request: {exc}\n"))
        public_url = self.public_url or str(request.base_url).rstrip("/")
        key: PageKey = (head.id, head.version, grant.share_id, filter_key(flt), public_url)
        now = self.access.clock()
        page = self._pages.get(key)
        if page is None or (page.stale_at is not None and now >= page.stale_at):
            address = PageAddress(public_url=public_url, token=token, slug=head.slug)
            page = await run_in_threadpool(self._render, head, grant, address, flt, now)
            self._keep(key, page)
        else:
            self._pages.move_to_end(key)
        headers = {
            **_PAGE_HEADERS,
            "etag": page.etag,
            "last-modified": format_datetime(page.last_modified.astimezone(UTC), usegmt=True),
        }
        if _not_modified(request, page):
            return self._answer(Response(status_code=304, headers=headers))
        return self._answer(
            Response(page.body, media_type="text/html; charset=utf-8", headers=headers)
        )

    async def entry(self, request: Request) -> Response:
        found = await self._open(request)
        if isinstance(found, Response):
            return found
        head, grant, _ = found
        uid = request.path_params["uid"]
        body = await run_in_threadpool(self._entry_document, head, grant, uid)
        if body is None:
            return self._answer(self.not_found())
        etag = f'"{hashlib.sha256(body).hexdigest()[:32]}"'
        headers = {
            "etag": etag,
            "cache-control": "private, no-cache",
            "content-disposition": f'attachment; filename="{_filename(uid)}.ics"',
            **_PROTECTED,
        }
        if _matches(request.headers.get("if-none-match"), etag):
            return self._answer(Response(status_code=304, headers=headers))
        return self._answer(
            Response(body, media_type="text/calendar; charset=utf-8", headers=headers)
        )

    async def static(self, request: Request) -> Response:
        asset = self.assets.find(request.path_params["name"])
        if asset is None:
            return self.not_found()
        headers = {
            "etag": asset.etag,
            "cache-control": _STATIC_CACHE,
            "x-content-type-options": "nosniff",
        }
        if _matches(request.headers.get("if-none-match"), asset.etag):
            return Response(status_code=304, headers=headers)
        return Response(asset.body, media_type=asset.content_type, headers=headers)

    # -- work ------------------------------------------------------------------------------

    async def _open(self, request: Request) -> tuple[CalendarHead, Grant, str] | Response:
        """The calendar and grant of the request's token, or the answer that refuses it."""
        token: str = request.path_params["token"]
        slug: str = request.path_params["slug"]
        try:
            head = self.store.calendar_head(slug)
            grant = await self.access.resolve(head, token)
        except StoreError:
            return self._answer(_plain(503, "Service Unavailable: database unreachable\n"))
        if grant is None or head is None:
            return self._answer(self.not_found())
        return head, grant, token

    def _render(
        self,
        head: CalendarHead,
        grant: Grant,
        address: PageAddress,
        flt: EntryFilter,
        now: datetime,
    ) -> RenderedPage:
        calendar = self.store.get_calendar(head.slug)
        entries = self.store.entries(grant.narrow(EntryFilter(calendar=head.slug)))
        view = build_view(
            calendar=calendar,
            entries=entries,
            flt=flt,
            address=address,
            now=now,
            share_name=grant.name if grant.share_id is not None else None,
            expires_at=grant.expires_at,
        )
        body = self.renderer.render(view)
        return RenderedPage(
            body=body,
            etag=f'"{hashlib.sha256(body).hexdigest()[:32]}"',
            stale_at=view.stale_at,
            last_modified=view.changed_at,
        )

    def _keep(self, key: PageKey, page: RenderedPage) -> None:
        for old in [k for k in self._pages if k[0] == key[0] and k[2:] == key[2:]]:
            del self._pages[old]
        self._pages[key] = page
        while len(self._pages) > _MAX_PAGES:
            self._pages.popitem(last=False)

    def _entry_document(self, head: CalendarHead, grant: Grant, uid: str) -> bytes | None:
        """One entry as an .ics file: the feed's header, the VTIMEZONEs of its zones and its
        VEVENT, each the same bytes as in the feed; None when the token may not see it."""
        try:
            entry = self.store.find_entry(uid, head.slug)
        except (NotFoundError, InputError):
            return None
        if not self.store.screen.usable([entry]) or not matches(entry, grant.narrow(EntryFilter())):
            return None
        calendar = entry.calendar
        zones = [] if entry.all_day else sorted({entry.start_tz, entry.end_tz})
        return ics.assemble(
            ics.header_bytes(calendar, self.options),
            ics.timezone_blocks(zones),
            [ics.event_bytes(entry, calendar, self.options)],
        )

    def _answer(self, response: Response) -> Response:
        self.events.emit(PageAnswered(status=response.status_code))
        return response


def _not_modified(request: Request, page: RenderedPage) -> bool:
    """RFC 9110: If-None-Match decides when present; else If-Modified-Since."""
    if_none_match = request.headers.get("if-none-match")
    if if_none_match is not None:
        return _matches(if_none_match, page.etag)
    since = request.headers.get("if-modified-since")
    if since is None:
        return False
    try:
        when = parsedate_to_datetime(since)
    except (TypeError, ValueError):
        return False
    # HTTP dates have whole seconds.
    return when.tzinfo is not None and page.last_modified.replace(microsecond=0) <= when


def _matches(if_none_match: str | None, etag: str) -> bool:
    if not if_none_match:
        return False
    tags = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
    return "*" in tags or etag in tags


def _filename(uid: str) -> str:
    """``uid`` as a download's file name: letters, digits and ``._@+-`` (others become _)."""
    return re.sub(r"[^A-Za-z0-9._@+-]", "_", uid)[:120] or "entry"


def _plain(status: int, text: str) -> Response:
    return Response(text, status_code=status, media_type="text/plain; charset=utf-8")
