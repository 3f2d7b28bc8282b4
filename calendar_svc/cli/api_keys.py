"""API key commands: ``api-key create``, ``api-key list``, ``api-key revoke``."""

from __future__ import annotations

import shlex
from typing import Any

import click

from calendar_svc.api_keys import ApiKeys, KeyInfo
from calendar_svc.cli.context import CliContext, echo_json, pass_ctx
from calendar_svc.shares import parse_expiry
from calendar_svc.timezones import iso_utc


def _json(info: KeyInfo, now: Any) -> dict[str, Any]:
    return {
        "name": info.name,
        "state": info.state(now),
        "calendars": list(info.calendars) if info.calendars is not None else None,
        "read_only": info.read_only,
        "created": iso_utc(info.created_at),
        "expires": iso_utc(info.expires_at) if info.expires_at else None,
        "revoked": iso_utc(info.revoked_at) if info.revoked_at else None,
    }


def _scope(info: KeyInfo) -> str:
    where = "every calendar" if info.calendars is None else ", ".join(info.calendars)
    return f"{where}, {'read-only' if info.read_only else 'read and write'}"


@click.group("api-key")
def api_key() -> None:
    """Keys of the HTTP API (/api/v1; on when [api] enabled = true).

    A key is a bearer token (Authorization: Bearer <token>) with a name, a
    scope (some calendars, or all), read-only or not, and an optional expiry.
    Only a SHA-256 digest of its token is stored: `create` prints it once.

    \b
    Examples:
      calendar-svc api-key create --name booking --calendar rubio-2025-09
      calendar-svc api-key create --name dashboard --read-only --expires P90D
      calendar-svc api-key list
      calendar-svc api-key revoke booking
    """


@api_key.command("create")
@click.option(
    "--name",
    required=True,
    metavar="NAME",
    help="Who or what the key is for (unique among live keys).",
)
@click.option(
    "--calendar",
    "calendars",
    multiple=True,
    metavar="SLUG",
    help="A calendar the key may see and change (repeat for several). Default: every calendar; "
    "a scoped key gets 404 for any other.",
)
@click.option("--read-only", is_flag=True, help="The key may read, never write (403).")
@click.option(
    "--expires",
    metavar="WHEN",
    help="When the key stops working: a day (2026-12-31: through that day, UTC), a date-time "
    "(UTC unless it has an offset) or a duration from now (P90D). Default: never.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the key (and its token) as JSON.")
@pass_ctx
def create(
    ctx: CliContext,
    name: str,
    calendars: tuple[str, ...],
    read_only: bool,
    expires: str | None,
    as_json: bool,
) -> None:
    """Create an API key and print its token, once.

    \b
    Examples:
      calendar-svc api-key create --name booking --calendar rubio-2025-09
      calendar-svc api-key create --name newsroom --read-only --expires 2026-12-31
    """
    store = ctx.store
    now = store.clock()
    expires_at = parse_expiry(expires, "UTC", now) if expires else None
    info, token = ApiKeys(store).create(
        name, calendars=list(calendars) or None, read_only=read_only, expires_at=expires_at
    )
    if as_json:
        echo_json({**_json(info, now), "token": token})
        return
    until = f"until {iso_utc(info.expires_at)}" if info.expires_at else "no expiry"
    click.echo(f"API key {info.name!r} ({_scope(info)}; {until}).")
    click.echo("Its token, shown this once (only a digest is kept):")
    click.echo(token)
    click.echo(f"Use it as: Authorization: Bearer {token[:8]}…")
    click.echo(f"Revoke it with: calendar-svc api-key revoke {shlex.quote(info.name)}")


@api_key.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the keys as JSON.")
@pass_ctx
def list_(ctx: CliContext, as_json: bool) -> None:
    """List the API keys: name, state, scope, created, expires (never a token).

    \b
    Examples:
      calendar-svc api-key list
      calendar-svc api-key list --json
    """
    store = ctx.store
    now = store.clock()
    keys = ApiKeys(store).list()
    if as_json:
        echo_json([_json(info, now) for info in keys])
        return
    if not keys:
        click.echo("no API keys yet: calendar-svc api-key create --name NAME")
        return
    rows = [
        (
            info.name,
            info.state(now),
            _scope(info),
            iso_utc(info.created_at),
            iso_utc(info.expires_at) if info.expires_at else "never",
        )
        for info in keys
    ]
    header = ("NAME", "STATE", "SCOPE", "CREATED", "EXPIRES")
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        click.echo("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip())


@api_key.command("revoke")
@click.argument("name")
@pass_ctx
def revoke(ctx: CliContext, name: str) -> None:
    """Revoke an API key: refused (401) from the next request on, in every server.

    \b
    Example:
      calendar-svc api-key revoke booking
    """
    info = ApiKeys(ctx.store).revoke(name)
    click.echo(f"revoked API key {info.name!r}")


COMMANDS = [api_key]
