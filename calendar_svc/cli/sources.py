"""``sources`` (what each followed feed is doing) and ``fetch`` (sync one now)."""

from __future__ import annotations

from typing import Any

import click

from calendar_svc.cli.context import CliContext, echo_json, pass_ctx
from calendar_svc.config import Config
from calendar_svc.errors import SourceError
from calendar_svc.event_log import logging_bus
from calendar_svc.models import SourceState
from calendar_svc.sources.fetch import safe_url
from calendar_svc.sources.sync import states, sync
from calendar_svc.store import Store
from calendar_svc.timezones import iso_utc


def source_rows(config: Config, store: Store) -> list[dict[str, Any]]:
    """One row per ``[[sources]]`` table, with what its state row says (None: never fetched)."""
    known = states(store)
    rows = []
    for source in config.sources:
        state: SourceState | None = known.get(source.name)
        rows.append(
            {
                "name": source.name,
                "url": safe_url(source.url),
                "calendar": source.calendar,
                "interval": int(source.interval.total_seconds()),
                "entries": state.entries if state else 0,
                "last_attempt": _iso(state.last_attempt_at if state else None),
                "last_success": _iso(state.last_success_at if state else None),
                "last_change": _iso(state.last_change_at if state else None),
                "failures": state.failures if state else 0,
                "last_error": state.last_error if state else None,
                "etag": state.etag if state else None,
            }
        )
    return rows


def _iso(value: Any) -> str | None:
    return iso_utc(value) if value is not None else None


def source_line(row: dict[str, Any]) -> str:
    if row["last_attempt"] is None:
        state = "never fetched"
    elif row["failures"]:
        since = row["last_success"] or "never"
        state = f"FAILING ({row['failures']} in a row, last success {since}): {row['last_error']}"
    else:
        state = f"ok, last success {row['last_success']}"
    return f"{row['name']}  -> {row['calendar']}  {row['entries']} entries  {state}  ({row['url']})"


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_ctx
def sources(ctx: CliContext, as_json: bool) -> None:
    """Show each followed ICS feed ([[sources]]): its calendar, entries, last success, errors.

    A source whose fetch fails keeps its entries as last fetched; the failure,
    how many in a row and the last success are shown here, in `status`, in
    /healthz and in /metrics.

    \b
    Examples:
      calendar-svc sources
      calendar-svc sources --json
    """
    rows = source_rows(ctx.config, ctx.store)
    if as_json:
        echo_json(rows)
        return
    if not rows:
        click.echo("no sources: add [[sources]] tables to the config (url, calendar)")
        return
    for row in rows:
        click.echo(source_line(row))


@click.command()
@click.argument("source")
@pass_ctx
def fetch(ctx: CliContext, source: str) -> None:
    """Fetch one source now and import what changed (as the daemon does every interval).

    Exit 0 when the feed was fetched (changed or not), 1 when it failed; its
    entries then stay as last fetched.

    \b
    Example:
      calendar-svc fetch conference
    """
    config = ctx.config
    found = config.source(source)
    result = sync(ctx.store, found, config, logging_bus())
    if result.error is not None:
        raise SourceError(f"source {found.name!r}: {result.error} (its entries are kept)")
    for warning in result.warnings:
        click.echo(f"calendar-svc: warning: {warning}", err=True)
    if result.changed:
        click.echo(
            f"{found.name} -> {found.calendar}: {result.created} created, {result.updated} "
            f"updated, {result.pruned} pruned, {result.kept} kept (owned by others)"
        )
    else:
        click.echo(f"{found.name} -> {found.calendar}: unchanged")


COMMANDS = [sources, fetch]
