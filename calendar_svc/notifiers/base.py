"""The contract every notifier implements, built-in or third-party.

A notifier delivers one :class:`Reminder` to one channel. The channel is a
``[notifiers.<name>]`` table in config.toml whose ``type`` names the notifier
class through the entry-point group ``calendar_svc.notifiers``::

    [notifiers.phone]
    type = "ntfy"
    topic_env = "NTFY_TOPIC"
    title_template = "$late$title at $time $zone"

Write your own by subclassing :class:`Notifier`: declare the keys of your table
in ``keys`` (``Key`` values: the base class reads them and resolves secrets),
implement ``send``, optionally ``close``, and register the class in your
package's ``pyproject.toml``::

    [project.entry-points."calendar_svc.notifiers"]
    matrix = "my_package.matrix:MatrixNotifier"

Import what you need from ``calendar_svc.notifiers``: ``Notifier``, ``Key``,
``Reminder``, ``ReminderEntry``, ``TEMPLATE_VARIABLES``.
"""

from __future__ import annotations

import string
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar

from calendar_svc.clock import now_utc
from calendar_svc.errors import ConfigError, PermanentNotifierError, RetryableNotifierError
from calendar_svc.notifiers.keys import COMMON_KEYS, Key, read_settings
from calendar_svc.notifiers.redaction import REDACTOR, scrub
from calendar_svc.notifiers.reminder import TEMPLATE_VARIABLES, Reminder
from calendar_svc.validation import Place


class Notifier(ABC):
    """Abstract base class that defines the interface every notifier must implement.

    The class is built once per channel, at start-up and on reload, from the
    channel's config table: ``Notifier(name, table, config_path=...)``. The
    constructor reads ``table`` against ``keys`` (plus ``title_template`` and
    ``body_template``, which every notifier accepts, and ``type``, the
    channel's): unknown keys, missing required keys and wrong values raise
    ``ConfigError`` naming ``notifiers.<name>.<key>``. The values read are in
    ``self.settings`` (secrets already resolved). Do the rest of your own
    checks in ``__init__`` after calling ``super().__init__`` and raise
    ``self.config_error(...)``.

    ``concurrency`` (a key every channel has, default 16) is how many sends of
    the channel the dispatcher runs at once, on threads of the channel's own, so
    a slow receiver delays only its own channel; size any connection pool by it.

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
        self.place = Place(ConfigError, str(config_path) if config_path else None, self.table_name)
        self._secret_values: set[str] = set()
        self.settings: dict[str, Any] = read_settings(
            table,
            {**COMMON_KEYS, **self.keys},
            place=self.place,
            config_path=config_path,
            hide=self.hide,
        )
        #: Sends of this channel in flight at once at most (its own send threads; an
        #: HTTP notifier sizes its connection pool by it).
        self.concurrency: int = self.settings["concurrency"]
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
        return self.place.fail(key, message)

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
        return scrub(text, self._secret_values)

    def retryable(
        self, message: str, *, retry_after: float | None = None
    ) -> RetryableNotifierError:
        return RetryableNotifierError(self.redact(message), retry_after=retry_after)

    def permanent(self, message: str, *, gone: bool = False) -> PermanentNotifierError:
        return PermanentNotifierError(self.redact(message), gone=gone)

    # --- templates ------------------------------------------------------------------------

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
