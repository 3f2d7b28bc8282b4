"""Loading and validating config.toml.

Where the file comes from, first match wins: ``--config FILE``,
``$CALENDAR_SVC_CONFIG``, ``./config.toml``, ``/etc/calendar-svc/config.toml``.
The database URL can be overridden by ``--db URL`` or
``$CALENDAR_SVC_DATABASE_URL``. Relative paths (schedule globs, a relative
SQLite file) resolve against the folder of the config file.

The schema is declared once: each section is a dataclass below whose fields
are its keys, with their defaults and readers (``validation.setting``).
Every problem is one ``ConfigError`` naming the file and the dotted key.
A ``[notifiers.<name>]`` table is checked here for its ``type``
(``channel_type``) and for its own keys by the notifier class, so a plugin
owns its keys.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import time, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from calendar_svc.errors import ConfigError
from calendar_svc.validation import (
    Place,
    Table,
    anything,
    boolean,
    clock_time,
    duration,
    durations,
    integer,
    list_of,
    mismatch,
    one_of,
    read_section,
    setting,
    strings,
    table,
    text,
    then,
    zone,
)

ENV_CONFIG = "CALENDAR_SVC_CONFIG"
ENV_DATABASE_URL = "CALENDAR_SVC_DATABASE_URL"
DEFAULT_LOCATIONS = (Path("config.toml"), Path("/etc/calendar-svc/config.toml"))


def public_url(value: Any) -> str:
    """``[feed] public_url``: an http(s) base URL that subscribers can reach (no trailing /)."""
    url = text(value).rstrip("/")
    if not re.match(r"^https?://", url):
        raise ValueError(f"must start with http:// or https://, got {url!r}")
    try:
        parts = urlsplit(url)
    except ValueError as exc:  # e.g. an unbalanced or non-IPv6 [bracketed] host
        raise ValueError(f"is not a valid URL ({exc}): {url!r}") from None
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"has an invalid port: {url!r}") from None
    if not parts.hostname:
        raise ValueError(f"has no host name: {url!r}")
    if port == 0:
        raise ValueError(
            f"port 0 cannot be subscribed to, got {url!r}; give the port "
            "subscribers reach (or none for 80/443)"
        )
    if parts.query or parts.fragment:
        raise ValueError(f"must be a base URL without ?query or #fragment, got {url!r}")
    return url


def _channels(value: Any) -> tuple[str, ...]:
    return tuple(strings(value))


def _some_channels(value: Any) -> tuple[str, ...]:
    channels = _channels(value)
    if not channels:
        raise ValueError("a route needs at least one channel")
    return channels


@dataclass(frozen=True)
class DatabaseConfig:
    url: str = setting(text, "sqlite:///var/calendar-svc.sqlite3")


@dataclass(frozen=True)
class FeedConfig:
    enabled: bool = setting(boolean, True)
    host: str = setting(text, "127.0.0.1")
    port: int = setting(integer(0, 65535), 8080)
    # When not given: http://127.0.0.1:<port> (parse_config derives it).
    public_url: str = setting(public_url, "http://127.0.0.1:8080")
    domain: str = setting(text, "calendar-svc.local")
    refresh_interval: timedelta = setting(duration(positive=True), timedelta(hours=1))
    include_alarms: bool = setting(boolean, True)
    # The subscribers' page, /c/<token>/<slug> (and its static files, per-entry .ics).
    page: bool = setting(boolean, True)
    # How often share links' fetch statistics are written (counted in memory in between).
    stats_interval: timedelta = setting(duration(positive=True), timedelta(minutes=1))


@dataclass(frozen=True)
class Route:
    """Reminders of ``calendar`` (``*`` = any), optionally only of ``category``, go to
    ``channels``."""

    calendar: str = setting(text, "*")
    category: str | None = setting(text, None)
    channels: tuple[str, ...] = setting(_some_channels, ())


@dataclass(frozen=True)
class RemindersConfig:
    enabled: bool = setting(boolean, True)
    offsets: tuple[timedelta, ...] = setting(durations, (timedelta(hours=1), timedelta(minutes=15)))
    channels: tuple[str, ...] = setting(_channels, ("console",))
    # [[reminders.routes]]: read by parse_config, one table per route.
    routes: tuple[Route, ...] = ()
    horizon: timedelta = setting(duration(positive=True), timedelta(hours=6))
    grace: timedelta = setting(duration(positive=True), timedelta(minutes=10))
    all_day_time: time = setting(clock_time, time(9, 0))
    max_attempts: int = setting(integer(minimum=1), 8)
    retry_base: timedelta = setting(duration(positive=True), timedelta(seconds=30))
    retry_max: timedelta = setting(duration(positive=True), timedelta(hours=1))
    lease: timedelta = setting(duration(positive=True), timedelta(minutes=5))
    poll_interval: timedelta = setting(duration(positive=True), timedelta(seconds=2))
    rescan_interval: timedelta = setting(duration(positive=True), timedelta(seconds=30))
    stop_timeout: timedelta = setting(duration(positive=True), timedelta(seconds=20))


@dataclass(frozen=True)
class DisplayConfig:
    timezone: str | None = setting(zone, None)
    label: str | None = setting(text, None)


@dataclass(frozen=True)
class LoggingConfig:
    level: str = setting(one_of("debug", "info", "warning", "error", fold_case=True), "info")
    format: str = setting(one_of("text", "json", fold_case=True), "text")


@dataclass(frozen=True)
class Config:
    path: Path | None
    schedules: tuple[str, ...]
    database: DatabaseConfig
    feed: FeedConfig = field(default_factory=FeedConfig)
    reminders: RemindersConfig = field(default_factory=RemindersConfig)
    display: DisplayConfig = field(default_factory=DisplayConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    # [notifiers.NAME] tables as written, ``type`` checked; validated by the notifier class.
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


def channel_type(name: str, channel: Mapping[str, Any], *, file: str | None = None) -> str:
    """The notifier type of channel ``name``: the ``type`` of its table, a string.

    The one check of it, for the config loader and the notifier registry alike;
    whether a notifier of that type exists is the registry's question.
    """
    value = channel.get("type")
    place = Place(ConfigError, file, f"notifiers.{name}")
    if value is None:
        raise place.fail("type", 'missing the notifier\'s type (e.g. type = "console")')
    if not isinstance(value, str):
        raise place.fail("type", str(mismatch("a string naming a notifier type", value)))
    return value


def _sqlite_url(url: str, base: Path) -> str:
    """Resolve a relative SQLite file against ``base``; other URLs pass through."""
    match = re.match(r"^(sqlite(?:\+\w+)?):///(?!/)(.+)$", url)
    if not match or match.group(2).startswith(":memory:"):
        return url
    scheme, rest = match.groups()
    path, _, query = rest.partition("?")
    resolved = (base / path).resolve()
    return f"{scheme}:///{resolved}" + (f"?{query}" if query else "")


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
    """A ``Config`` from config.toml's parsed ``data``; ``database_url`` (``--db``) wins."""
    file = str(path) if path else "<config>"
    base = path.parent if path else Path.cwd()
    place = Place(ConfigError, file)
    top = Table(dict(data), place)

    def section(name: str) -> Table[ConfigError]:
        return Table(top.read(name, table, {}), place.within(name))

    schedules = top.read("schedules", then(strings, tuple), ("schedules/*.toml",))

    database = DatabaseConfig(**read_section(DatabaseConfig, section("database")))
    url = _sqlite_url(database_url, Path.cwd()) if database_url else _sqlite_url(database.url, base)

    feed_values = read_section(FeedConfig, section("feed"))
    port = feed_values.get("port", FeedConfig.port)
    feed_values.setdefault("public_url", f"http://127.0.0.1:{port}")
    feed = FeedConfig(**feed_values)

    rem = section("reminders")
    routes = tuple(
        _route(Table(raw, rem.place.within(f"routes[{index}]")))
        for index, raw in enumerate(rem.read("routes", list_of(anything, "a list of tables"), []))
    )
    reminders = RemindersConfig(**read_section(RemindersConfig, rem), routes=routes)

    display = DisplayConfig(**read_section(DisplayConfig, section("display")))
    log_config = LoggingConfig(**read_section(LoggingConfig, section("logging")))

    raw_notifiers = top.read("notifiers", table, {"console": {"type": "console"}})
    notifiers: dict[str, dict[str, Any]] = {}
    for name, raw in raw_notifiers.items():
        channel = Table(raw, place.within(f"notifiers.{name}")).values
        channel_type(name, channel, file=file)
        notifiers[name] = dict(channel)
    top.done()

    configured = ", ".join(sorted(notifiers)) or "none"
    for channel_name in reminders.channels:
        if channel_name not in notifiers:
            raise place.within("reminders").fail(
                "channels",
                f"channel {channel_name!r} has no [notifiers.{channel_name}] table "
                f"(configured: {configured})",
            )
    for index, route in enumerate(reminders.routes):
        for channel_name in route.channels:
            if channel_name not in notifiers:
                raise place.within(f"reminders.routes[{index}]").fail(
                    "channels", f"channel {channel_name!r} has no [notifiers.{channel_name}] table"
                )

    return Config(
        path=path,
        schedules=schedules,
        database=DatabaseConfig(url=url),
        feed=feed,
        reminders=reminders,
        display=display,
        logging=log_config,
        notifiers=notifiers,
    )


def _route(route: Table[ConfigError]) -> Route:
    values = read_section(Route, route)
    if "channels" not in values:
        raise route.fail("channels", "a route needs at least one channel")
    return Route(**values)


def default_config(database_url: str) -> Config:
    """A config with every default, for tests and tools that only need a store."""
    return parse_config({"database": {"url": database_url}}, path=None)
