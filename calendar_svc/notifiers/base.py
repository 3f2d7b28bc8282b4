"""The contract every notifier implements, built-in or third-party.

A notifier delivers one :class:`Reminder` to one channel. The channel is a
``[notifiers.<name>]`` table in config.toml whose ``type`` names the notifier
class through the entry-point group ``calendar_svc.notifiers``::

    [notifiers.phone]
    type = "ntfy"
    topic_env = "NTFY_TOPIC"
    title_template = "$late$title at $time $zone"

Write your own by subclassing :class:`Notifier`: declare the keys of your table
in ``keys`` (the base class validates them and resolves secrets), implement
``send``, optionally ``close``, and register the class in your package's
``pyproject.toml``::

    [project.entry-points."calendar_svc.notifiers"]
    matrix = "my_package.matrix:MatrixNotifier"
"""

from __future__ import annotations

import hashlib
import logging
import re
import string
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Any, ClassVar

from calendar_svc import secrets
from calendar_svc.durations import format_duration
from calendar_svc.errors import ConfigError, PermanentNotifierError, RetryableNotifierError
from calendar_svc.timezones import UTC, iso_utc, now_utc

# Variables a title_template / body_template may use ($name or ${name}); values are text.
TEMPLATE_VARIABLES: Mapping[str, str] = MappingProxyType(
    {
        "default_title": "the built-in title: 'In 1 hour: Bilateral meeting with …'",
        "default_body": "the built-in body: 'Tue 2 Sep 2025, 10:00 CST (UTC-06:00) — …'",
        "late": "'Late: ' when the reminder is sent after its due time, else ''",
        "lead": "'In 1 hour' ('Now' at the start time)",
        "offset": "how long before the start, in words: '1 hour', '15 minutes'",
        "title": "the entry's title",
        "description": "the entry's description",
        "location": "the entry's location ('Palacio Nacional')",
        "city": "the entry's city ('Mexico City')",
        "where": "location and city joined without repeating the city",
        "url": "the entry's URL ('' when none)",
        "uid": "the entry's stable UID",
        "categories": "the entry's categories, comma separated",
        "calendar": "the calendar's slug",
        "when": "start in the entry's zone: 'Tue 2 Sep 2025, 10:00 CST (UTC-06:00)' "
        "(the date only for all-day entries)",
        "date": "start date: 'Tue 2 Sep 2025'",
        "time": "start wall time: '10:00' ('' for all-day entries)",
        "zone": "zone abbreviation: 'CST' ('' when the zone has none)",
        "utc_offset": "'UTC-06:00'",
        "timezone": "IANA zone of the entry: 'America/Mexico_City'",
        "display_time": "start in the [display] zone: '12:00 EDT in Washington' ('' when not "
        "configured, same as the entry's zone, or all-day)",
        "start_utc": "start as ISO 8601 UTC: '2025-09-02T16:00:00Z'",
        "due_utc": "when the reminder was due, ISO 8601 UTC",
        "feed_url": "the calendar's feed URL, from [feed] public_url and the calendar's own "
        "token ('' when public_url would have port 0)",
        "idempotency_key": "the delivery's idempotency key",
    }
)


@dataclass(frozen=True)
class ReminderEntry:
    """What a reminder says about its calendar entry."""

    uid: str
    title: str
    location: str = ""
    city: str = ""
    url: str = ""
    description: str = ""
    categories: tuple[str, ...] = ()


@dataclass(frozen=True)
class Reminder:
    """One reminder of one entry occurrence, ready to send.

    ``idempotency_key`` is the same on every attempt of the same delivery,
    including a re-send after a crash: pass it to the peer (a message id, a
    header) so that the receiver can drop the rare duplicate.

    ``start`` is aware, in the entry's own zone (``start_tz``); for all-day
    entries it is the local midnight of the first day. ``due_at`` is UTC.
    ``title`` and ``body`` are the default texts; a notifier with its own
    templates renders ``variables`` (see ``TEMPLATE_VARIABLES``) instead, via
    :meth:`Notifier.render`.
    """

    idempotency_key: str
    calendar_slug: str
    entry: ReminderEntry
    start: datetime
    start_tz: str
    all_day: bool
    due_at: datetime
    offset: timedelta
    late: bool
    title: str
    body: str
    feed_url: str | None = None
    variables: Mapping[str, str] = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.due_at.tzinfo is None:
            raise ValueError("Reminder.start and Reminder.due_at must be aware datetimes")
        # Frozen all the way down: a notifier must not change what the next one sends.
        object.__setattr__(self, "variables", MappingProxyType(dict(self.variables)))

    @property
    def start_utc(self) -> datetime:
        return self.start.astimezone(UTC)

    def to_json(self, *, title: str | None = None, body: str | None = None) -> dict[str, Any]:
        """The reminder as JSON-ready data (webhook and MQTT payloads)."""
        entry = self.entry
        return {
            "idempotency_key": self.idempotency_key,
            "calendar": self.calendar_slug,
            "entry": {
                "uid": entry.uid,
                "title": entry.title,
                "location": entry.location,
                "city": entry.city,
                "url": entry.url or None,
                "categories": list(entry.categories),
            },
            "start": self.start.date().isoformat() if self.all_day else self.start.isoformat(),
            "start_utc": iso_utc(self.start),
            "timezone": self.start_tz,
            "all_day": self.all_day,
            "due_at": iso_utc(self.due_at),
            "offset": format_duration(self.offset),
            "late": self.late,
            "title": self.title if title is None else title,
            "body": self.body if body is None else body,
            "feed_url": self.feed_url,
        }


_REQUIRED: Any = object()


@dataclass(frozen=True)
class Key:
    """One key of a notifier's config table.

    ``kind`` is ``str``, ``int``, ``float``, ``bool``, ``list`` (of strings) or
    ``dict`` (string to string). A ``secret`` key may also be given as
    ``<key>_env`` or ``<key>_credential`` (see ``calendar_svc.secrets``), is
    accepted inline only in a private config file, and its value is scrubbed
    from log records and from the notifier's errors.
    """

    kind: type
    default: Any = _REQUIRED
    secret: bool = False
    choices: tuple[Any, ...] | None = None
    # Inclusive bounds for an int or float key, e.g. (1, 65535) for a port.
    bounds: tuple[float, float] | None = None

    @property
    def required(self) -> bool:
        return self.default is _REQUIRED


_COMMON_KEYS: Mapping[str, Key] = {
    "type": Key(str),
    "title_template": Key(str, None),
    "body_template": Key(str, None),
}


class Notifier(ABC):
    """Abstract base class that defines the interface every notifier must implement.

    The class is built once per channel, at start-up and on reload, from the
    channel's config table: ``Notifier(name, table, config_path=...)``. The
    constructor validates ``table`` against ``keys`` (plus ``type``,
    ``title_template`` and ``body_template``, which every notifier accepts):
    unknown keys, missing required keys and wrong types raise ``ConfigError``
    naming ``notifiers.<name>.<key>``. Validated values are in ``self.settings``
    (secrets already read). Do the rest of your own checks in ``__init__``
    after calling ``super().__init__`` and raise ``self.config_error(...)``.

    ``send(reminder)`` delivers one reminder and returns None. It must not
    return a status: it raises

    * ``RetryableNotifierError`` when trying again later may work (network
      errors, timeouts, 5xx, 429; pass ``retry_after`` seconds when the peer
      said how long to wait), or
    * ``PermanentNotifierError`` when it cannot (4xx, a refused address,
      rejected credentials; ``gone=True`` when the endpoint no longer exists).

    Build them with ``self.retryable(...)`` / ``self.permanent(...)``, which
    scrub secrets from the message. Any other exception is a bug and is
    treated as retryable by the dispatcher. ``send`` may be called from
    several threads, one reminder each; it should finish within its own
    timeout. Use ``self.render(reminder)`` for the title and body so that the
    channel's templates apply.

    ``close()`` releases connections; it is called on shutdown and reload.
    """

    #: The keys of this notifier's table, besides the common ones.
    keys: ClassVar[Mapping[str, Key]] = {}

    def __init__(
        self,
        name: str,
        table: Mapping[str, Any],
        *,
        config_path: Path | None = None,
        clock: Callable[[], datetime] = now_utc,
    ) -> None:
        # The clock stamps what a notifier sends (Date, webhook-timestamp); tests move it.
        self.clock = clock
        self.name = name
        self.table_name = f"notifiers.{name}"
        self.config_path = config_path
        self._secret_values: set[str] = set()
        self.settings: dict[str, Any] = self._validate(dict(table))
        self.title_template = self._template("title_template")
        self.body_template = self._template("body_template")

    # --- the contract -----------------------------------------------------------------

    @abstractmethod
    def send(self, reminder: Reminder) -> None:
        """Deliver ``reminder`` or raise a Retryable/PermanentNotifierError."""

    def close(self) -> None:  # noqa: B027 - optional hook, empty by design
        """Release connections and threads. Sending after close is not supported."""

    def __repr__(self) -> str:
        # Never the settings: they hold secrets.
        return f"<{type(self).__name__} {self.name!r}>"

    # --- helpers for implementations ------------------------------------------------------

    def render(self, reminder: Reminder) -> tuple[str, str]:
        """Title and body for this channel: its templates, else the reminder's defaults."""
        variables = dict(reminder.variables)
        variables.setdefault("default_title", reminder.title)
        variables.setdefault("default_body", reminder.body)
        title = (
            self.title_template.safe_substitute(variables)
            if self.title_template
            else reminder.title
        )
        body = (
            self.body_template.safe_substitute(variables) if self.body_template else reminder.body
        )
        return title, body

    def config_error(self, key: str, message: str) -> ConfigError:
        """A ConfigError naming ``notifiers.<name>.<key>`` and the config file."""
        return ConfigError(
            message,
            file=str(self.config_path) if self.config_path else None,
            key=f"{self.table_name}.{key}",
        )

    def existing_file(self, key: str) -> str | None:
        """The file named by ``key`` (relative to the config file's folder), or None if unset."""
        value = self.settings.get(key)
        if value is None:
            return None
        path = Path(value)
        if self.config_path is not None and not path.is_absolute():
            path = self.config_path.parent / path
        if not path.is_file():
            raise self.config_error(key, f"no such file: {path}")
        return str(path)

    def hide(self, value: str | None) -> None:
        """Treat ``value`` as a secret: scrub it from errors and from library log records."""
        if value:
            self._secret_values.add(value)
            REDACTOR.add(value)

    def redact(self, text: str) -> str:
        """``text`` with every secret of this notifier replaced by ``***``."""
        for value in sorted(self._secret_values, key=len, reverse=True):
            text = text.replace(value, "***")
        return text

    def retryable(
        self, message: str, *, retry_after: float | None = None
    ) -> RetryableNotifierError:
        return RetryableNotifierError(self.redact(message), retry_after=retry_after)

    def permanent(self, message: str, *, gone: bool = False) -> PermanentNotifierError:
        return PermanentNotifierError(self.redact(message), gone=gone)

    # --- validation -----------------------------------------------------------------------

    def _validate(self, table: dict[str, Any]) -> dict[str, Any]:
        declared = {**_COMMON_KEYS, **self.keys}
        allowed = set(declared)
        for key, spec in declared.items():
            if spec.secret:
                allowed |= {f"{key}_env", f"{key}_credential"}
        unknown = sorted(set(table) - allowed)
        if unknown:
            raise self.config_error(
                unknown[0], f"unknown key (known keys here: {', '.join(sorted(allowed))})"
            )
        settings: dict[str, Any] = {}
        for key, spec in declared.items():
            if spec.secret:
                value = secrets.resolve(
                    table,
                    key,
                    table_name=self.table_name,
                    config_path=self.config_path,
                    allow_list=spec.kind is list,
                )
                self.hide(value)
                present = value is not None
            else:
                present = key in table
                value = table.get(key)
                if present:
                    self._check_type(key, spec, value)
            if not present:
                if spec.required:
                    hint = f" (or {key}_env / {key}_credential)" if spec.secret else ""
                    raise self.config_error(key, f"missing required key{hint}")
                value = spec.default
            elif (
                spec.bounds is not None
                and isinstance(value, int | float)
                and not spec.bounds[0] <= value <= spec.bounds[1]
            ):
                raise self.config_error(
                    key, f"must be between {spec.bounds[0]:g} and {spec.bounds[1]:g}, got {value!r}"
                )
            elif spec.choices is not None and value not in spec.choices:
                raise self.config_error(
                    key, f"expected one of {', '.join(map(repr, spec.choices))}, got {value!r}"
                )
            settings[key] = value
        return settings

    def _check_type(self, key: str, spec: Key, value: Any) -> None:
        kind = spec.kind
        ok = isinstance(value, kind) and not (kind in (int, float) and isinstance(value, bool))
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            ok = True
        if ok and kind is list:
            ok = all(isinstance(item, str) for item in value)
        if ok and kind is dict:
            ok = all(isinstance(k, str) and isinstance(v, str) for k, v in value.items())
        if not ok:
            expected = {
                str: "a string",
                int: "an integer",
                float: "a number",
                bool: "true or false",
                list: "a list of strings",
                dict: "a table of strings",
            }.get(kind, kind.__name__)
            shown = "" if spec.secret else f" {value!r}"
            raise self.config_error(key, f"expected {expected}, got {type(value).__name__}{shown}")

    def _template(self, key: str) -> string.Template | None:
        text = self.settings.get(key)
        if text is None:
            return None
        template = string.Template(text)
        if not template.is_valid():
            raise self.config_error(key, "invalid template: write $name or ${name}, and $$ for $")
        unknown = sorted(set(template.get_identifiers()) - set(TEMPLATE_VARIABLES))
        if unknown:
            raise self.config_error(
                key,
                f"unknown variable ${unknown[0]} (available: "
                f"{', '.join('$' + name for name in TEMPLATE_VARIABLES)})",
            )
        return template


def message_id_token(key: str, *, limit: int = 64) -> str:
    """``key`` if it is safe as a header token / Message-ID left part, else a digest of it.

    Safe means letters, digits, ``-``, ``_`` and ``.``, at most ``limit``
    characters; anything else becomes 32 hex digits of SHA-256, so the same
    key always gives the same token.
    """
    if re.fullmatch(rf"[A-Za-z0-9_.-]{{1,{limit}}}", key) and not key.startswith("."):
        return key
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[: min(32, limit)]


class _Redactor(logging.Filter):
    """Scrubs registered secrets from records of the libraries notifiers use.

    httpx logs every request URL at INFO, and an ntfy topic or a chat webhook
    URL is a secret; Apprise logs service URLs at DEBUG.
    """

    # A filter on a logger sees only records logged to that very logger, not its children.
    LOGGERS = ("httpx", "apprise", "paho")

    def __init__(self) -> None:
        super().__init__()
        self._values: set[str] = set()
        for name in self.LOGGERS:
            logging.getLogger(name).addFilter(self)

    def add(self, value: str) -> None:
        self._values.add(value)

    def filter(self, record: logging.LogRecord) -> bool:
        if not self._values:
            return True
        try:
            message = record.getMessage()
        except Exception:  # a broken record is logging's problem, not ours
            return True
        redacted = message
        for value in sorted(self._values, key=len, reverse=True):
            redacted = redacted.replace(value, "***")
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


REDACTOR = _Redactor()
