"""What every CLI command shares: the config and the store, loaded on first use.

Loading the config also makes its tz database the one in use (``[time] tzdir``
or ``$CALENDAR_SVC_TZDIR``), before anything reads a zone name: a command that
reads schedule files loads the config first.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import click

from calendar_svc import timezones
from calendar_svc.config import Config, load_config
from calendar_svc.store import Store


@dataclass
class CliContext:
    config_path: str | None = None
    database_url: str | None = None
    _config: Config | None = field(default=None, repr=False)
    _store: Store | None = field(default=None, repr=False)

    @property
    def config(self) -> Config:
        if self._config is None:
            config = load_config(self.config_path, database_url=self.database_url)
            timezones.use(config.tz_database)
            self._config = config
        return self._config

    @property
    def store(self) -> Store:
        """The store, migrated to the newest schema (migrations run on every start)."""
        if self._store is None:
            store = Store(self.config.database.url)
            store.migrate()
            self._store = store
        return self._store

    def warn_isolated(self) -> None:
        """Print each entry the store leaves out (``isolation``) as one warning line on
        stderr: ``reminders``, ``export`` and a filtered ``list`` name what they skip."""
        from calendar_svc.events import EntryIsolated, Event

        def warn(event: Event) -> None:
            assert isinstance(event, EntryIsolated)
            click.echo(
                f"calendar-svc: warning: skipped entry {event.uid} of calendar "
                f"{event.calendar}: {event.reason}",
                err=True,
            )

        self.store.events.add_listener(warn, [EntryIsolated])

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None


pass_ctx = click.make_pass_decorator(CliContext)


def echo_json(data: Any) -> None:
    import json

    click.echo(json.dumps(data, indent=2, ensure_ascii=False))
