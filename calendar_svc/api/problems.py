"""Refusals as RFC 9457 problem details (``application/problem+json``).

Every refusal is one ``errors.ApiProblem`` (status, detail, the JSON pointer of
the field at fault, extra headers) or one of the errors the store and the
validator raise, which ``from_error`` turns into the status it means:
InputError 422 (its field as the pointer), NotFoundError 404, a conflict 409,
a stale version 412. The body names the field as the issue asks:
``"detail": "/start/zone: unknown timezone 'America/Quito' (…)"``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

from starlette.responses import Response

from calendar_svc.errors import (
    ApiProblem,
    CalendarSvcError,
    ConflictError,
    InputError,
    NotFoundError,
    ReadOnlyEntryError,
    StaleVersionError,
    StoreError,
)

PROBLEM_TYPE = "application/problem+json"


def title(status: int) -> str:
    """The status's reason phrase (``Unprocessable Content``)."""
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        return "Error"
    return {
        "Unprocessable Entity": "Unprocessable Content",
        "Request Entity Too Large": "Content Too Large",
    }.get(phrase, phrase)


def problem_response(problem: ApiProblem, instance: str | None = None) -> Response:
    """The response of ``problem``."""
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": title(problem.status),
        "status": problem.status,
        "detail": f"{problem.pointer}: {problem.detail}" if problem.pointer else problem.detail,
    }
    if instance:
        body["instance"] = instance
    if problem.pointer is not None:
        body["errors"] = [{"pointer": problem.pointer, "detail": problem.detail}]
    return Response(
        json.dumps(body, ensure_ascii=False) + "\n",
        status_code=problem.status,
        media_type=PROBLEM_TYPE,
        headers={"cache-control": "no-store", **problem.headers},
    )


def from_error(
    exc: CalendarSvcError, pointer: Callable[[str | None], str] | None = None
) -> ApiProblem:
    """The problem an error of the store or the validator means. ``pointer`` turns the
    field of an InputError into the body's JSON pointer (None: the error is not about a
    body, e.g. a query parameter: 400)."""
    if isinstance(exc, ApiProblem):
        return exc
    if isinstance(exc, InputError):
        if pointer is None:
            return ApiProblem(400, str(exc))
        return ApiProblem(422, exc.detail, pointer=pointer(exc.field))
    if isinstance(exc, NotFoundError):
        return ApiProblem(404, str(exc))
    if isinstance(exc, StaleVersionError):
        return ApiProblem(412, str(exc))
    if isinstance(exc, ConflictError | ReadOnlyEntryError):
        return ApiProblem(409, str(exc))
    if isinstance(exc, StoreError):
        return ApiProblem(503, f"the database refused: {exc}", headers={"Retry-After": "5"})
    return ApiProblem(500, "internal error")
