"""Share-link commands: share, shares, unshare."""

from __future__ import annotations

import shlex
from datetime import datetime, timedelta
from typing import Any

import click

from calendar_svc.cli.context import CliContext, echo_json, pass_ctx
from calendar_svc.links import check_public_url, feed_urls, page_url
from calendar_svc.shares import ShareInfo, ShareLinks, parse_expiry
from calendar_svc.timezones import abbreviation, iso_utc, time_text, to_local

_AGENT_WIDTH = 48  # of a User-Agent in the table; --json has all of it


@click.command()
@click.argument("slug")
@click.option(
    "--name",
    required=True,
    metavar="NAME",
    help="Who the link is for (unique among the calendar's live links).",
)
@click.option(
    "--expires",
    metavar="WHEN",
    help="When the link stops working: a day (2025-09-30: through that day, in the "
    "calendar's zone), a date-time (2025-09-30T18:00, in the calendar's zone unless it "
    "has an offset) or a duration from now (P30D). Default: never.",
)
@click.option(
    "--city",
    "cities",
    multiple=True,
    metavar="NAME",
    help="Only entries in this city (repeat for several). Default: every entry.",
)
@click.option(
    "--category",
    "categories",
    multiple=True,
    metavar="NAME",
    help="Only entries with this category (repeat for several).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the link as JSON.")
@pass_ctx
def share(
    ctx: CliContext,
    slug: str,
    name: str,
    expires: str | None,
    cities: tuple[str, ...],
    categories: tuple[str, ...],
    as_json: bool,
) -> None:
    """Create a share link: a token of its own for one subscriber, revocable alone.

    Prints the link's page, feed and webcal:// URLs once: only a SHA-256 digest
    of its token is stored, so they cannot be shown again (make a new link if
    they are lost). The link opens the same page and feed as the calendar's own
    URL (`feed-url`), narrowed to --city / --category when given, until
    --expires or `unshare`. `shares` lists the links and who keeps fetching.

    \b
    Examples:
      calendar-svc share rubio-2025-09 --name "Press office"
      calendar-svc share rubio-2025-09 --name "Embassy Quito" --city Quito --expires 2025-09-30
      calendar-svc share rubio-2025-09 --name "Security detail" --expires P14D --json
    """
    public_url = ctx.config.feed.public_url
    check_public_url(public_url)  # before a link is made that nobody could reach
    store = ctx.store
    calendar = store.get_calendar(slug)
    expires_at = parse_expiry(expires, calendar.timezone, store.clock()) if expires else None
    info, token = ShareLinks(store).create(
        slug, name, expires_at=expires_at, cities=cities, categories=categories
    )
    feed, webcal = feed_urls(public_url, token, slug)
    page = page_url(public_url, token, slug) if ctx.config.feed.page else None
    if as_json:
        echo_json({**_json(info), "page_url": page, "feed_url": feed, "webcal": webcal})
        return
    scope = _scope(info)
    until = f"until {_when(info.expires_at, calendar.timezone)}" if info.expires_at else "no expiry"
    click.echo(f"Share link {info.name!r} for {slug} ({scope}; {until}).")
    click.echo("Give these URLs to its subscriber now: only a digest of the token is kept.")
    if page:
        click.echo(f"page:   {page}")
    click.echo(f"feed:   {feed}")
    click.echo(f"webcal: {webcal}")
    click.echo(f"Revoke it with: calendar-svc unshare {slug} {shlex.quote(info.name)}")


@click.command()
@click.argument("slug")
@click.option("--json", "as_json", is_flag=True, help="Print the links as JSON.")
@pass_ctx
def shares(ctx: CliContext, slug: str, as_json: bool) -> None:
    """List a calendar's share links and whether their subscribers keep fetching.

    For each link: its name, state (active, expired or revoked), when it was
    created and expires, what it is narrowed to, how many times its feed was
    fetched, the last fetch and the app that made it (User-Agent: Google's
    importer, iOS, Outlook, …), and whether that app is current: it fetched
    within twice [feed] refresh_interval. Feed servers write fetch counts every
    [feed] stats_interval, so the latest fetches may show a little later.
    Times are in the calendar's zone (--json: UTC).

    \b
    Examples:
      calendar-svc shares rubio-2025-09
      calendar-svc shares rubio-2025-09 --json
    """
    store = ctx.store
    calendar = store.get_calendar(slug)
    links = ShareLinks(store).list(slug)
    now = store.clock()
    refresh = ctx.config.feed.refresh_interval
    zone = calendar.timezone
    if as_json:
        echo_json([_json(info, now=now, refresh=refresh) for info in links])
        return
    if not links:
        click.echo(f"{slug} has no share links (calendar-svc share {slug} --name NAME).")
        return
    header = ("NAME", "STATE", "CREATED", "EXPIRES", "ONLY", "FETCHES", "LAST FETCH", "CURRENT")
    rows = [
        (
            info.name,
            info.state(now),
            _short(info.created_at, zone),
            _short(info.expires_at, zone) if info.expires_at else "never",
            _scope(info, short=True),
            str(info.fetches),
            _short(info.last_fetch_at, zone) if info.last_fetch_at else "never",
            "yes" if info.current(now, refresh) else "no",
        )
        for info in links
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    click.echo(f"Share links of {slug} (times in {zone}):")
    for row, info in zip([header, *rows], [None, *links], strict=True):
        line = "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        agent = "CLIENT" if info is None else _agent(info.last_user_agent)
        click.echo(f"{line}  {agent}".rstrip())


@click.command()
@click.argument("slug")
@click.argument("name")
@pass_ctx
def unshare(ctx: CliContext, slug: str, name: str) -> None:
    """Revoke one share link: its page and feed answer 404 from the next request on.

    The calendar's other links and its own URL keep working (use `rotate-token`
    to replace the calendar's own token). Running feed servers, in any process,
    see the revocation at their next request. The link stays in `shares`, marked
    revoked.

    \b
    Example:
      calendar-svc unshare rubio-2025-09 "Press office"
    """
    info = ShareLinks(ctx.store).revoke(slug, name)
    click.echo(
        f"Revoked {info.name!r} of {slug}: its URLs answer 404 from now on; "
        "the other links keep working."
    )


def _scope(info: ShareInfo, *, short: bool = False) -> str:
    """What a link shows: "only entries in Quito, with category meeting" ("Quito; meeting")."""
    if short:
        return (
            "; ".join(", ".join(names) for names in (info.cities, info.categories) if names) or "-"
        )
    parts = []
    if info.cities:
        parts.append("in " + " or ".join(info.cities))
    if info.categories:
        parts.append("with category " + " or ".join(info.categories))
    return "only entries " + ", ".join(parts) if parts else "every entry"


def _when(instant: datetime, zone: str) -> str:
    local = to_local(instant, zone)
    return f"{local:%a %Y-%m-%d} {time_text(local)}"


def _short(instant: datetime | None, zone: str) -> str:
    if instant is None:
        return ""
    local = to_local(instant, zone)
    return f"{local:%Y-%m-%d %H:%M} {abbreviation(local)}"


def _agent(user_agent: str | None) -> str:
    if not user_agent:
        return "-"
    return user_agent if len(user_agent) <= _AGENT_WIDTH else user_agent[: _AGENT_WIDTH - 1] + "…"


def _json(
    info: ShareInfo, *, now: datetime | None = None, refresh: timedelta | None = None
) -> dict[str, Any]:
    """A link as JSON (UTC times); with ``now``, its state and fetch statistics too."""
    data: dict[str, Any] = {
        "name": info.name,
        "calendar": info.calendar,
        "created": iso_utc(info.created_at),
        "expires": iso_utc(info.expires_at) if info.expires_at else None,
        "revoked": iso_utc(info.revoked_at) if info.revoked_at else None,
        "cities": list(info.cities),
        "categories": list(info.categories),
    }
    if now is not None and refresh is not None:
        data.update(
            {
                "state": info.state(now),
                "fetches": info.fetches,
                "last_fetch": iso_utc(info.last_fetch_at) if info.last_fetch_at else None,
                "last_user_agent": info.last_user_agent,
                "current": info.current(now, refresh),
            }
        )
    return data


COMMANDS = [share, shares, unshare]
