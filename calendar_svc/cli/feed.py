"""Feed commands: export, serve, feed-url, rotate-token."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from calendar_svc.cli.context import CliContext, pass_ctx
from calendar_svc.cli.options import filter_options
from calendar_svc.errors import InputError
from calendar_svc.feed.cache import render_feed
from calendar_svc.filters import EntryFilter, parse_filter
from calendar_svc.ics import FeedOptions
from calendar_svc.links import check_public_url, feed_urls, page_url
from calendar_svc.store import Store


def _filter(
    city: str | None, category: str | None, from_: str | None, to: str | None
) -> EntryFilter:
    return parse_filter(city=city, category=category, from_=from_, to=to, names=("--from", "--to"))


def _pick_calendar(store: Store, slug: str | None) -> str:
    """``slug``, or the only calendar there is; otherwise an error listing them."""
    if slug:
        return store.get_calendar(slug).slug
    slugs = [calendar.slug for calendar in store.calendars()]
    if len(slugs) == 1:
        return slugs[0]
    if not slugs:
        raise InputError("the database has no calendars yet (calendar-svc import FILE.toml)")
    raise InputError(f"several calendars ({', '.join(slugs)}): name one with --calendar SLUG")


@click.command()
@click.option(
    "--calendar", metavar="SLUG", help="Calendar to export (needed if there are several)."
)
@filter_options(calendar=False)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="FILE",
    help="Write to FILE instead of standard output.",
)
@pass_ctx
def export(
    ctx: CliContext,
    calendar: str | None,
    city: str | None,
    category: str | None,
    from_: str | None,
    to: str | None,
    output: Path | None,
) -> None:
    """Write a calendar as an .ics file: exactly the bytes its feed serves.

    The filters are the feed URL's (?city=, ?category=, ?from=, ?to=), so
    `export --city Quito` gives what `/feeds/<token>/<slug>.ics?city=Quito`
    serves, byte for byte.

    \b
    Examples:
      calendar-svc export > trip.ics
      calendar-svc export --calendar rubio-2025-09 -o trip.ics
      calendar-svc export --city Quito --from 2025-09-04 --to 2025-09-04
    """
    flt = _filter(city, category, from_, to)
    slug = _pick_calendar(ctx.store, calendar)
    ctx.warn_isolated()
    feed = render_feed(ctx.store, FeedOptions.from_config(ctx.config), slug, flt)
    if output is None:
        # Bytes as served (CRLF, UTF-8): no text-mode translation of the stream.
        stdout = sys.stdout.buffer
        stdout.write(feed.body)
        stdout.flush()
        return
    output.write_bytes(feed.body)
    click.echo(f"wrote {output} ({feed.entries} entries, {len(feed.body)} bytes)", err=True)


@click.command()
@click.option("--host", metavar="HOST", help="Address to listen on (overrides [feed] host).")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    metavar="PORT",
    help="Port to listen on, 0 for any free one (overrides [feed] port).",
)
@pass_ctx
def serve(ctx: CliContext, host: str | None, port: int | None) -> None:
    """Serve the ICS feeds over HTTP, alone (no reminders), until SIGINT or SIGTERM.

    `calendar-svc run` serves the same feeds inside the daemon; use `serve`
    for a feed-only host (several can share one PostgreSQL database). Routes:
    /feeds/<token>/<slug>.ics, the subscribers' page /c/<token>/<slug> (unless
    [feed] page = false), /healthz, /metrics, and the HTTP API under /api/v1
    when [api] enabled = true. Logs go to stderr; feed tokens and API keys
    never appear in them.

    \b
    Examples:
      calendar-svc serve
      calendar-svc serve --host 0.0.0.0 --port 8080
      calendar-svc feed-url        # the URL to give subscribers
    """
    import logging

    from calendar_svc import resources
    from calendar_svc.feed.server import FeedServer
    from calendar_svc.logs import setup_logging
    from calendar_svc.observers import Observers

    config = ctx.config
    setup_logging(config.logging.level, config.logging.format)
    # As the daemon does: descriptors up to the hard limit before the feed sizes its limit.
    resources.secure(logging.getLogger("calendar_svc.daemon"))
    # No scheduler loop runs here: /healthz checks the database alone (and lists the
    # entries the store's screen leaves out, told on its bus).
    observers = Observers.build(events=ctx.store.events)
    FeedServer(ctx.store, config, host=host, port=port, observers=observers).serve_forever()


@click.command("feed-url")
@click.argument("slug", required=False)
@filter_options(calendar=False)
@pass_ctx
def feed_url(
    ctx: CliContext,
    slug: str | None,
    city: str | None,
    category: str | None,
    from_: str | None,
    to: str | None,
) -> None:
    """Print the URL to subscribe to a calendar, its webcal:// form and its page.

    The URLs are built from [feed] public_url; they hold the calendar's secret
    token, so share them only with subscribers (`rotate-token` replaces it; for
    a link per subscriber that can be revoked alone, see `share`). The page
    (/c/<token>/<slug>, unless [feed] page = false) shows the itinerary with
    subscribe buttons for each calendar app. SLUG may be left out when there
    is only one calendar. Filters become the URLs' query.

    \b
    Examples:
      calendar-svc feed-url rubio-2025-09
      calendar-svc feed-url rubio-2025-09 --city Quito
      calendar-svc share rubio-2025-09 --name "Press office"   # a link of its own
    """
    flt = _filter(city, category, from_, to)
    calendar = ctx.store.get_calendar(_pick_calendar(ctx.store, slug))
    http, webcal = feed_urls(ctx.config.feed.public_url, calendar.feed_token, calendar.slug, flt)
    click.echo(http)
    click.echo(webcal)
    if ctx.config.feed.page:
        click.echo(page_url(ctx.config.feed.public_url, calendar.feed_token, calendar.slug, flt))


@click.command("rotate-token")
@click.argument("slug")
@pass_ctx
def rotate_token(ctx: CliContext, slug: str) -> None:
    """Give a calendar a new feed token: the old URL stops working at once.

    Use it when the calendar's own URL leaked. Every subscriber of that URL must
    then subscribe again with the new one, which this prints (http(s), webcal://
    and the page). Share links (`share`) keep working; revoke one alone with
    `unshare`.

    \b
    Example:
      calendar-svc rotate-token rubio-2025-09
    """
    check_public_url(ctx.config.feed.public_url)  # before the old URL stops working
    token = ctx.store.rotate_token(slug)
    http, webcal = feed_urls(ctx.config.feed.public_url, token, slug)
    click.echo(f"new feed token for {slug}; the old URL no longer works. Subscribe with:")
    click.echo(http)
    click.echo(webcal)
    if ctx.config.feed.page:
        click.echo(page_url(ctx.config.feed.public_url, token, slug))


COMMANDS = [export, serve, feed_url, rotate_token]
