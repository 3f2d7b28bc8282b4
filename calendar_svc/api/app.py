"""The API's Starlette app, mounted at ``/api/v1`` by the feed app when ``[api] enabled``.

Each request goes: the client address's failure count (429), the key (401),
then the endpoint (``calendars``, ``entries``, ``reminders``): the calendar
within the key's scope (404 for any other, as for one that does not exist),
read-only keys refused for writes (403), ``If-Match`` on PUT, PATCH, DELETE
and cancel (428 without, 412 when stale), the body (415 for another media
type, 413 above ``[api] max_body``, 400 for broken JSON), the one validator
(422 naming the field as a JSON pointer). Reads and writes run in worker
threads, each write in one transaction of the store with the calendar row
locked first; what a write changed is logged (``api.changed``) once it
committed.

Nothing a client sends makes a 500: a refusal is an ``ApiProblem`` (or an
error of the store that ``problems.from_error`` maps); anything else that
escapes is a bug, logged as ``api.failed`` with its traceback and answered 500
without detail.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Awaitable, Callable, Mapping

from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm.exc import StaleDataError
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route

from calendar_svc.api.auth import Authenticator, FailureLimiter
from calendar_svc.api.calendars import CalendarEndpoints
from calendar_svc.api.entries import EntryEndpoints
from calendar_svc.api.frame import PREFIX, Answer, Frame
from calendar_svc.api.problems import from_error, problem_response
from calendar_svc.api.reminders import ReminderEndpoints
from calendar_svc.api.schema import openapi
from calendar_svc.api_keys import ApiKeys, KeyInfo
from calendar_svc.config import Config
from calendar_svc.errors import ApiProblem, CalendarSvcError
from calendar_svc.logs import log_event
from calendar_svc.store import Store

log = logging.getLogger("calendar_svc.api")

Endpoint = Callable[[Request, KeyInfo], Awaitable[Answer]]


class Api:
    """The API over one store; ``app`` is what the feed app mounts."""

    def __init__(self, store: Store, config: Config) -> None:
        self.store = store
        self.auth = Authenticator(
            ApiKeys(store),
            FailureLimiter(config.api.auth_failures, config.api.auth_window.total_seconds()),
        )
        frame = Frame(store, config)
        self.calendars = CalendarEndpoints(frame)
        self.entries = EntryEndpoints(frame)
        self.reminders = ReminderEndpoints(frame)
        self.document = json.dumps(openapi(), ensure_ascii=False, indent=1).encode()
        self.app = Starlette(
            routes=self.routes(),
            exception_handlers={HTTPException: self._http_exception},
        )

    def routes(self) -> list[Route]:
        entry = "/calendars/{slug}/entries/{uid}"
        calendars, entries = self.calendars, self.entries
        # One route per path, whatever its methods, so a 405 lists them all in Allow.
        table: dict[str, dict[str, Endpoint]] = {
            "/calendars": {"GET": calendars.list, "POST": calendars.create},
            "/calendars/{slug}": {"GET": calendars.get, "PATCH": calendars.patch},
            "/calendars/{slug}/entries": {"GET": entries.list, "POST": entries.create},
            entry: {
                "GET": entries.get,
                "PUT": entries.replace,
                "PATCH": entries.patch,
                "DELETE": entries.delete,
            },
            f"{entry}/cancel": {"POST": entries.cancel},
            "/calendars/{slug}/reminders": {"GET": self.reminders.preview},
        }
        routes = [Route("/openapi.json", self.openapi_json, methods=["GET"])]
        for path, handlers in table.items():
            routes.append(Route(path, self._wrap(handlers), methods=list(handlers)))
        return routes

    async def _http_exception(self, request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        detail = {404: "no such resource in this API", 405: "method not allowed here"}.get(
            exc.status_code, str(exc.detail)
        )
        headers = dict(exc.headers or {})
        return problem_response(ApiProblem(exc.status_code, detail, headers=headers))

    def _wrap(self, handlers: Mapping[str, Endpoint]) -> Callable[[Request], Awaitable[Response]]:
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
            except SQLAlchemyError:
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
            if answer.change is not None:  # committed
                change = answer.change
                log_event(
                    log,
                    "api.changed",
                    action=change.action,
                    calendar=change.calendar,
                    uid=change.uid or "",
                    key=key.name,
                    version=change.version,
                )
            return answer.response()

        return endpoint

    async def openapi_json(self, request: Request) -> Response:
        return Response(self.document, media_type="application/json")


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
