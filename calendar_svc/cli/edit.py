"""Commands that change one entry in place: add, edit, move.

Each builds the ``[[entries]]`` table a schedule file would hold (for ``edit``
and ``move``: the stored entry's, with the options applied) and passes it to
the schedule files' validator (``entry_edits``), so an entry is accepted or
refused as it would be in TOML or through the API, in the same words, with the
option at fault named. An entry that a schedule file or a source owns is
refused unless ``--detach`` takes it over (its imports then leave it alone).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypeVar

import click
from sqlalchemy import select

from calendar_svc import entry_edits as edits
from calendar_svc.cli.context import CliContext, echo_json, pass_ctx
from calendar_svc.cli.entries import echo_entry
from calendar_svc.durations import parse_duration
from calendar_svc.errors import InputError
from calendar_svc.models import Entry
from calendar_svc.presenters import entry_json
from calendar_svc.schedule_files import EntrySpec

F = TypeVar("F", bound=Callable[..., Any])
OWNER = "cli"  # the owner's name of entries added or detached here (kind "api")

# [[entries]] key -> the option that sets it, for error messages.
_OPTIONS = {
    "uid": "--uid",
    "title": "--title",
    "start": "--start",
    "timezone": "--zone",
    "fold": "--fold",
    "end": "--end",
    "end_timezone": "--end-zone",
    "duration": "--duration",
    "location": "--location",
    "city": "--city",
    "categories": "--category",
    "description": "--description",
    "url": "--url",
    "status": "--status",
    "reminders": "--reminder",
    "rrule": "--rrule",
}


def _fields(*, adding: bool) -> Callable[[F], F]:
    """The options that set an entry's fields (``add`` and ``edit`` share them)."""
    options = [
        click.option("--title", metavar="TEXT", required=adding, help="What it is."),
        click.option(
            "--start",
            metavar="TIME",
            required=adding,
            help='Wall time in --zone: "2025-09-03 16:00" (or 2025-09-03T16:00); a date '
            "(2025-09-04) makes an all-day entry.",
        ),
        click.option(
            "--zone",
            metavar="ZONE",
            help="IANA zone of --start (default: the calendar's). Quito is America/Guayaquil.",
        ),
        click.option(
            "--duration",
            metavar="DURATION",
            help="How long: PT1H, PT1H30M, P2D (all-day). Or give --end.",
        ),
        click.option(
            "--end",
            metavar="TIME",
            help="When it ends (wall time in --end-zone; for all-day, the last day).",
        ),
        click.option("--end-zone", metavar="ZONE", help="Zone of --end, if not --zone (a flight)."),
        click.option(
            "--fold",
            type=click.IntRange(0, 1),
            help="Only for a wall time a DST change skips or repeats: 0 = the offset before "
            "the change (the first of two), 1 = the offset after.",
        ),
        click.option("--location", metavar="TEXT", help="Where (free text)."),
        click.option("--city", metavar="NAME", help="City, for --city filters and feed URLs."),
        click.option(
            "--category",
            "categories",
            multiple=True,
            metavar="NAME",
            help="A category (repeat for several"
            + ("" if adding else "; replaces the entry's")
            + ").",
        ),
        click.option("--description", metavar="TEXT", help="Longer text."),
        click.option("--url", metavar="URL", help="A link (http or https)."),
        click.option(
            "--status",
            type=click.Choice(["confirmed", "tentative", "cancelled"]),
            help="Default: confirmed.",
        ),
        click.option(
            "--reminder",
            "reminders",
            multiple=True,
            metavar="DURATION",
            help="A reminder offset before the start, e.g. PT1H (repeat for several; "
            "PT0S = at the start). Default: the calendar's.",
        ),
        click.option("--rrule", metavar="RULE", help="RFC 5545 recurrence: FREQ=DAILY;COUNT=3."),
    ]

    def decorate(func: F) -> F:
        for option in reversed(options):
            func = option(func)
        return func

    return decorate


def _apply(raw: dict[str, Any], options: dict[str, Any]) -> None:
    """Set the given options' keys in ``raw`` (an ``[[entries]]`` table)."""
    plain = {
        "title": "title",
        "zone": "timezone",
        "end_zone": "end_timezone",
        "fold": "fold",
        "location": "location",
        "city": "city",
        "description": "description",
        "url": "url",
        "status": "status",
        "rrule": "rrule",
        "duration": "duration",
    }
    for option, key in plain.items():
        if options.get(option) is not None:
            raw[key] = options[option]
    for option in ("start", "end"):
        if options.get(option) is not None:
            raw[option] = edits.wall_value(options[option])
    if options.get("categories"):
        raw["categories"] = list(options["categories"])
    if options.get("reminders"):
        raw["reminders"] = list(options["reminders"])


def _validate(raw: dict[str, Any], zone: str, names: dict[str, str] | None = None) -> EntrySpec:
    """``raw`` through the validator; its refusal names the option at fault (``names``:
    the options of this command, where they are not ``add``'s)."""
    try:
        return edits.validate(raw, source="calendar-svc", default_zone=zone)
    except InputError as exc:
        field = exc.field or ""
        option = {**_OPTIONS, **(names or {})}.get(field, field)
        raise InputError(f"{option}: {exc.detail}" if option else exc.detail) from None


def _show(ctx: CliContext, slug: str, uid: str, as_json: bool, said: str) -> None:
    entry = ctx.store.find_entry(uid, slug)
    if as_json:
        echo_json(entry_json(entry))
        return
    click.echo(said)
    echo_entry(entry)


def _slugify(title: str) -> str:
    words = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")
    return words[:60].rstrip("-") or "entry"


@click.command()
@click.argument("slug")
@_fields(adding=True)
@click.option("--uid", metavar="UID", help="Its stable id (default: made from the title).")
@click.option("--json", "as_json", is_flag=True, help="Print the entry as JSON.")
@pass_ctx
def add(ctx: CliContext, /, slug: str, uid: str | None, as_json: bool, **options: Any) -> None:
    """Add an entry to calendar SLUG; subscribers see it on their next poll.

    The entry is checked exactly as a schedule file's [[entries]] table is
    (same rules, same words), and its reminders are planned by a running
    daemon within [reminders] poll_interval.

    \b
    Examples:
      calendar-svc add rubio-2025-09 --title "Press conference" \\
          --start "2025-09-03 16:00" --zone America/Mexico_City --duration PT1H \\
          --location "Palacio Nacional" --city "Mexico City" --category press
      calendar-svc add rubio-2025-09 --title "Day in Quito" --start 2025-09-04 \\
          --zone America/Guayaquil --city Quito
    """
    store = ctx.store
    raw: dict[str, Any] = {}
    _apply(raw, options)
    now = store.clock()
    with store.write(what="the change") as session:
        calendar = edits.lock_calendar(session, slug)
        if uid is None:
            base = _slugify(options["title"] or "")
            taken = set(session.scalars(_uids(calendar.id, base)))
            uid = base
            number = 2
            while uid in taken:
                uid, number = f"{base}-{number}", number + 1
        raw["uid"] = uid
        spec = _validate(raw, calendar.timezone)
        edits.create(session, calendar, spec, owner=OWNER, now=now)
    _show(ctx, slug, spec.uid, as_json, f"added {slug}/{spec.uid}")


def _uids(calendar_id: int, base: str) -> Any:
    return select(Entry.uid).where(Entry.calendar_id == calendar_id, Entry.uid.like(f"{base}%"))


def _change(
    ctx: CliContext,
    slug: str,
    uid: str,
    detach: bool,
    change: Callable[[Entry, dict[str, Any]], None],
    names: dict[str, str] | None = None,
) -> bool:
    """Apply ``change`` to the table of entry ``uid`` and write it; returns whether it
    changed anything a subscriber sees."""
    store = ctx.store
    now = store.clock()
    with store.write(what="the change") as session:
        calendar = edits.lock_calendar(session, slug)
        entry = edits.find(session, calendar, uid)
        took = edits.check_owner(entry, detach=detach, how="--detach")
        raw = edits.raw_of(entry)
        change(entry, raw)
        spec = _validate(raw, calendar.timezone, names)
        return edits.replace(session, entry, spec, owner=OWNER, detach=took, now=now)


_DETACH = click.option(
    "--detach",
    is_flag=True,
    help="Take the entry over from the schedule file or source that owns it; its imports then "
    "leave it alone (and list it as kept).",
)


@click.command()
@click.argument("slug")
@click.argument("uid")
@_fields(adding=False)
@_DETACH
@click.option(
    "--default-reminders", is_flag=True, help="Use the calendar's reminder offsets again."
)
@click.option("--json", "as_json", is_flag=True, help="Print the entry as JSON.")
@pass_ctx
def edit(
    ctx: CliContext,
    /,
    slug: str,
    uid: str,
    detach: bool,
    default_reminders: bool,
    as_json: bool,
    **options: Any,
) -> None:
    """Change fields of entry UID of calendar SLUG; its SEQUENCE rises so subscribers update.

    Only the options given change. A new --start without --end or --duration
    keeps the entry's length. An entry that a schedule file or a source owns is
    refused (change it there) unless --detach.

    \b
    Examples:
      calendar-svc edit rubio-2025-09 press-mexico-city --title "Joint press conference"
      calendar-svc edit rubio-2025-09 noboa-meeting --start "2025-09-04 11:00" --detach
      calendar-svc edit rubio-2025-09 flight-mex-uio --end "2025-09-03 19:10" \\
          --end-zone America/Guayaquil --detach
    """
    given = {k: v for k, v in options.items() if v not in (None, ())}
    if not given and not default_reminders and not detach:
        raise InputError("nothing to change: give at least one option (see --help)")

    def change(entry: Entry, raw: dict[str, Any]) -> None:
        if "start" in given and "end" not in given and "duration" not in given:
            edits.keep_length(entry, raw, edits.wall_value(given["start"]))
        if "duration" in given:
            raw.pop("end", None)
            raw.pop("end_fold", None)
        if "end" in given:
            raw.pop("end_fold", None)
        _apply(raw, given)
        if default_reminders:
            raw.pop("reminders", None)

    changed = _change(ctx, slug, uid, detach, change)
    _show(ctx, slug, uid, as_json, f"{'changed' if changed else 'unchanged'} {slug}/{uid}")


@click.command()
@click.argument("slug")
@click.argument("uid")
@click.option(
    "--by",
    metavar="DURATION",
    help="Move by this much (PT1H, P1D; -PT30M earlier), in the entry's wall time: P1D "
    "keeps the time of day across a DST change.",
)
@click.option(
    "--to",
    "to",
    metavar="TIME",
    help='New start: "2025-09-03 16:00", or "16:00" on the same day; a date for all-day.',
)
@_DETACH
@click.option("--json", "as_json", is_flag=True, help="Print the entry as JSON.")
@pass_ctx
def move(
    ctx: CliContext,
    slug: str,
    uid: str,
    by: str | None,
    to: str | None,
    detach: bool,
    as_json: bool,
) -> None:
    """Move entry UID of calendar SLUG, keeping its length; subscribers and reminders follow.

    Its SEQUENCE rises, the feed shows the new time on the next poll and a
    running daemon re-plans its reminders within [reminders] poll_interval. An
    entry that a schedule file or a source owns is refused (move it there)
    unless --detach takes it over.

    \b
    Examples:
      calendar-svc move rubio-2025-09 sheinbaum-bilateral --by PT1H --detach
      calendar-svc move rubio-2025-09 noboa-meeting --to "2025-09-04 12:00" --detach
      calendar-svc move rubio-2025-09 press-quito --to 17:30
      calendar-svc move rubio-2025-09 press-quito --by=-PT30M
      calendar-svc move rubio-2025-09 trip-overview --by P1D --detach
    """
    if (by is None) == (to is None):
        raise InputError("give --by DURATION or --to TIME (one of them)")

    def change(entry: Entry, raw: dict[str, Any]) -> None:
        if by is not None:
            text = by.strip()
            sign = -1 if text.startswith("-") else 1
            try:
                shift = sign * parse_duration(text.lstrip("+-"))
            except ValueError as exc:
                raise InputError(f"--by: {exc}") from None
            if entry.all_day:
                if shift % timedelta(days=1):
                    raise InputError("--by: an all-day entry moves by whole days (P1D, -P2D)")
                edits.keep_length(entry, raw, entry.start_day + shift)
            else:
                edits.keep_length(entry, raw, entry.start_local + shift)
            return
        assert to is not None
        if re.fullmatch(r"\d{1,2}:\d{2}", to.strip()):
            if entry.all_day:
                raise InputError("--to: an all-day entry moves to a date (2025-09-05)")
            hours, minutes = (int(part) for part in to.strip().split(":"))
            try:
                target: Any = entry.start_local.replace(hour=hours, minute=minutes, second=0)
            except ValueError as exc:
                raise InputError(f"--to: {exc}") from None
        else:
            target = edits.wall_value(to)
        edits.keep_length(entry, raw, target)

    names = {"start": "--by" if by is not None else "--to", "duration": "--by/--to"}
    changed = _change(ctx, slug, uid, detach, change, names)
    _show(ctx, slug, uid, as_json, f"{'moved' if changed else 'unchanged'} {slug}/{uid}")


COMMANDS = [add, edit, move]
