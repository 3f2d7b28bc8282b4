"""Loading and validating config.toml.

Where the file comes from, first match wins: ``--config FILE``,
``$CALENDAR_SVC_CONFIG``, ``./config.toml``, ``/etc/calendar-svc/config.toml``.
The database URL can be overridden by ``--db URL`` or
``$CALENDAR_SVC_DATABASE_URL``, the tz database folder (``[time] tzdir``) by
``$CALENDAR_SVC_TZDIR``. Relative paths (schedule globs, a relative SQLite
file, the tz database folder) resolve against the folder of the config file.

The tz database is read first and opened (``Config.tz_database``), and zone
names in the config are checked against it; loading a config switches nothing:
the command or daemon that uses the config makes it the one in use
(``timezones.use``).

The schema is declared once: each section is a dataclass below whose fields
are its keys, with their defaults and readers (``validation.setting``).
Every problem is one ``ConfigError`` naming the file and the dotted key.
A ``[notifiers.<name>]`` table is checked here for its ``type``
(``channel_type``) and ``concurrency`` (``channel_concurrency``), the keys every
channel has, and for its own keys by the notifier class, so a plugin owns its
keys.
"""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import time, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from calendar_svc import timezones, tzsource
from calendar_svc.errors import ConfigError, TzDatabaseError
from calendar_svc.tzdb import TzDatabase
from calendar_svc.tzsource import TzSource
from calendar_svc.validation import (
    Place,
    Table,
    anything,
    boolean,
    clock_time,
    duration,
    durations,
    folder,
    integer,
    list_of,
    matching,
    mismatch,
    one_of,
    read_section,
    setting,
    strings,
    table,
    text,
    zone,
    zone_in,
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
    # What one client may hold (feed.limits): open connections (lowered at start to leave
    # the process's descriptor reserve free), time to send a request's line and headers,
    # idle time between requests, and the sizes of the head and of the request line.
    max_connections: int = setting(integer(1, 1_000_000), 1000)
    header_timeout: timedelta = setting(duration(positive=True), timedelta(seconds=10))
    keep_alive_timeout: timedelta = setting(duration(positive=True), timedelta(seconds=5))
    max_header_size: int = setting(integer(1024, 1 << 20), 32 * 1024)
    max_request_line: int = setting(integer(256, 1 << 20), 8 * 1024)


@dataclass(frozen=True)
class ApiConfig:
    """``[api]``: the HTTP API under ``/api/v1``, served beside the feeds when enabled."""

    enabled: bool = setting(boolean, False)
    # The largest request body accepted (413 above it).
    max_body: int = setting(integer(1024, 100 * 1000 * 1000), 1000 * 1000)
    # Failed authentications one client address may make within auth_window before it is
    # answered 429 until the window has passed.
    auth_failures: int = setting(integer(1, 1000 * 1000), 10)
    auth_window: timedelta = setting(duration(positive=True), timedelta(minutes=1))
    # How long the first answer to a POST with an Idempotency-Key is kept for its retries.
    idempotency_ttl: timedelta = setting(duration(positive=True), timedelta(days=1))


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


def source_url(value: Any) -> str:
    """A source's feed URL: http(s), or ``webcal://`` (read as https), with a host."""
    url = text(value).strip()
    if url.lower().startswith("webcal://"):
        url = "https://" + url[len("webcal://") :]
    if not re.match(r"^https?://", url, re.IGNORECASE):
        raise ValueError(f"expected an http://, https:// or webcal:// URL, got {url!r}")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError as exc:
        raise ValueError(f"is not a valid URL ({exc}): {url!r}") from None
    if not parts.hostname:
        raise ValueError(f"has no host name: {url!r}")
    return url


_SLUG = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?")


def _offset_texts(value: Any) -> tuple[str, ...]:
    from calendar_svc.durations import format_duration

    return tuple(format_duration(offset) for offset in durations(value))


@dataclass(frozen=True)
class SourceConfig:
    """One ``[[sources]]`` table: an ICS feed the daemon follows into calendar ``calendar``.

    Secrets (a bearer token, a basic-auth password, extra headers) are named here and
    read from the environment or systemd credentials when a fetch needs them.
    """

    url: str = setting(source_url)
    calendar: str = setting(matching(_SLUG, "lowercase letters, digits and dashes"))
    # Default: the calendar's slug.
    name: str = setting(matching(_SLUG, "lowercase letters, digits and dashes"), "")
    interval: timedelta = setting(duration(positive=True), timedelta(minutes=15))
    zone: str | None = setting(zone, None)
    # ISO 8601 offsets for every entry (overriding the feed's VALARMs); None: the VALARMs'.
    reminders: tuple[str, ...] | None = setting(_offset_texts, None)
    channels: tuple[str, ...] | None = setting(_channels, None)
    timeout: timedelta = setting(duration(positive=True), timedelta(seconds=30))
    max_bytes: int = setting(integer(1024, 1024**3), 20 * 1000 * 1000)
    allow_private: bool = setting(boolean, False)
    username: str | None = setting(text, None)
    password_env: str | None = setting(text, None)
    password_credential: str | None = setting(text, None)
    token_env: str | None = setting(text, None)
    token_credential: str | None = setting(text, None)
    headers_env: str | None = setting(text, None)


@dataclass(frozen=True)
class ScheduleGlob:
    """One ``schedules`` item: a glob, and for the .ics files it matches, their calendar
    (default: named after each file) and zone (floating times, and where instants show)."""

    path: str = setting(text)
    calendar: str | None = setting(matching(_SLUG, "lowercase letters, digits and dashes"), None)
    zone: str | None = setting(zone, None)


@dataclass(frozen=True)
class DisplayConfig:
    timezone: str | None = setting(zone, None)
    label: str | None = setting(text, None)


@dataclass(frozen=True)
class TimeConfig:
    # The tz database folder (as `zic -d DIR` writes it), absolute once loaded; None:
    # pytz's own. $CALENDAR_SVC_TZDIR wins over it (Config.tz says which is in force).
    tzdir: Path | None = setting(folder, None)


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
    api: ApiConfig = field(default_factory=ApiConfig)
    reminders: RemindersConfig = field(default_factory=RemindersConfig)
    display: DisplayConfig = field(default_factory=DisplayConfig)
    time: TimeConfig = field(default_factory=TimeConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    # [notifiers.NAME] tables as written, ``type`` checked; validated by the notifier class.
    notifiers: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    sources: tuple[SourceConfig, ...] = ()
    # The schedules items written as tables ({ path, calendar, zone }).
    schedule_globs: tuple[ScheduleGlob, ...] = ()
    # The tz database in force ($CALENDAR_SVC_TZDIR, else [time] tzdir, else pytz's) and
    # that database, opened when the config was read.
    tz: TzSource = field(default_factory=TzSource)
    tz_database: TzDatabase = field(default_factory=timezones.bundled, compare=False, repr=False)

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

    def schedule_glob(self, path: Path) -> ScheduleGlob | None:
        """The ``schedules`` table whose glob matches ``path`` (its calendar and zone)."""
        for item in self.schedule_globs:
            base = Path(item.path)
            pattern = base if base.is_absolute() else self.base_dir / base
            matches = Path(pattern.anchor).glob(str(pattern.relative_to(pattern.anchor)))
            if any(m.resolve() == path for m in matches):
                return item
        return None

    def source(self, name: str) -> SourceConfig:
        """The ``[[sources]]`` table called ``name``; ConfigError listing the others."""
        for item in self.sources:
            if item.name == name:
                return item
        known = ", ".join(s.name for s in self.sources) or "none configured"
        raise ConfigError(f"no source {name!r} in [[sources]] ({known})")


#: Sends one channel may have in flight at once when its table sets no ``concurrency``:
#: what the single shared pool of sends allowed every channel before the key existed.
DEFAULT_CONCURRENCY = 16
#: A channel's own send threads and pooled connections: past this a receiver, not the
#: daemon, is the limit, and a typo (``3200``) would start thousands of threads.
MAX_CONCURRENCY = 256


def channel_concurrency(name: str, channel: Mapping[str, Any], *, file: str | None = None) -> int:
    """How many sends channel ``name`` may have in flight at once: its ``concurrency``.

    Each channel sends through its own threads, so a slow receiver holds up only its
    own channel's reminders. The one check of the key, for the config loader and the
    notifier base class alike (every notifier accepts it).
    """
    place = Place(ConfigError, file, f"notifiers.{name}")
    value: int = Table(dict(channel), place).read(
        "concurrency", integer(1, MAX_CONCURRENCY), DEFAULT_CONCURRENCY
    )
    return value


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
    return parse_config(
        data, path=path, database_url=override, tzdir=os.environ.get(tzsource.ENV_TZDIR)
    )


def parse_config(
    data: Mapping[str, Any],
    *,
    path: Path | None,
    database_url: str | None = None,
    tzdir: str | None = None,
) -> Config:
    """A ``Config`` from config.toml's parsed ``data``; ``database_url`` (``--db``) and
    ``tzdir`` (``$CALENDAR_SVC_TZDIR``) win over the file's."""
    file = str(path) if path else "<config>"
    base = path.parent if path else Path.cwd()
    place = Place(ConfigError, file)
    top = Table(dict(data), place)

    def section(name: str) -> Table[ConfigError]:
        return Table(top.read(name, table, {}), place.within(name))

    # First the tz database: the zone names below are checked against it.
    time_config, tz_source, tz_database = _time(section("time"), base, tzdir)

    raw_schedules = top.read(
        "schedules",
        list_of(_schedule_item, "a list of globs or { path, calendar, zone } tables"),
        ["schedules/*.toml"],
    )
    globs = tuple(
        ScheduleGlob(**read_section(ScheduleGlob, Table(item, place.within(f"schedules[{i}]"))))
        for i, item in enumerate(raw_schedules)
        if isinstance(item, dict)
    )
    schedules = tuple(item if isinstance(item, str) else item["path"] for item in raw_schedules)

    database = DatabaseConfig(**read_section(DatabaseConfig, section("database")))
    url = _sqlite_url(database_url, Path.cwd()) if database_url else _sqlite_url(database.url, base)

    feed_values = read_section(FeedConfig, section("feed"))
    port = feed_values.get("port", FeedConfig.port)
    feed_values.setdefault("public_url", f"http://127.0.0.1:{port}")
    feed = FeedConfig(**feed_values)

    api = ApiConfig(**read_section(ApiConfig, section("api")))

    rem = section("reminders")
    routes = tuple(
        _route(Table(raw, rem.place.within(f"routes[{index}]")))
        for index, raw in enumerate(rem.read("routes", list_of(anything, "a list of tables"), []))
    )
    reminders = RemindersConfig(**read_section(RemindersConfig, rem), routes=routes)

    display = DisplayConfig(
        **read_section(DisplayConfig, section("display"), {"timezone": zone_in(tz_database)})
    )
    log_config = LoggingConfig(**read_section(LoggingConfig, section("logging")))

    sources = tuple(
        _source(Table(raw, place.within(f"sources[{index}]")))
        for index, raw in enumerate(top.read("sources", list_of(anything, "a list of tables"), []))
    )
    names = [source.name for source in sources]
    for index, source in enumerate(sources):
        if names.index(source.name) != index:
            raise place.within(f"sources[{index}]").fail(
                "name", f"another source is called {source.name!r}; give each a name"
            )
    # A source's channels route its calendar's reminders, before [[reminders.routes]].
    routed = tuple(Route(calendar=s.calendar, channels=s.channels) for s in sources if s.channels)
    if routed:
        reminders = dataclasses.replace(reminders, routes=routed + reminders.routes)

    raw_notifiers = top.read("notifiers", table, {"console": {"type": "console"}})
    notifiers: dict[str, dict[str, Any]] = {}
    for name, raw in raw_notifiers.items():
        channel = Table(raw, place.within(f"notifiers.{name}")).values
        channel_type(name, channel, file=file)
        channel_concurrency(name, channel, file=file)
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
    for index, route in enumerate(reminders.routes[len(routed) :]):
        for channel_name in route.channels:
            if channel_name not in notifiers:
                raise place.within(f"reminders.routes[{index}]").fail(
                    "channels", f"channel {channel_name!r} has no [notifiers.{channel_name}] table"
                )
    for index, source in enumerate(sources):
        for channel_name in source.channels or ():
            if channel_name not in notifiers:
                raise place.within(f"sources[{index}]").fail(
                    "channels", f"channel {channel_name!r} has no [notifiers.{channel_name}] table"
                )

    return Config(
        path=path,
        schedules=schedules,
        database=DatabaseConfig(url=url),
        feed=feed,
        api=api,
        reminders=reminders,
        display=display,
        time=time_config,
        logging=log_config,
        notifiers=notifiers,
        sources=sources,
        schedule_globs=globs,
        tz=tz_source,
        tz_database=tz_database,
    )


def _schedule_item(value: Any) -> Any:
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and isinstance(value.get("path"), str):
        return value
    raise ValueError("expected a glob or a table with a path")


def _source(source: Table[ConfigError]) -> SourceConfig:
    values = read_section(SourceConfig, source)
    for key in ("url", "calendar"):
        if key not in values:
            raise source.fail(key, "required, and missing")
    values.setdefault("name", values["calendar"])
    for secret in ("password", "token"):
        if values.get(f"{secret}_env") and values.get(f"{secret}_credential"):
            raise source.fail(
                f"{secret}_credential", f"set only one of {secret}_env, {secret}_credential"
            )
    has_password = values.get("password_env") or values.get("password_credential")
    if has_password and not values.get("username"):
        raise source.fail("username", "a password needs a username (basic authentication)")
    if values.get("username") and not has_password:
        raise source.fail(
            "password_env", "a username needs a password (password_env or password_credential)"
        )
    if has_password and (values.get("token_env") or values.get("token_credential")):
        raise source.fail("token_env", "give a bearer token or a username and password, not both")
    return SourceConfig(**values)


def _time(
    section: Table[ConfigError], base: Path, env_tzdir: str | None
) -> tuple[TimeConfig, TzSource, TzDatabase]:
    """``[time]``, the tz database source in force and that database, opened."""
    values = read_section(TimeConfig, section)
    tzdir: Path | None = values.get("tzdir")
    if tzdir is not None and not tzdir.is_absolute():
        # Absolute but not resolved: a symlink pointed at another release is seen as such.
        tzdir = base.absolute() / tzdir
    source = tzsource.resolve(tzdir, env_tzdir)
    try:
        database = source.open()
    except TzDatabaseError as exc:
        if source.origin == tzsource.FROM_ENV:
            raise ConfigError(f"{exc.detail} (from ${tzsource.ENV_TZDIR})") from None
        raise section.fail("tzdir", exc.detail) from None
    return TimeConfig(tzdir=tzdir), source, database


def _route(route: Table[ConfigError]) -> Route:
    values = read_section(Route, route)
    if "channels" not in values:
        raise route.fail("channels", "a route needs at least one channel")
    return Route(**values)


def default_config(database_url: str) -> Config:
    """A config with every default, for tests and tools that only need a store."""
    return parse_config({"database": {"url": database_url}}, path=None)
