"""``calendar-svc notify-test CHANNEL``: send one sample reminder through one channel."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import click

from calendar_svc.cli.context import CliContext
from calendar_svc.clock import now_utc
from calendar_svc.config import Config
from calendar_svc.errors import ConfigError, NotifierError, RetryableNotifierError
from calendar_svc.links import reminder_feed_url
from calendar_svc.messages import MessageEntry, build_reminder
from calendar_svc.notifiers import Reminder, build_notifier
from calendar_svc.timezones import to_utc


@dataclass
class SampleEntry:
    """The first entry of the September 2025 trip, for when the store has none to show."""

    uid: str = "sample-sheinbaum-bilateral@calendar-svc"
    title: str = "Bilateral meeting with President Claudia Sheinbaum"
    location: str = "Palacio Nacional"
    city: str = "Mexico City"
    url: str = ""
    start_tz: str = "America/Mexico_City"
    all_day: bool = False
    start_local: datetime = datetime(2025, 9, 2, 10, 0)  # noqa: DTZ001 - wall time
    description: str = "Sample reminder sent by calendar-svc notify-test."
    categories: list[str] = field(default_factory=lambda: ["meeting"])

    @property
    def start_utc(self) -> datetime:
        return to_utc(self.start_local, self.start_tz)


def _store_entry(ctx: CliContext, now: datetime) -> Any | None:
    """The next (else the first) live entry, if a database already exists; never creates one."""
    from calendar_svc.db import is_sqlite, sqlite_file
    from calendar_svc.filters import EntryFilter

    url = ctx.config.database.url
    if is_sqlite(url) and ((database := sqlite_file(url)) is None or not database.is_file()):
        return None  # opening it would create an empty database
    try:
        entries = ctx.store.entries(EntryFilter(include_cancelled=False))
    except Exception:  # a sample is only a nicety: any store trouble falls back to ours
        return None
    # A timed entry reads like a real reminder ("In 1 hour: ..."); prefer the next one.
    timed = [entry for entry in entries if not entry.all_day]
    upcoming = [entry for entry in timed if entry.start_utc >= now]
    chosen = upcoming or timed
    return chosen[0] if chosen else None


def sample_reminder(config: Config, entry: MessageEntry | None, now: datetime) -> Reminder:
    chosen: Any = entry if entry is not None else SampleEntry()
    offset = config.reminders.offsets[0] if config.reminders.offsets else timedelta(hours=1)
    calendar = getattr(chosen, "calendar", None)
    return build_reminder(
        # Unique per run: a test must not be dropped as a duplicate of the previous test.
        idempotency_key=f"notify-test-{uuid.uuid4().hex}",
        calendar_slug=calendar.slug if calendar is not None else "sample",
        entry=chosen,
        start_utc=chosen.start_utc,
        offset=offset,
        due_at=now,
        late=False,
        display=config.display,
        # What the daemon would send: the entry's calendar's feed; the sample has none.
        feed_url=(
            reminder_feed_url(config.feed.public_url, calendar) if calendar is not None else None
        ),
    )


@click.command("notify-test")
@click.argument("channel")
@click.option("--sample", is_flag=True, help="Use the built-in sample entry, not the store's.")
@click.pass_obj
def notify_test(ctx: CliContext, channel: str, sample: bool) -> None:
    """Send a sample reminder through CHANNEL (a [notifiers.CHANNEL] table).

    Uses the next entry in the database when there is one, else a built-in
    sample. Exit status 0 when the channel accepted it, 1 when sending failed,
    2 when the config is wrong.
    """
    config = ctx.config
    table = config.notifiers.get(channel)
    if table is None:
        raise ConfigError(
            f"no channel {channel!r} (configured: {', '.join(sorted(config.notifiers)) or 'none'})",
            file=str(config.path) if config.path else None,
            key=f"notifiers.{channel}",
        )
    now = now_utc()
    entry = None if sample else _store_entry(ctx, now)
    reminder = sample_reminder(config, entry, now)
    notifier = build_notifier(channel, table, config_path=config.path)
    kind = table.get("type")
    try:
        notifier.send(reminder)
    except Exception as exc:
        if isinstance(exc, NotifierError):
            nature = "retryable" if isinstance(exc, RetryableNotifierError) else "permanent"
        else:  # a bug in the notifier; still one line, and scrubbed like its own errors
            nature = f"unexpected {type(exc).__name__}"
        message = " ".join(notifier.redact(str(exc)).split())
        click.echo(f"calendar-svc: {channel} ({kind}): failed ({nature}): {message}", err=True)
        raise click.exceptions.Exit(1) from None
    finally:
        notifier.close()
    click.echo(f"sent a test reminder through {channel} ({kind}): {reminder.title}")


COMMANDS = [notify_test]
