"""Loading and validating config.toml.

Where the file comes from, first match wins: ``--config FILE``,
``$CALENDAR_SVC_CONFIG``, ``./config.toml``, ``/etc/calendar-svc/config.toml``.
The database URL can be overridden by ``--db URL`` or
``$CALENDAR_SVC_DATABASE_URL``. Relative paths (schedule globs, a relative
SQLite file) resolve against the folder of the config file.

Every problem is one ``ConfigError`` naming the file and the dotted key.
Notifier tables are checked for ``type`` here and for their own keys by the
notifier class (``notifiers.base``), so a plugin owns its keys.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import time, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from calendar_svc.durations import parse_duration
from calendar_svc.errors import ConfigError
from calendar_svc.timezones import is_zone

ENV_CONFIG = "CALENDAR_SVC_CONFIG"
ENV_DATABASE_URL = "CALENDAR_SVC_DATABASE_URL"
DEFAULT_LOCATIONS = (Path("config.toml"), Path("/etc/calendar-svc/config.toml"))


@dataclass(frozen=True)
class DatabaseConfig:
    url: str


@dataclass(frozen=True)
class FeedConfig:
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = 8080
    public_url: str = "http://127.0.0.1:8080"
    domain: str = "calendar-svc.local"
    refresh_interval: timedelta = timedelta(hours=1)
    include_alarms: bool = True


@dataclass(frozen=True)
class Route:
    """Reminders of ``calendar`` (``*`` = any), optionally only of ``category``, go to
    ``channels``."""

    calendar: str
    category: str | None
    channels: tuple[str, ...]


@dataclass(frozen=True)
class RemindersConfig:
    enabled: bool = True
    offsets: tuple[timedelta, ...] = (timedelta(hours=1), timedelta(minutes=15))
    channels: tuple[str, ...] = ("console",)
    routes: tuple[Route, ...] = ()
    horizon: timedelta = timedelta(hours=6)
    grace: timedelta = timedelta(minutes=10)
    all_day_time: time = time(9, 0)
    max_attempts: int = 8
    retry_base: timedelta = timedelta(seconds=30)
    retry_max: timedelta = timedelta(hours=1)
    lease: timedelta = timedelta(minutes=5)
    poll_interval: timedelta = timedelta(seconds=2)
    rescan_interval: timedelta = timedelta(seconds=30)
    stop_timeout: timedelta = timedelta(seconds=20)


@dataclass(frozen=True)
class DisplayConfig:
    timezone: str | None = None
    label: str | None = None


@dataclass(frozen=True)
class LoggingConfig:
    level: str = "info"
    format: str = "text"


@dataclass(frozen=True)
class Config:
    path: Path | None
    schedules: tuple[str, ...]
    database: DatabaseConfig
    feed: FeedConfig = field(default_factory=FeedConfig)
    reminders: RemindersConfig = field(default_factory=RemindersConfig)
    display: DisplayConfig = field(default_factory=DisplayConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    # [notifiers.NAME] tables as written (minus nothing); validated by the notifier class.
    notifiers: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    @property
    def base_dir(self) -> Path:
        return self.path.parent if self.path else Path.cwd()

    def schedule_files(self) -> list[Path]:
        """The files the ``schedules`` globs match now, sorted, without duplicates."""
        found: dict[Path, None] = {}
        for pattern in self.schedules:
            base = Path(pattern)
            if base.is_absolute():
                matches = sorted(Path(base.anchor).glob(str(base.relative_to(base.anchor))))
            else:
                matches = sorted(self.base_dir.glob(pattern))
            for match in matches:
                if match.is_file():
                    found[match.resolve()] = None
        return list(found)


# --- validation helpers -----------------------------------------------------------------


class _Reader:
    """Walks one TOML table, converting values and naming the dotted key on error."""

    def __init__(self, file: str, table: Mapping[str, Any], prefix: str):
        self.file = file
        self.table = dict(table)
        self.prefix = prefix
        self.seen: set[str] = set()

    def key(self, name: str) -> str:
        return f"{self.prefix}{name}"

    def fail(self, name: str, message: str) -> ConfigError:
        return ConfigError(message, file=self.file, key=self.key(name))

    def get(self, name: str, kind: type | tuple[type, ...], default: Any) -> Any:
        self.seen.add(name)
        if name not in self.table:
            return default
        value = self.table[name]
        if kind is int and isinstance(value, bool):
            raise self.fail(name, f"expected an integer, got {value!r}")
        if not isinstance(value, kind):
            raise self.fail(name, f"expected {_kind_name(kind)}, got {_type_name(value)} {value!r}")
        return value

    def convert(self, name: str, default: Any, func: Callable[[Any], Any]) -> Any:
        self.seen.add(name)
        if name not in self.table:
            return default
        try:
            return func(self.table[name])
        except (ValueError, TypeError) as exc:
            raise self.fail(name, str(exc)) from None

    def duration(self, name: str, default: timedelta, *, positive: bool = True) -> timedelta:
        value: timedelta = self.convert(name, default, parse_duration)
        if positive and value <= timedelta(0):
            raise self.fail(name, "must be longer than zero")
        return value

    def strings(self, name: str, default: tuple[str, ...]) -> tuple[str, ...]:
        value = self.get(name, list, None)
        if value is None:
            return default
        for item in value:
            if not isinstance(item, str):
                raise self.fail(name, f"expected a list of strings, found {item!r}")
        return tuple(value)

    def done(self) -> None:
        unknown = sorted(set(self.table) - self.seen)
        if unknown:
            raise self.fail(
                unknown[0],
                f"unknown key (known keys here: {', '.join(sorted(self.seen))})",
            )


def _kind_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    names = {
        str: "a string",
        int: "an integer",
        bool: "true or false",
        list: "a list",
        dict: "a table",
        float: "a number",
    }
    return " or ".join(names.get(k, k.__name__) for k in kinds)


def _type_name(value: Any) -> str:
    return {
        str: "string",
        int: "integer",
        bool: "boolean",
        list: "list",
        dict: "table",
        float: "number",
    }.get(type(value), type(value).__name__)


def _zone(value: Any) -> str:
    if not isinstance(value, str) or not is_zone(value):
        from calendar_svc.timezones import get_zone

        get_zone(str(value))  # raises with a suggestion
    return str(value)


def _clock_time(value: Any) -> time:
    if isinstance(value, time):
        return value
    if isinstance(value, str) and re.fullmatch(r"\d{1,2}:\d{2}", value):
        hours, minutes = (int(part) for part in value.split(":"))
        return time(hours, minutes)
    raise ValueError(f'expected a local time such as "09:00", got {value!r}')


def _check_public_url(reader: _Reader, url: str) -> None:
    """``[feed] public_url``: an http(s) base URL that subscribers can reach."""
    if not re.match(r"^https?://", url):
        raise reader.fail("public_url", f"must start with http:// or https://, got {url!r}")
    try:
        parts = urlsplit(url)
    except ValueError as exc:  # e.g. an unbalanced or non-IPv6 [bracketed] host
        raise reader.fail("public_url", f"is not a valid URL ({exc}): {url!r}") from None
    try:
        port = parts.port
    except ValueError:
        raise reader.fail("public_url", f"has an invalid port: {url!r}") from None
    if not parts.hostname:
        raise reader.fail("public_url", f"has no host name: {url!r}")
    if port == 0:
        raise reader.fail(
            "public_url", f"port 0 cannot be subscribed to, got {url!r}; give the port "
            "subscribers reach (or none for 80/443)"
        )
    if parts.query or parts.fragment:
        raise reader.fail(
            "public_url", f"must be a base URL without ?query or #fragment, got {url!r}"
        )


def _sqlite_url(url: str, base: Path) -> str:
    """Resolve a relative SQLite file against ``base``; other URLs pass through."""
    match = re.match(r"^(sqlite(?:\+\w+)?):///(?!/)(.+)$", url)
    if not match or match.group(2).startswith(":memory:"):
        return url
    scheme, rest = match.groups()
    path, _, query = rest.partition("?")
    resolved = (base / path).resolve()
    return f"{scheme}:///{resolved}" + (f"?{query}" if query else "")


SLUG_RE = re.compile(r"^[a-z0-9][a-z0-9-]*$")


# --- loading -----------------------------------------------------------------------------


def _missing(path: Path) -> str:
    return "is a directory, not a file" if path.is_dir() else "does not exist"


def find_config(explicit: str | os.PathLike[str] | None = None) -> Path:
    """The config file to use, or ConfigError listing where we looked."""
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise ConfigError(f"config file {str(path)!r} {_missing(path)} (given with --config)")
        return path
    from_env = os.environ.get(ENV_CONFIG)
    if from_env:
        path = Path(from_env)
        if not path.is_file():
            raise ConfigError(f"config file {from_env!r} {_missing(path)} (from ${ENV_CONFIG})")
        return path
    for candidate in DEFAULT_LOCATIONS:
        if candidate.is_file():
            return candidate
    raise ConfigError(
        "no config file found: pass --config FILE, set $CALENDAR_SVC_CONFIG, or create "
        "./config.toml or /etc/calendar-svc/config.toml"
    )


def load_config(
    explicit: str | os.PathLike[str] | None = None, *, database_url: str | None = None
) -> Config:
    """Find, read and validate the config; ``database_url`` (``--db``) wins over everything."""
    path = find_config(explicit).resolve()
    try:
        raw = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"not UTF-8 text (byte {exc.start})", file=str(path)) from None
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror}", file=str(path)) from None
    try:
        data = tomllib.loads(raw)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"TOML syntax error: {exc}", file=str(path)) from None
    override = database_url or os.environ.get(ENV_DATABASE_URL) or None
    return parse_config(data, path=path, database_url=override)


def parse_config(
    data: Mapping[str, Any], *, path: Path | None, database_url: str | None = None
) -> Config:
    file = str(path) if path else "<config>"
    base = path.parent if path else Path.cwd()
    top = _Reader(file, data, "")

    schedules = top.strings("schedules", ("schedules/*.toml",))

    db = _Reader(file, top.get("database", dict, {}), "database.")
    url = db.get("url", str, "sqlite:///var/calendar-svc.sqlite3")
    db.done()
    url = _sqlite_url(database_url, Path.cwd()) if database_url else _sqlite_url(url, base)

    feed_r = _Reader(file, top.get("feed", dict, {}), "feed.")
    d_feed = FeedConfig()
    port = feed_r.get("port", int, d_feed.port)
    if not 0 <= port <= 65535:
        raise feed_r.fail("port", f"must be between 0 and 65535, got {port}")
    feed = FeedConfig(
        enabled=feed_r.get("enabled", bool, d_feed.enabled),
        host=feed_r.get("host", str, d_feed.host),
        port=port,
        public_url=feed_r.get("public_url", str, f"http://127.0.0.1:{port}").rstrip("/"),
        domain=feed_r.get("domain", str, d_feed.domain),
        refresh_interval=feed_r.duration("refresh_interval", d_feed.refresh_interval),
        include_alarms=feed_r.get("include_alarms", bool, d_feed.include_alarms),
    )
    if "public_url" in feed_r.table:
        _check_public_url(feed_r, feed.public_url)
    feed_r.done()

    rem_r = _Reader(file, top.get("reminders", dict, {}), "reminders.")
    d_rem = RemindersConfig()
    offsets = rem_r.convert("offsets", d_rem.offsets, lambda v: _offsets(v))
    routes = tuple(_route(file, i, table) for i, table in enumerate(rem_r.get("routes", list, [])))
    max_attempts = rem_r.get("max_attempts", int, d_rem.max_attempts)
    if max_attempts < 1:
        raise rem_r.fail("max_attempts", "must be at least 1")
    reminders = RemindersConfig(
        enabled=rem_r.get("enabled", bool, d_rem.enabled),
        offsets=offsets,
        channels=rem_r.strings("channels", d_rem.channels),
        routes=routes,
        horizon=rem_r.duration("horizon", d_rem.horizon),
        grace=rem_r.duration("grace", d_rem.grace),
        all_day_time=rem_r.convert("all_day_time", d_rem.all_day_time, _clock_time),
        max_attempts=max_attempts,
        retry_base=rem_r.duration("retry_base", d_rem.retry_base),
        retry_max=rem_r.duration("retry_max", d_rem.retry_max),
        lease=rem_r.duration("lease", d_rem.lease),
        poll_interval=rem_r.duration("poll_interval", d_rem.poll_interval),
        rescan_interval=rem_r.duration("rescan_interval", d_rem.rescan_interval),
        stop_timeout=rem_r.duration("stop_timeout", d_rem.stop_timeout),
    )
    rem_r.done()

    disp_r = _Reader(file, top.get("display", dict, {}), "display.")
    display = DisplayConfig(
        timezone=disp_r.convert("timezone", None, _zone),
        label=disp_r.get("label", str, None),
    )
    disp_r.done()

    log_r = _Reader(file, top.get("logging", dict, {}), "logging.")
    level = log_r.get("level", str, "info").lower()
    if level not in ("debug", "info", "warning", "error"):
        raise log_r.fail("level", f"expected debug, info, warning or error, got {level!r}")
    fmt = log_r.get("format", str, "text").lower()
    if fmt not in ("text", "json"):
        raise log_r.fail("format", f'expected "text" or "json", got {fmt!r}')
    log_r.done()

    notifiers_raw = top.get("notifiers", dict, {"console": {"type": "console"}})
    notifiers: dict[str, dict[str, Any]] = {}
    for name, table in notifiers_raw.items():
        if not isinstance(table, dict):
            raise ConfigError("expected a table", file=file, key=f"notifiers.{name}")
        if "type" not in table:
            raise ConfigError(
                'missing the notifier\'s type (e.g. type = "console")',
                file=file,
                key=f"notifiers.{name}.type",
            )
        if not isinstance(table["type"], str):
            raise ConfigError(
                f"expected a string naming a notifier type, got {table['type']!r}",
                file=file,
                key=f"notifiers.{name}.type",
            )
        notifiers[name] = dict(table)
    top.done()

    for channel in reminders.channels:
        if channel not in notifiers:
            raise ConfigError(
                f"channel {channel!r} has no [notifiers.{channel}] table "
                f"(configured: {', '.join(sorted(notifiers)) or 'none'})",
                file=file,
                key="reminders.channels",
            )
    for i, route in enumerate(reminders.routes):
        for channel in route.channels:
            if channel not in notifiers:
                raise ConfigError(
                    f"channel {channel!r} has no [notifiers.{channel}] table",
                    file=file,
                    key=f"reminders.routes[{i}].channels",
                )

    return Config(
        path=path,
        schedules=tuple(schedules),
        database=DatabaseConfig(url=url),
        feed=feed,
        reminders=reminders,
        display=display,
        logging=LoggingConfig(level=level, format=fmt),
        notifiers=notifiers,
    )


def _offsets(value: Any) -> tuple[timedelta, ...]:
    if not isinstance(value, list):
        raise ValueError(f"expected a list of ISO 8601 durations, got {value!r}")
    return tuple(parse_duration(item) for item in value)


def _route(file: str, index: int, table: Any) -> Route:
    reader = _Reader(file, table if isinstance(table, dict) else {}, f"reminders.routes[{index}].")
    if not isinstance(table, dict):
        raise ConfigError("expected a table", file=file, key=f"reminders.routes[{index}]")
    calendar = reader.get("calendar", str, "*")
    category = reader.get("category", str, None)
    channels = reader.strings("channels", ())
    if not channels:
        raise reader.fail("channels", "a route needs at least one channel")
    reader.done()
    return Route(calendar=calendar, category=category, channels=channels)


def default_config(database_url: str) -> Config:
    """A config with every default, for tests and tools that only need a store."""
    return parse_config({"database": {"url": database_url}}, path=None)
