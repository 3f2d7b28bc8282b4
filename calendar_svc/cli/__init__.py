"""The ``calendar-svc`` command line (click). One module per group of commands."""

from __future__ import annotations

import importlib
import sys
from typing import Any

import click
from sqlalchemy.exc import SQLAlchemyError

from calendar_svc import __version__, tzsource
from calendar_svc.cli.context import CliContext
from calendar_svc.db import first_line
from calendar_svc.errors import CalendarSvcError, TzDatabaseError


class _Group(click.Group):
    """Turns our own errors into one line on stderr and an exit code, never a traceback;
    loads a command's module only when the command is asked for (``MODULES``)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*MODULES, *self.commands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in MODULES:
            module = importlib.import_module(f"calendar_svc.cli.{MODULES[cmd_name]}")
            for command in module.COMMANDS:
                self.add_command(command)
        return self.commands.get(cmd_name)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except CalendarSvcError as exc:
            click.echo(f"calendar-svc: error: {exc}", err=True)
            ctx.exit(exc.exit_code)
        except SQLAlchemyError as exc:
            # A database that went away mid-command: say so in one line, not a traceback.
            click.echo(f"calendar-svc: error: database error: {first_line(exc)}", err=True)
            ctx.exit(1)


def _print_version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    """``calendar-svc, version 0.1.0`` and the tz database its times come from.

    It runs before the config is read, so it names the database ``$CALENDAR_SVC_TZDIR``
    gives (or pytz's own) and says so; ``doctor`` shows the one a config names.
    """
    if not value or ctx.resilient_parsing:
        return
    click.echo(f"calendar-svc, version {__version__}")
    source = tzsource.from_environment()
    try:
        database = source.open()
    except TzDatabaseError as exc:
        click.echo(f"calendar-svc: error: {exc.detail} (from ${tzsource.ENV_TZDIR})", err=True)
        ctx.exit(exc.exit_code)
    if source.folder is None:
        click.echo(f"tz database {database.version} ({database.label}, pytz's own folder)")
        click.echo(
            f"  ${tzsource.ENV_TZDIR} is not set and --version does not read the config: "
            "`calendar-svc doctor` shows the tz database a config names"
        )
    else:
        click.echo(f"tz database {database.version} ({source.folder}, from {source.origin})")
    ctx.exit()


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config_path",
    metavar="FILE",
    help="Config file. Default: $CALENDAR_SVC_CONFIG, else ./config.toml, "
    "else /etc/calendar-svc/config.toml.",
)
@click.option(
    "--db",
    "database_url",
    metavar="URL",
    help="Database URL, overriding [database] url (also $CALENDAR_SVC_DATABASE_URL). "
    "E.g. sqlite:///var/cal.sqlite3 or postgresql+psycopg://user@host/db.",
)
@click.option(
    "--version",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=_print_version,
    help="Show the version and the tz database ($CALENDAR_SVC_TZDIR, else pytz's), and exit.",
)
@click.pass_context
def cli(ctx: click.Context, config_path: str | None, database_url: str | None) -> None:
    """Itinerary calendars: subscribable ICS feeds and timezone-correct reminders.

    \b
    Typical use:
      calendar-svc import schedules/rubio-2025-09.toml   load an itinerary
      calendar-svc list                                  see it in local times
      calendar-svc feed-url rubio-2025-09                URL to subscribe to, its page
      calendar-svc share rubio-2025-09 --name "Press"    a link for one subscriber
      calendar-svc move rubio-2025-09 UID --by PT1H      a meeting slips an hour
      calendar-svc run                                   daemon: reminders + feed
    """
    state = CliContext(config_path=config_path, database_url=database_url)
    ctx.obj = state
    ctx.call_on_close(state.close)


#: The module (``calendar_svc.cli.<module>``, its ``COMMANDS``) of each command. A
#: command's module is imported when the command runs (or for ``--help``), not every
#: module for every command: ``calendar-svc reminders`` does not load the feed server,
#: icalendar and the HTTP clients, a third of the import time of the whole CLI.
MODULES: dict[str, str] = {
    **dict.fromkeys(["init", "import", "list", "show", "cancel", "delete"], "entries"),
    "calendars": "entries",
    **dict.fromkeys(["add", "edit", "move"], "edit"),
    **dict.fromkeys(["export", "serve", "feed-url", "rotate-token"], "feed"),
    **dict.fromkeys(["share", "shares", "unshare"], "shares"),
    "api-key": "api_keys",
    **dict.fromkeys(["run", "reminders", "status"], "reminders"),
    "notify-test": "notify",
    **dict.fromkeys(["sources", "fetch"], "sources"),
    "doctor": "doctor",
}


def main() -> None:
    cli.main(prog_name="calendar-svc")


if __name__ == "__main__":  # pragma: no cover
    main()
    sys.exit(0)
