"""``run`` (the daemon), ``reminders`` (the schedule, without sending) and ``status``."""

from __future__ import annotations

import logging
import os
import sys
from datetime import date, datetime, time, timedelta
from typing import Any

import click

from calendar_svc.cli.context import CliContext, echo_json, pass_ctx
from calendar_svc.clock import now_utc
from calendar_svc.config import Config, load_config
from calendar_svc.db import sqlite_file
from calendar_svc.durations import format_duration
from calendar_svc.errors import CalendarSvcError, InputError
from calendar_svc.models import DeliveryStatus
from calendar_svc.reminders import reports
from calendar_svc.reminders.lock import holder_pid
from calendar_svc.reminders.planner import Planner
from calendar_svc.reminders.rules import PlannedReminder
from calendar_svc.timezones import UTC, iso_utc, time_text, to_local
from calendar_svc.validation import in_range


@click.command()
@click.option("--no-feed", is_flag=True, help="Do not serve the ICS feeds (reminders only).")
@click.option("--no-reminders", is_flag=True, help="Do not plan or send reminders (feed only).")
@pass_ctx
def run(ctx: CliContext, no_feed: bool, no_reminders: bool) -> None:
    """Run the daemon: import schedules, serve feeds, send reminders (Ctrl-C to stop).

    SIGTERM/SIGINT: finish sends in flight (up to reminders.stop_timeout), exit 0.
    SIGHUP: reload config, notifiers and schedule files.

    The tz database is [time] tzdir ($CALENDAR_SVC_TZDIR wins; default pytz's).
    On start, entries whose instants came from another tz database version are
    derived again from their wall times; while running, the daemon notices that
    folder change (every reminders.rescan_interval) and does the same.
    `calendar-svc doctor` shows what would move.
    """
    from calendar_svc.daemon import Daemon

    def reload() -> Config:
        return load_config(ctx.config_path, database_url=ctx.database_url)

    daemon = Daemon(ctx.config, load_config=reload, feed=not no_feed, reminders=not no_reminders)
    try:
        code = daemon.run()
    except CalendarSvcError as exc:
        # Its log already said why, as daemon.start_failed: one line, not the same twice.
        raise SystemExit(exc.exit_code) from None
    if daemon.abandoned:
        # A notifier is still hung in a send thread past stop_timeout. Its row is back to
        # pending (sent again by the next daemon) and nothing more will be written. Leave
        # now: were that daemon thread to wake up while the interpreter shuts down, its log
        # line could abort the process ("could not acquire lock for <stderr> at interpreter
        # shutdown, possibly due to daemon threads") instead of a clean exit 0. The Daemon
        # class only reports it (``abandoned``); how the process ends is the command's call.
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    raise SystemExit(code)


def parse_instant(value: str | None, option: str, *, end: bool = False) -> datetime | None:
    """``2025-09-02`` (a UTC day; ``--to`` includes it), or an ISO date-time (UTC unless
    offset), on the days entries may fall on (``validation.FIRST_DAY``..``LAST_DAY``)."""
    if value is None:
        return None
    try:
        if len(value) == 10:
            day = date.fromisoformat(value)
            in_range(day, option)
            if end:
                day += timedelta(days=1)
            return datetime.combine(day, time(), tzinfo=UTC)
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        in_range(parsed.date(), option)
        instant = parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
        in_range(instant.date(), option)
        return instant
    except (ValueError, OverflowError) as exc:
        if str(exc).startswith(option):  # out of range: in_range said which days are kept
            raise InputError(str(exc)) from None
        raise InputError(
            f"{option} expects YYYY-MM-DD or an ISO date-time (UTC unless it has an offset), "
            f"got {value!r}"
        ) from None


def local_text(instant: datetime, zone: str) -> str:
    local = to_local(instant, zone)
    return f"{local:%a %Y-%m-%d} {time_text(local)}"


def reminder_json(r: PlannedReminder, config: Config) -> dict[str, Any]:
    data = {
        "due_utc": iso_utc(r.due_at),
        "due_local": to_local(r.due_at, r.start_tz).isoformat(),
        "timezone": r.start_tz,
        "calendar": r.calendar_slug,
        "uid": r.entry_uid,
        "title": r.title,
        "start_utc": iso_utc(r.occurrence_utc),
        "offset": format_duration(r.offset),
        "channel": r.channel,
        "idempotency_key": r.idempotency_key,
    }
    if config.display.timezone:
        data["due_display"] = to_local(r.due_at, config.display.timezone).isoformat()
    return data


@click.command()
@click.option(
    "--from",
    "from_",
    metavar="DT",
    help="Window start: YYYY-MM-DD or ISO date-time (UTC unless offset). Default: now.",
)
@click.option(
    "--to",
    metavar="DT",
    help="Window end (a date includes that day). Default: now + reminders.horizon.",
)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list.")
@pass_ctx
def reminders(ctx: CliContext, from_: str | None, to: str | None, as_json: bool) -> None:
    """The reminders that would be planned in a window, without sending anything."""
    config = ctx.config
    now = now_utc()
    start = parse_instant(from_, "--from") or now
    end = parse_instant(to, "--to", end=True) or start + config.reminders.horizon
    if end < start:
        raise InputError(f"--to {iso_utc(end)} is before --from {iso_utc(start)}")
    store = ctx.store
    ctx.warn_isolated()
    found = Planner(store, config.reminders).schedule(start, end)
    if as_json:
        echo_json([reminder_json(r, config) for r in found])
        return
    if not found:
        click.echo(f"No reminders due between {iso_utc(start)} and {iso_utc(end)}.")
        _hint_window(ctx, start, end)
        return
    for r in found:
        display = ""
        if config.display.timezone:
            there = to_local(r.due_at, config.display.timezone)
            display = f"  [{time_text(there)} {config.display.label or config.display.timezone}]"
        click.echo(
            f"{iso_utc(r.due_at)}  {local_text(r.due_at, r.start_tz):<36}{display}  "
            f"{format_duration(r.offset):>6} before  {r.channel:<10} {r.entry_uid}: "
            f"{r.title}"
        )
    click.echo(f"{len(found)} reminder(s) between {iso_utc(start)} and {iso_utc(end)}.")


def _hint_window(ctx: CliContext, start: datetime, end: datetime) -> None:
    stats = ctx.store.calendar_stats()
    for slug, s in sorted(stats.items()):
        if s["first_start"] is None:
            continue
        first, last = s["first_start"], s["last_end"]
        if last < start or first > end + timedelta(days=2):
            click.echo(
                f"  {slug}: entries from {first:%Y-%m-%d} to {last:%Y-%m-%d}; try "
                f"--from {(first - timedelta(days=1)):%Y-%m-%d} --to {last:%Y-%m-%d}"
            )


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--limit", default=10, show_default=True, help="Rows per section.")
@pass_ctx
def status(ctx: CliContext, as_json: bool, limit: int) -> None:
    """Daemon, next reminders, recent deliveries and failures."""
    store = ctx.store
    database = sqlite_file(ctx.config.database.url)
    pid = holder_pid(database) if database else None
    with store.read() as session:  # one read for every section
        counts = reports.counts_by_status(session)
        upcoming = reports.deliveries(
            session,
            statuses=[DeliveryStatus.PENDING, DeliveryStatus.SENDING],
            newest_first=False,
            limit=limit,
            order_by="next_attempt_at",
        )
        recent = reports.deliveries(
            session,
            statuses=[DeliveryStatus.SENT, DeliveryStatus.MISSED, DeliveryStatus.CANCELLED],
            newest_first=True,
            limit=limit,
            order_by="updated_at",
        )
        failures = reports.deliveries(
            session,
            statuses=[DeliveryStatus.FAILED],
            newest_first=True,
            limit=limit,
            order_by="updated_at",
        )
    planned_next = None
    if not upcoming:
        planned_next = Planner(store, ctx.config.reminders).next_reminder(now_utc())

    def row(d: Any) -> dict[str, Any]:
        return {
            "id": d.id,
            "calendar": d.calendar_slug,
            "uid": d.entry_uid,
            "channel": d.channel,
            "due_utc": iso_utc(d.due_at),
            "status": d.status,
            "attempts": d.attempts,
            "next_attempt_utc": iso_utc(d.next_attempt_at),
            "sent_utc": iso_utc(d.sent_at) if d.sent_at else None,
            "late": d.late,
            "claimed_by": d.claimed_by,
            "last_error": d.last_error,
        }

    by_status = {str(s): counts.get(s, 0) for s in DeliveryStatus}
    daemon: dict[str, Any] = {"database": "sqlite" if database else "other"}
    if database:
        daemon["running"] = pid is not None
        daemon["pid"] = pid
    data = {
        "daemon": daemon,
        "counts": by_status,
        "next": [row(d) for d in upcoming],
        "next_unplanned": (
            {
                "due_utc": iso_utc(planned_next.due_at),
                "uid": planned_next.entry_uid,
                "channel": planned_next.channel,
            }
            if planned_next
            else None
        ),
        "recent": [row(d) for d in recent],
        "failures": [row(d) for d in failures],
    }
    # Here, not at the top: the sources' HTTP client and ICS reader are for this command
    # alone, and `reminders` (a million entries: under a second) should not load them.
    from calendar_svc.cli.sources import source_line, source_rows

    followed = source_rows(ctx.config, store)
    data["sources"] = followed
    if as_json:
        echo_json(data)
        return
    if database:
        click.echo(f"Daemon: {'running, pid ' + str(pid) if pid else 'not running'} ({database})")
    else:
        click.echo("Daemon: shared database; see the claimed_by column for who sends what")
    click.echo("Deliveries: " + ", ".join(f"{v} {k}" for k, v in by_status.items()))
    click.echo("Next:")
    for d in upcoming:
        click.echo(
            f"  {iso_utc(d.next_attempt_at)}  {d.channel:<10} {d.entry_uid}"
            f"{'  (retry ' + str(d.attempts + 1) + ')' if d.attempts else ''}"
        )
    if not upcoming:
        if planned_next:
            click.echo(
                f"  nothing planned yet; the next reminder is due "
                f"{iso_utc(planned_next.due_at)} ({planned_next.entry_uid})"
            )
        else:
            click.echo("  nothing: no upcoming entry has reminders")
    click.echo("Recent:")
    for d in recent:
        when = d.sent_at or d.updated_at
        click.echo(
            f"  {iso_utc(when)}  {d.status:<9} {d.channel:<10} {d.entry_uid}"
            f"{'  late' if d.late else ''}"
        )
    if failures:
        click.echo("Failures:")
        for d in failures:
            click.echo(f"  {iso_utc(d.updated_at)}  {d.channel:<10} {d.entry_uid}: {d.last_error}")
    if followed:
        click.echo("Sources:")
        for source in followed:
            click.echo(f"  {source_line(source)}")


COMMANDS = [run, reminders, status]
