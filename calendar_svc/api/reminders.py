"""The reminder preview: ``GET /calendars/{slug}/reminders?from=…&to=…``.

What ``calendar-svc reminders`` shows, for one calendar: the reminders the
planner would plan in a window (``Planner.schedule``), without writing or
sending anything. ``from``/``to`` are UTC days or ISO date-times, as the CLI
takes them; the window is at most ``MAX_WINDOW`` long.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from calendar_svc.api.frame import Answer, Frame
from calendar_svc.api_keys import KeyInfo
from calendar_svc.durations import format_duration
from calendar_svc.errors import ApiProblem
from calendar_svc.reminders.planner import Planner
from calendar_svc.timezones import UTC, iso_utc, to_local

# The widest window one request may ask for.
MAX_WINDOW = timedelta(days=366)


class ReminderEndpoints:
    """``/calendars/{slug}/reminders``."""

    def __init__(self, frame: Frame) -> None:
        self.frame = frame
        self.store = frame.store

    async def preview(self, request: Request, key: KeyInfo) -> Answer:
        slug = request.path_params["slug"]
        self.frame.in_scope(key, slug)
        start, end = _window(request, self.frame.config.reminders.horizon, self.store.clock())

        def read() -> Answer:
            self.store.get_calendar(slug)  # 404 for an unknown calendar
            found = Planner(self.store, self.frame.config.reminders).schedule(start, end)
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
