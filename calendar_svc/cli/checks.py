"""What ``calendar-svc doctor`` checks: each check is a function giving findings.

A finding is one line for a person: its level, the check, what was found and,
when something needs doing, what to do. Levels:

* ``ok``: checked, and fine;
* ``note``: worth knowing, nothing to do;
* ``warning``: works, but needs a person (an entry whose instants would move,
  a wall time now in a DST gap, a schedule file with a mistake);
* ``error``: broken (the database unreachable, a notifier that cannot be built,
  an entry whose zone is gone).

Checks read and never write, except the ones given ``fix``: the schema
migrated and the instants derived again (what ``calendar-svc run`` does on
start), reported as ``fixed``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import ipaddress
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import func, select

from calendar_svc import timezones
from calendar_svc.config import Config
from calendar_svc.db import current_revision, head_revision, safe_url, sqlite_file
from calendar_svc.errors import CalendarSvcError
from calendar_svc.models import Calendar, Delivery, DeliveryStatus
from calendar_svc.notifiers import build_notifier
from calendar_svc.rederive import Moved, ProblemKind, Report, TimeProblem, rederive, stale_count
from calendar_svc.reminders import passes
from calendar_svc.reminders.lock import holder_pid
from calendar_svc.schedule_files import load_file
from calendar_svc.store import Store
from calendar_svc.timezones import iso_utc
from calendar_svc.tzsource import FROM_CONFIG

LEVELS = ("ok", "note", "fixed", "warning", "error")
# Levels that need a person: doctor exits 1 when any finding has one.
NEEDS_ACTION = ("warning", "error")
# Feed tokens are secrets.token_urlsafe(32): 43 characters. Shorter ones were not made here.
MIN_TOKEN_LENGTH = 32
REDERIVE_FIX = "calendar-svc doctor --fix (or restart calendar-svc run, which does the same)"


@dataclass(frozen=True)
class Finding:
    """One thing ``doctor`` found; ``data`` holds its details for ``--json``."""

    check: str
    level: str
    message: str
    fix: str = ""
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def needs_action(self) -> bool:
        return self.level in NEEDS_ACTION

    def line(self) -> str:
        text = f"{self.level:<8}{self.check:<11}{self.message}"
        return f"{text} -> {self.fix}" if self.fix else text

    def as_json(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "level": self.level,
            "message": self.message,
            "fix": self.fix or None,
            **self.data,
        }


Findings = list[Finding]


# --- the tz database ----------------------------------------------------------------------


def tz_database(config: Config) -> Findings:
    database, source = config.tz_database, config.tz
    where = source.describe() if source.folder is not None else f"{database.label}'s own folder"
    found = [
        Finding(
            "tz",
            "ok",
            f"tz database {database.version}: {where}, {len(database.names())} zones",
            data={
                "version": database.version,
                "folder": str(database.folder),
                "origin": source.origin,
                "zones": len(database.names()),
            },
        )
    ]
    if source.origin != FROM_CONFIG and config.time.tzdir is not None:
        found.append(
            Finding(
                "tz",
                "note",
                f"[time] tzdir = {config.time.tzdir} is not used: {source.origin} wins over it",
            )
        )
    return found


# --- the database -------------------------------------------------------------------------


def database(config: Config, *, fix: bool) -> tuple[Findings, Store | None]:
    """Reachable and migrated: the findings, and the store when its schema is the newest
    (the other checks of the store need it; the caller closes it)."""
    url = safe_url(config.database.url)
    database_file = sqlite_file(config.database.url)
    if database_file is not None and not database_file.exists() and not fix:
        return [
            Finding(
                "database",
                "warning",
                f"{url}: the SQLite file does not exist yet",
                fix="calendar-svc init (or doctor --fix, or any command) creates it",
            )
        ], None
    try:
        store = Store(config.database.url)
    except CalendarSvcError as exc:
        return [Finding("database", "error", str(exc), fix="check [database] url")], None
    try:
        found = _schema(store, url, fix=fix)
    except BaseException:
        store.close()
        raise
    if found.level in ("ok", "fixed"):
        return [found], store
    store.close()
    return [found], None


def _schema(store: Store, url: str, *, fix: bool) -> Finding:
    try:
        revision = current_revision(store.engine)
    except Exception as exc:  # any driver's error: the point is to say it
        message = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        return Finding(
            "database",
            "error",
            f"{url} is unreachable: {message}",
            fix="check [database] url (or --db / $CALENDAR_SVC_DATABASE_URL) and that the "
            "server runs and lets this user in",
        )
    newest = head_revision()
    if revision == newest:
        return Finding("database", "ok", f"{url}: reachable, schema {revision} (the newest)")
    if fix:
        store.migrate()
        return Finding(
            "database", "fixed", f"{url}: schema migrated from {revision or 'none'} to {newest}"
        )
    return Finding(
        "database",
        "warning",
        f"{url}: schema {revision or 'none'}, the newest is {newest}; entries, tokens and "
        "reminders are checked once it is migrated",
        fix="calendar-svc doctor --fix, or calendar-svc init",
    )


# --- entries and the tz database ------------------------------------------------------------


def instants(store: Store, now: datetime, *, fix: bool) -> Findings:
    """Entries whose instants would move under the tz database in use, and wall times it
    cannot place (gap, fold, zone gone). With ``fix``: every entry derived again and the
    moves stored, as ``calendar-svc run`` does on start."""
    version = timezones.version()
    behind = stale_count(store, version)
    found: Findings = []
    if fix:
        applied = rederive(store, now=now, everything=True)
        found += [_moved(moved, applied, fixed=True) for moved in applied.moved]
    # Every entry, whatever version it recorded: a folder may change its data and not
    # its version.
    seen = rederive(store, now=now, everything=True, dry_run=True)
    found += [_moved(moved, seen, fixed=False) for moved in seen.moved]
    found += [_problem(problem) for problem in seen.problems]
    if not seen.moved and not seen.problems:
        found.insert(
            0,
            Finding(
                "time",
                "ok",
                f"{_count(seen.checked, 'entry', 'entries')}: their instants are those tz "
                f"database {version} gives",
            ),
        )
    # Entries of a zone that is gone keep their old version: said above already.
    gone = {(p.calendar, p.uid) for p in seen.problems if p.kind is ProblemKind.UNKNOWN_ZONE}
    unrecorded = behind - len(gone)
    if unrecorded > 0 and not fix and not seen.moved:
        found.append(
            Finding(
                "time",
                "note",
                f"{_count(unrecorded, 'entry', 'entries')} recorded another tz database "
                f"version; their instants do not move, and calendar-svc run records {version} "
                "when it next starts",
            )
        )
    return found


def _count(number: int, one: str, many: str) -> str:
    return f"{number} {one if number == 1 else many}"


def _moved(moved: Moved, report: Report, *, fixed: bool) -> Finding:
    start = f"{iso_utc(moved.old_start)} -> {iso_utc(moved.new_start)}"
    if moved.new_end - moved.new_start != moved.old_end - moved.old_start:
        start += f" (end {iso_utc(moved.old_end)} -> {iso_utc(moved.new_end)})"
    was = moved.old_version or "an unrecorded version"
    data = {
        "calendar": moved.calendar,
        "uid": moved.uid,
        "zone": moved.zone,
        "old": iso_utc(moved.old_start),
        "new": iso_utc(moved.new_start),
        "old_end": iso_utc(moved.old_end),
        "new_end": iso_utc(moved.new_end),
        "from_tz": moved.old_version,
        "tz": report.version,
    }
    where = f"{moved.calendar}/{moved.uid} ({moved.zone})"
    if fixed:
        return Finding(
            "time",
            "fixed",
            f"{where}: moved {start}: tz database {report.version}, derived with {was} "
            "(SEQUENCE raised; a running daemon re-plans its reminders)",
            data=data,
        )
    return Finding(
        "time",
        "warning",
        f"{where}: start would move {start} under tz database {report.version} "
        f"(derived with {was}); its reminders and feed still say the old instant",
        fix=REDERIVE_FIX,
        data=data,
    )


def _problem(problem: TimeProblem) -> Finding:
    level = "error" if problem.kind is ProblemKind.UNKNOWN_ZONE else "warning"
    return Finding(
        "time",
        level,
        f"{problem.calendar}/{problem.uid}: {problem.text()}",
        fix=problem.hint,
        data={
            "calendar": problem.calendar,
            "uid": problem.uid,
            "kind": str(problem.kind),
            "field": problem.field,
            "zone": problem.zone,
            "wall": f"{problem.wall:%Y-%m-%dT%H:%M:%S}",
        },
    )


# --- config: schedule files, notifiers, the feed ---------------------------------------------


def schedules(config: Config) -> Findings:
    found: Findings = []
    if not config.schedules:
        found.append(
            Finding("schedules", "note", "no schedules globs: nothing is imported on start")
        )
    for pattern in config.schedules:
        if not dataclasses.replace(config, schedules=(pattern,)).schedule_files():
            found.append(
                Finding(
                    "schedules", "note", f"{pattern!r} matches no file (from {config.base_dir})"
                )
            )
    for path in config.schedule_files():
        try:
            spec = load_file(path)
        except CalendarSvcError as exc:
            found.append(
                Finding(
                    "schedules",
                    "warning",
                    str(exc),
                    fix="correct the file; until then the daemon keeps what it imported "
                    "last and logs schedules.import_failed",
                )
            )
            continue
        found.append(
            Finding("schedules", "ok", f"{path}: calendar {spec.slug}, {len(spec.entries)} entries")
        )
    return found


def notifiers(config: Config) -> Findings:
    found: Findings = []
    for name, table in config.notifiers.items():
        try:
            notifier = build_notifier(name, table, config_path=config.path)
        except CalendarSvcError as exc:
            found.append(
                Finding(
                    "notifiers",
                    "error",
                    str(exc),
                    fix="correct the [notifiers] table or provide its secret; "
                    "calendar-svc run refuses to start until then",
                )
            )
            continue
        with contextlib.suppress(Exception):  # built only to check it: nothing to report
            notifier.close()
        found.append(
            Finding(
                "notifiers", "ok", f"{name} ({table.get('type')}): built", data={"channel": name}
            )
        )
    return found


def feed(config: Config) -> Findings:
    url = config.feed.public_url
    parts = urlsplit(url)
    host = parts.hostname or ""
    found: Findings = []
    loopback = _is_loopback(host)
    listens_everywhere = not _is_loopback(config.feed.host)
    if parts.port == 0:
        found.append(
            Finding(
                "feed",
                "warning",
                f"public_url {url} has port 0 ([feed] port = 0 and no public_url): "
                "no subscriber can use it",
                fix="set [feed] public_url to the address subscribers reach",
            )
        )
    elif loopback and listens_everywhere:
        found.append(
            Finding(
                "feed",
                "warning",
                f"the feed listens on {config.feed.host} but public_url {url} is a loopback "
                "address: feed-url prints URLs only this machine can use",
                fix="set [feed] public_url to the address subscribers reach",
            )
        )
    elif loopback:
        port = parts.port or (443 if parts.scheme == "https" else 80)
        if config.feed.port not in (0, port):
            found.append(
                Finding(
                    "feed",
                    "warning",
                    f"public_url {url} names port {port}, but the feed listens on "
                    f"{config.feed.port}",
                    fix="make [feed] public_url and [feed] port agree",
                )
            )
        else:
            found.append(
                Finding(
                    "feed",
                    "note",
                    f"public_url {url} is a loopback address: only this machine can subscribe",
                )
            )
    else:
        found.append(Finding("feed", "ok", f"public_url {url}"))
        if parts.scheme == "http" and not _is_private(host):
            found.append(
                Finding(
                    "feed",
                    "note",
                    f"public_url {url} is plain http: feed URLs (with their tokens) travel "
                    "unencrypted; https behind a reverse proxy keeps them private",
                )
            )
    if not config.feed.enabled:
        found.append(
            Finding("feed", "note", "[feed] enabled = false: calendar-svc run serves no feed")
        )
    return found


def _is_loopback(host: str) -> bool:
    if host in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _is_private(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_private
    except ValueError:
        return host.endswith((".local", ".internal", ".lan", ".home.arpa"))


# --- the store: tokens and reminders ----------------------------------------------------------


def tokens(store: Store) -> Findings:
    with store.read() as session:
        rows = session.execute(select(Calendar.slug, Calendar.feed_token).order_by(Calendar.slug))
        calendars = [(str(slug), str(token or "")) for slug, token in rows]
    if not calendars:
        return [Finding("tokens", "note", "no calendars yet (calendar-svc import FILE.toml)")]
    found: Findings = []
    for slug, token in calendars:
        if len(token) < MIN_TOKEN_LENGTH:
            what = "no feed token" if not token else f"a feed token of {len(token)} characters"
            found.append(
                Finding(
                    "tokens",
                    "error",
                    f"{slug}: {what}, which anyone could guess",
                    fix=f"calendar-svc rotate-token {slug}",
                    data={"calendar": slug},
                )
            )
        else:
            found.append(
                Finding("tokens", "ok", f"{slug}: feed token present", data={"calendar": slug})
            )
    return found


def reminders(config: Config, store: Store, now: datetime) -> Findings:
    grace = config.reminders.grace
    with store.read() as session:
        overdue = session.scalar(
            select(func.count(Delivery.id)).where(
                Delivery.status == DeliveryStatus.PENDING,
                Delivery.next_attempt_at < now - grace,
            )
        )
        last, by = passes.last_pass(session)
    database_file = sqlite_file(config.database.url)
    pid = holder_pid(database_file) if database_file is not None else None
    found: Findings = []
    if pid is not None:
        found.append(Finding("reminders", "ok", f"calendar-svc run is running (pid {pid})"))
    if overdue:
        found.append(
            Finding(
                "reminders",
                "warning",
                f"{_count(overdue, 'pending reminder is', 'pending reminders are')} more "
                f"than {_duration(grace)} overdue",
                fix="start calendar-svc run (systemctl start calendar-svc), or see "
                "calendar-svc status",
            )
        )
    if last is None:
        found.append(Finding("reminders", "note", "no daemon has planned reminders yet"))
    else:
        age = now - last
        quiet = max(grace, 2 * config.reminders.rescan_interval)
        level = "note" if age > quiet else "ok"
        found.append(
            Finding(
                "reminders",
                level,
                f"last planner pass {iso_utc(last)} by {by} ({_duration(age)} ago)",
            )
        )
    return found


def _duration(value: timedelta) -> str:
    seconds = int(abs(value.total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit}"
    return f"{seconds} s"
