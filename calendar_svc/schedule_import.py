"""Schedule files into the store, told as events: what ``calendar-svc import`` and the daemon share.

Two ways to import, one per caller:

* ``import_together`` (``calendar-svc import``): every file in ONE transaction;
  a bad file or a database that refuses the transaction raises, and nothing is
  written. With ``dry_run`` the transaction is rolled back and the report says
  what would have changed.
* ``import_each`` (the daemon, when a watched file changed): each file in its
  own transaction; a file that fails is told as ``ScheduleImportFailed`` and
  the others go on.

Either way each file imported is told as ``ScheduleImported`` once its
transaction committed (a dry run tells nothing): the log lines listen there.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from calendar_svc.errors import CalendarSvcError, InputError
from calendar_svc.events import EventBus, ScheduleImported, ScheduleImportFailed
from calendar_svc.importer import CalendarReport, ImportReport, import_specs
from calendar_svc.schedule_files import CalendarSpec, load_file
from calendar_svc.store import Store


def import_together(
    store: Store,
    paths: Sequence[Path],
    *,
    events: EventBus,
    dry_run: bool = False,
    prune: bool = False,
) -> ImportReport:
    """Import ``paths`` in one transaction; raises InputError / StoreError, writing nothing."""
    specs = [load_file(path) for path in paths]
    with store.write(dry_run=dry_run, what="the import") as session:
        report = import_specs(session, specs, now=store.clock(), prune=prune)
    if not dry_run:
        _tell(events, specs, report)
    return report


def import_each(store: Store, paths: Sequence[Path], *, events: EventBus) -> bool:
    """Import each of ``paths`` in a transaction of its own; False when the database
    refused one (the file is fine: import it again later)."""
    all_written = True
    for path in paths:
        try:
            spec = load_file(path)
            with store.write(what="the import") as session:
                report = import_specs(session, [spec], now=store.clock())
        except CalendarSvcError as exc:
            bad_file = isinstance(exc, InputError)
            events.emit(ScheduleImportFailed(file=str(path), error=str(exc), bad_file=bad_file))
            all_written = all_written and bad_file
            continue
        _tell(events, [spec], report)
    return all_written


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
    )
