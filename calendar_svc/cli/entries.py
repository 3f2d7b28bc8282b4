"""Commands that read and edit itineraries: init, import, list, show, cancel, delete, calendars."""

from __future__ import annotations

from pathlib import Path

import click

from calendar_svc import validation
from calendar_svc.cli.context import CliContext, echo_json, pass_ctx
from calendar_svc.cli.options import filter_options
from calendar_svc.db import current_revision, head_revision, safe_url
from calendar_svc.errors import InputError
from calendar_svc.event_log import logging_bus
from calendar_svc.filters import EntryFilter, parse_filter
from calendar_svc.importer import ImportReport
from calendar_svc.models import Entry, EntryStatus
from calendar_svc.presenters import duration_text, entry_json, when_text
from calendar_svc.schedule_import import import_together
from calendar_svc.schedule_loader import is_ics
from calendar_svc.timezones import iso_utc


def build_filter(
    calendar: str | None,
    city: str | None,
    category: str | None,
    from_: str | None,
    to: str | None,
) -> EntryFilter:
    return parse_filter(
        calendar=calendar,
        city=city,
        category=category,
        from_=from_,
        to=to,
        names=("--from", "--to"),
    )


@click.command()
@pass_ctx
def init(ctx: CliContext) -> None:
    """Create the database, or bring its schema up to date (safe to run again).

    Every command also migrates on start; run this to do it explicitly, e.g.
    after an upgrade or before pointing several daemons at a new PostgreSQL.

    \b
    Examples:
      calendar-svc init
      calendar-svc --db postgresql+psycopg://cal@db.internal/calendar init
    """
    store = ctx.store  # migrates
    click.echo(
        f"database ready at schema {current_revision(store.engine)} (newest {head_revision()}): "
        f"{safe_url(ctx.config.database.url)}"
    )


@click.command("import")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--calendar",
    metavar="SLUG",
    help="Calendar the .ics FILES go into (created if new). Default: named after each file.",
)
@click.option(
    "--zone",
    metavar="ZONE",
    callback=lambda _c, _p, v: None if v is None else _zone_option(v),
    help=".ics only: the IANA zone of floating times when the file names none, and the zone "
    "UTC times are shown in (default: the calendar's).",
)
@click.option("--dry-run", is_flag=True, help="Show what would change; write nothing.")
@click.option(
    "--prune",
    is_flag=True,
    help="Delete entries of these calendars that the files no longer contain "
    "(only entries these files own).",
)
@click.option(
    "--adopt",
    is_flag=True,
    help="Take over entries with the same uid that another schedule file owns (never a source's).",
)
@pass_ctx
def import_(
    ctx: CliContext,
    files: tuple[Path, ...],
    calendar: str | None,
    zone: str | None,
    dry_run: bool,
    prune: bool,
    adopt: bool,
) -> None:
    """Load itinerary FILES (TOML, or iCalendar .ics) into the database.

    Entries are matched by (calendar slug, uid): new ones are created, changed
    ones updated (their SEQUENCE rises so subscribers see the edit), the rest
    left alone. All FILES are one transaction: one bad entry anywhere and
    nothing is written. An entry owned by another file or by a source is left
    alone, and listed as kept.

    An .ics file (an airline's booking, a calendar export) goes into --calendar
    SLUG: each VEVENT becomes an entry with its UID, times in the zones it
    names (Windows zone names and custom VTIMEZONEs included), its RRULE,
    RDATE, EXDATE and overrides, and its VALARMs as reminders. Floating times
    need X-WR-TIMEZONE in the file or --zone.

    \b
    Examples:
      calendar-svc import schedules/rubio-2025-09.toml
      calendar-svc import --dry-run --prune schedules/*.toml
      calendar-svc import booking.ics --calendar rubio-2025-09
      calendar-svc import outlook-export.ics --calendar team --zone Europe/Berlin --prune
    """
    unique = list(dict.fromkeys(path.resolve() for path in files))
    _ = ctx.config  # first: the config names the tz database the files are read with
    if (calendar or zone) and not any(is_ics(path) for path in unique):
        raise InputError("--calendar and --zone are for .ics files; a TOML file names its own")
    # All files in one transaction: one bad entry anywhere and nothing is written.
    report = import_together(
        ctx.store,
        unique,
        events=logging_bus(),
        dry_run=dry_run,
        prune=prune,
        adopt=adopt,
        calendar=calendar,
        zone=zone,
        own_domain=ctx.config.feed.domain,
        warn=lambda warning: click.echo(f"calendar-svc: warning: {warning}", err=True),
    )
    print_import_report(report, dry_run=dry_run)


def _zone_option(value: str) -> str:
    try:
        return validation.zone(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def print_import_report(report: ImportReport, *, dry_run: bool = False) -> None:
    verb = "would be " if dry_run else ""
    for cal in report.calendars:
        head = f"{cal.slug}:"
        if cal.calendar_created:
            head += f" calendar {verb}created;"
        totals = ", ".join(
            f"{len(getattr(cal, name))} {verb}{name}"
            for name in ("created", "updated", "unchanged", "pruned")
        )
        click.echo(f"{head} {totals}")
        for name, sign in (("created", "+"), ("updated", "~"), ("pruned", "-")):
            for uid in getattr(cal, name):
                click.echo(f"  {sign} {uid}")
        if cal.kept:
            click.echo(f"  {len(cal.kept)} kept: owned by another file or source")
            for uid, owner in cal.kept:
                click.echo(f"  = {uid} (owned by {owner})")
    if dry_run:
        click.echo("dry run: nothing was written")


@click.command("list")
@filter_options(calendar=True)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list instead of a table.")
@pass_ctx
def list_(
    ctx: CliContext,
    calendar: str | None,
    city: str | None,
    category: str | None,
    from_: str | None,
    to: str | None,
    as_json: bool,
) -> None:
    """List entries in their local times, with zone abbreviation and UTC offset.

    \b
    Examples:
      calendar-svc list
      calendar-svc list --city Quito
      calendar-svc list --from 2025-09-03 --to 2025-09-03 --json
    """
    ctx.warn_isolated()  # what a filter cannot be checked against is skipped, and named
    entries = ctx.store.entries(build_filter(calendar, city, category, from_, to), every=True)
    if as_json:
        echo_json([entry_json(e) for e in entries])
        return
    if not entries:
        click.echo("no entries match")
        return
    many = len({e.calendar.slug for e in entries}) > 1
    rows = [
        tuple(
            _one_line(cell)
            for cell in (
                when_text(e),
                duration_text(e),
                e.uid + (" [cancelled]" if e.cancelled else ""),
                e.title,
                e.city or e.location,
                e.calendar.slug if many else "",
            )
        )
        for e in entries
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    for row in rows:
        line = "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:3]))
        extra = f" — {row[4]}" if row[4] else ""
        cal = f"  ({row[5]})" if row[5] else ""
        click.echo(f"{line}  {row[3]}{extra}{cal}".rstrip())


def _one_line(text: str) -> str:
    """A table cell on one line, whatever newlines a title holds."""
    return " ".join(text.split()) if "\n" in text or "\r" in text else text


@click.command()
@click.argument("uid")
@click.option("--calendar", metavar="SLUG", help="Calendar of the entry, if the uid is in several.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_ctx
def show(ctx: CliContext, uid: str, calendar: str | None, as_json: bool) -> None:
    """Show one entry in full: local and UTC times, status, reminders, sequence.

    \b
    Examples:
      calendar-svc show sheinbaum-bilateral
      calendar-svc show noboa-meeting --json
    """
    entry = ctx.store.find_entry(uid, calendar)
    if as_json:
        echo_json(entry_json(entry))
        return
    echo_entry(entry)


def echo_entry(entry: Entry) -> None:
    """An entry in full, as ``show`` prints it (``add``, ``edit`` and ``move`` too)."""
    data = entry_json(entry)
    click.echo(f"{entry.title}")
    click.echo(f"  when:       {when_text(entry)}")
    click.echo(f"  utc:        {data['start_utc']} → {data['end_utc']}")
    for key in ("calendar", "uid", "status", "location", "city", "url", "rrule", "description"):
        if data[key]:
            click.echo(f"  {key + ':':<11} {data[key]}")
    if data["categories"]:
        click.echo(f"  categories: {', '.join(data['categories'])}")
    reminders = data["reminders"]
    click.echo(
        "  reminders:  "
        + ("calendar default" if reminders is None else ", ".join(reminders) or "none")
    )
    click.echo(f"  sequence:   {entry.sequence} (updated {iso_utc(entry.updated_at)})")


@click.command()
@click.argument("uid")
@click.option("--calendar", metavar="SLUG", help="Calendar of the entry, if the uid is in several.")
@pass_ctx
def cancel(ctx: CliContext, uid: str, calendar: str | None) -> None:
    """Mark an entry cancelled: it stays in feeds as STATUS:CANCELLED and its reminders stop.

    The cancel holds until the entry's schedule file itself changes that entry;
    to make it permanent, also set status = "cancelled" in the file.

    \b
    Example:
      calendar-svc cancel press-mexico-city
    """
    entry, changed = ctx.store.set_status(uid, EntryStatus.CANCELLED, calendar)
    if changed:
        click.echo(f"cancelled {entry.calendar.slug}/{uid} (sequence {entry.sequence})")
    else:
        click.echo(f"{entry.calendar.slug}/{uid} was already cancelled")


@click.command()
@click.argument("uid")
@click.option("--calendar", metavar="SLUG", help="Calendar of the entry, if the uid is in several.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@pass_ctx
def delete(ctx: CliContext, uid: str, calendar: str | None, yes: bool) -> None:
    """Delete an entry: it disappears from feeds and its reminders stop.

    Prefer `cancel` for a meeting that was called off: subscribers then see it
    struck through instead of silently gone. If the entry is still in a
    schedule file, the next import brings it back.

    \b
    Example:
      calendar-svc delete embassy-quito --yes
    """
    if not yes:
        shown = ctx.store.find_entry(uid, calendar)
        ctx.store.check_writable(shown)  # refuse before asking, not after
        click.confirm(f"delete {shown.calendar.slug}/{uid} ({shown.title})?", abort=True)
    entry = ctx.store.delete_entry(uid, calendar)
    click.echo(f"deleted {entry.calendar.slug}/{uid}")


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_ctx
def calendars(ctx: CliContext, as_json: bool) -> None:
    """List calendars with their entry counts and versions (tokens are not shown).

    \b
    Examples:
      calendar-svc calendars
      calendar-svc calendars --json
    """
    store = ctx.store
    stats = store.calendar_stats()
    rows = []
    for cal in store.calendars():
        s = stats.get(cal.slug, {})
        rows.append(
            {
                "slug": cal.slug,
                "name": cal.name,
                "timezone": cal.timezone,
                "entries": s.get("entries", 0),
                "first_start": iso_utc(s["first_start"]) if s.get("first_start") else None,
                "last_end": iso_utc(s["last_end"]) if s.get("last_end") else None,
                "version": cal.version,
                "reminders": cal.reminders,
                "updated": iso_utc(cal.updated_at),
            }
        )
    if as_json:
        echo_json(rows)
        return
    if not rows:
        click.echo("no calendars yet: calendar-svc import FILE.toml")
        return
    for row in rows:
        click.echo(
            f"{row['slug']}  {row['name']}  ({row['entries']} entries, {row['timezone']}, "
            f"version {row['version']})"
        )


COMMANDS = [init, import_, list_, show, cancel, delete, calendars]
