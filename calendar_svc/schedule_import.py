"""Schedule files into the store, told as events: what ``calendar-svc import`` and the daemon share.

Two ways to import, one per caller:

Either way a transaction that lost a race on a unique index (several daemons or
imports bringing in the same new calendar at once, on PostgreSQL) is run again
quietly (``Store.write_retrying``): the next attempt sees the other's rows.

* ``import_together`` (``calendar-svc import``): every file in ONE transaction;
  a bad file or a database that refuses the transaction raises, and nothing is
  written. With ``dry_run`` the transaction is rolled back and the report says
  what would have changed.
* ``import_each`` (the daemon, when a watched file changed): each file in its
  own transaction; a file that fails is told as ``ScheduleImportFailed`` and
  the others go on (also when reading it failed in a way no validator foresaw:
  a bad file never stops the daemon).

Files are read by ``schedule_loader.load_schedule`` (TOML as written, ``.ics``
into a calendar). Either way each file imported is told as ``ScheduleImported``
once its transaction committed (a dry run tells nothing): the log lines listen
there. What reading a file left out or changed (an .ics file's custom zone, say)
goes to ``warn``: the CLI prints it, the daemon logs ``schedules.warning``.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path

from sqlalchemy.orm import Session

from calendar_svc.config import Config
from calendar_svc.errors import CalendarSvcError, InputError
from calendar_svc.events import EventBus, ScheduleImported, ScheduleImportFailed
from calendar_svc.importer import CalendarReport, ImportReport, import_specs
from calendar_svc.logs import log_event
from calendar_svc.schedule_files import CalendarSpec
from calendar_svc.schedule_loader import load_schedule
from calendar_svc.store import Store

log = logging.getLogger("calendar_svc.daemon")

Warn = Callable[[str], None]


def import_together(
    store: Store,
    paths: Sequence[Path],
    *,
    events: EventBus,
    warn: Warn,
    dry_run: bool = False,
    prune: bool = False,
    adopt: bool = False,
    calendar: str | None = None,
    zone: str | None = None,
    own_domain: str | None = None,
) -> ImportReport:
    """Import ``paths`` in one transaction; raises InputError / StoreError, writing nothing.

    ``calendar`` and ``zone`` apply to .ics files (a TOML file names its own calendar).
    """
    specs = []
    for path in paths:
        loaded = load_schedule(
            path, store=store, calendar=calendar, zone=zone, own_domain=own_domain
        )
        for warning in loaded.warnings:
            warn(warning)
        specs.append(loaded.spec)
    report = store.write_retrying(
        lambda session: import_specs(session, specs, now=store.clock(), prune=prune, adopt=adopt),
        what="the import",
        dry_run=dry_run,
    )
    if not dry_run:
        _tell(events, specs, report)
    return report


def import_each(store: Store, paths: Sequence[Path], *, events: EventBus, config: Config) -> bool:
    """Import each of ``paths`` in a transaction of its own; False when the database
    refused one (the file is fine: import it again later).

    A ``schedules`` table of the config may name the calendar and zone of an .ics file.
    """
    all_written = True
    for path in paths:
        glob = config.schedule_glob(path)
        try:
            loaded = load_schedule(
                path,
                store=store,
                calendar=glob.calendar if glob else None,
                zone=glob.zone if glob else None,
                own_domain=config.feed.domain,
            )
            for warning in loaded.warnings:
                log_event(
                    log, "schedules.warning", logging.WARNING, file=str(path), warning=warning
                )
            report = store.write_retrying(
                functools.partial(_import_one, spec=loaded.spec, now=store.clock()),
                what="the import",
            )
        except CalendarSvcError as exc:
            bad_file = isinstance(exc, InputError)
            events.emit(ScheduleImportFailed(file=str(path), error=str(exc), bad_file=bad_file))
            all_written = all_written and bad_file
            continue
        except (ValueError, TypeError, ArithmeticError, RecursionError) as exc:
            # Whatever a file does to a reader that missed it, the other files still
            # import and the daemon runs: the file is named, and read again when it changes.
            error = f"{path}: cannot be read: {type(exc).__name__}: {exc}"
            events.emit(ScheduleImportFailed(file=str(path), error=error, bad_file=True))
            continue
        _tell(events, [loaded.spec], report)
    return all_written


def _import_one(session: Session, *, spec: CalendarSpec, now: datetime) -> ImportReport:
    return import_specs(session, [spec], now=now)


def _tell(events: EventBus, specs: Sequence[CalendarSpec], report: ImportReport) -> None:
    # import_specs reports one calendar per spec, in the specs' order.
    for spec, calendar in zip(specs, report.calendars, strict=True):
        events.emit(_imported(spec.source, calendar))


def _imported(file: str, calendar: CalendarReport) -> ScheduleImported:
    return ScheduleImported(
        file=file,
        created=len(calendar.created),
        updated=len(calendar.updated),
        unchanged=len(calendar.unchanged),
        kept=len(calendar.kept),
    )
