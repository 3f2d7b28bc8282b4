"""``calendar-svc doctor``: everything an operator wants checked, at once."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import click

from calendar_svc import timezones
from calendar_svc.cli import checks
from calendar_svc.cli.checks import Finding
from calendar_svc.cli.context import CliContext, echo_json, pass_ctx
from calendar_svc.errors import CalendarSvcError, TzDatabaseError
from calendar_svc.tzsource import TzSource

# Exit codes (README, CLI reference).
ALL_WELL = 0
NEEDS_ACTION = 1
NO_CONFIG = 2


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the findings as one JSON object.")
@click.option(
    "--fix",
    is_flag=True,
    help="Also do what needs no decision: migrate the schema, and derive every entry's "
    "instants again with the tz database in use (those that move get a new SEQUENCE), as "
    "calendar-svc run does when it starts.",
)
@click.option(
    "--tzdir",
    type=click.Path(file_okay=False, path_type=Path),
    metavar="DIR",
    help="Check against the tz database in DIR instead of the configured one: what would "
    "move if you switched to it (with --fix: refused).",
)
@pass_ctx
def doctor(ctx: CliContext, as_json: bool, fix: bool, tzdir: Path | None) -> None:
    """Check the installation and say what needs doing, one line per finding.

    \b
    Checks: the config; the tz database (folder, version, zones); the database
    (reachable, schema migrated); every entry against the tz database (instants
    that would move after a tz database update, wall times that became a DST gap
    or fold, zones that no longer exist); the schedule files; every notifier
    (built, secrets found); [feed] public_url; each calendar's feed token;
    overdue reminders and the last planner pass.

    \b
    Each line: LEVEL CHECK WHAT [-> WHAT TO DO]. Levels: ok, note, fixed (by
    --fix), warning and error (these two need a person).
    Exit code: 0 all well, 1 something needs action, 2 the config cannot be read.
    Nothing is written without --fix.

    \b
    Examples:
      calendar-svc doctor
      calendar-svc doctor --json | jq '.findings[] | select(.level != "ok")'
      calendar-svc doctor --tzdir /srv/tzdata-2027a   # before switching to it
      calendar-svc doctor --fix
    """
    if tzdir is not None and fix:
        raise click.UsageError(
            "--fix stores instants derived with the tz database in use; --tzdir only "
            "previews another one (switch to it in [time] tzdir, then run --fix or restart)"
        )
    findings: list[Finding] = []
    try:
        config = ctx.config
        if tzdir is not None:
            source = TzSource(tzdir.absolute(), "--tzdir")
            try:
                config = dataclasses.replace(config, tz=source, tz_database=source.open())
            except TzDatabaseError as exc:
                raise click.BadParameter(exc.detail, param_hint="--tzdir") from None
            timezones.use(config.tz_database)
    except CalendarSvcError as exc:
        findings.append(Finding("config", "error", str(exc), fix="correct the file and key named"))
        _finish(findings, as_json, NO_CONFIG)
        return
    findings.append(Finding("config", "ok", f"{config.path or 'defaults'}: valid"))
    findings += checks.tz_database(config)
    found, store = checks.database(config, fix=fix)
    findings += found
    if store is not None:
        try:
            now = store.clock()
            findings += checks.instants(store, now, fix=fix)
            findings += checks.tokens(store)
            findings += checks.reminders(config, store, now)
        finally:
            store.close()
    findings += checks.schedules(config)
    findings += checks.notifiers(config)
    findings += checks.feed(config)
    _finish(findings, as_json, NEEDS_ACTION if any(f.needs_action for f in findings) else 0)


def _finish(findings: list[Finding], as_json: bool, code: int) -> None:
    needing = [f for f in findings if f.needs_action]
    if as_json:
        tz = next((f.data for f in findings if f.check == "tz" and "version" in f.data), None)
        echo_json(
            {
                "status": "ok" if code == ALL_WELL else "action_needed",
                "exit_code": code,
                "needs_action": len(needing),
                "tz_database": tz,
                "findings": [f.as_json() for f in findings],
            }
        )
    else:
        for finding in findings:
            click.echo(finding.line())
        if code == ALL_WELL:
            click.echo("doctor: all well")
        else:
            click.echo(f"doctor: {len(needing)} finding(s) need action (exit {code})")
    click.get_current_context().exit(code)


COMMANDS = [doctor]
