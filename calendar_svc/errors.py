"""Every exception calendar-svc raises on purpose.

The hierarchy::

    CalendarSvcError                 base of everything below
    ├── ConfigError                  config.toml is wrong (names the file and the key)
    │   └── TzDatabaseError          the tz database folder, or a TZif file in it, is unusable
    ├── InputError                   a schedule file or CLI argument is wrong
    │   │                            (names the file, the entry and the field)
    │   └── TimeInputError           a wall time that cannot be turned into an instant
    │       ├── UnknownTimezoneError     not an IANA zone name (e.g. America/Quito)
    │       ├── NonexistentTimeError     falls in a DST gap
    │       ├── AmbiguousTimeError       falls in a DST fold and no ``fold`` was given
    │       └── TimeRangeError           a year the time-zone rules are not computed for
    ├── StoreError                   the database refused or is in a bad state
    │   ├── NotFoundError            no such calendar / entry
    │   └── AlreadyRunningError      a second daemon on one SQLite file
    ├── DaemonStateError             a daemon call that does not fit its state (a bug)
    └── NotifierError                a reminder could not be delivered
        ├── RetryableNotifierError   try again later (network, 5xx, timeout, 429)
        └── PermanentNotifierError   retrying cannot help (4xx, bad address)

The CLI turns any ``CalendarSvcError`` into one line on stderr and an exit code
(2 for bad input or config, 1 for everything else); anything else is a bug and
keeps its traceback.
"""

from __future__ import annotations


class CalendarSvcError(Exception):
    """Base class of every error calendar-svc raises on purpose."""

    exit_code = 1


class ConfigError(CalendarSvcError):
    """The configuration is invalid. The message names the file and the key."""

    exit_code = 2

    def __init__(self, message: str, *, file: str | None = None, key: str | None = None):
        self.file = file
        self.key = key
        where = ": ".join(part for part in (file, key) if part)
        super().__init__(f"{where}: {message}" if where else message)
        self.detail = message


class TzDatabaseError(ConfigError):
    """The tz database folder is missing or unreadable, or holds a file that is not TZif."""


class InputError(CalendarSvcError, ValueError):
    """Bad user input: a schedule file, an entry field or a CLI argument.

    ``file``, ``entry`` and ``field`` say where; the message reads
    ``FILE: entry UID: field FIELD: what is wrong``.
    """

    exit_code = 2

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        entry: str | None = None,
        field: str | None = None,
    ):
        self.detail = message
        self.file = file
        self.entry = entry
        self.field = field
        super().__init__(self._compose())

    def _compose(self) -> str:
        parts = []
        if self.file:
            parts.append(self.file)
        if self.entry:
            parts.append(f"entry {self.entry}")
        if self.field:
            parts.append(f"field {self.field!r}")
        parts.append(self.detail)
        return ": ".join(parts)

    def located(
        self, *, file: str | None = None, entry: str | None = None, field: str | None = None
    ) -> InputError:
        """Fill in location details that the raiser could not know."""
        self.file = self.file or file
        self.entry = self.entry or entry
        self.field = self.field or field
        self.args = (self._compose(),)
        return self

    def __str__(self) -> str:
        return self._compose()


class TimeInputError(InputError):
    """A wall time that cannot be turned into one instant."""


class UnknownTimezoneError(TimeInputError):
    """The zone is not an IANA name known to the installed tz data."""


class NonexistentTimeError(TimeInputError):
    """The wall time is skipped by a DST transition (a gap)."""


class AmbiguousTimeError(TimeInputError):
    """The wall time happens twice (a fold) and the input did not say which."""


class TimeRangeError(TimeInputError):
    """The wall time or instant is outside the years calendar-svc computes zone rules for."""


class StoreError(CalendarSvcError):
    """The database refused an operation or is in an unexpected state."""


class NotFoundError(StoreError):
    """No calendar or entry matches."""

    exit_code = 2


class AlreadyRunningError(StoreError):
    """Another daemon already runs against this SQLite database."""


class DaemonStateError(CalendarSvcError, RuntimeError):
    """A ``Daemon`` method was called in a state that refuses it: ``run()`` a second
    time, ``reload()`` before it runs or after it stopped."""


class NotifierError(CalendarSvcError):
    """A notifier could not deliver a reminder."""


class RetryableNotifierError(NotifierError):
    """Delivery failed for a reason that may go away: try again later.

    ``retry_after`` (seconds), when the peer said how long to wait (HTTP
    ``Retry-After``), overrides the dispatcher's own backoff.
    """

    def __init__(self, message: str, *, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class PermanentNotifierError(NotifierError):
    """Delivery failed and retrying cannot help (bad address, 4xx, rejected auth).

    ``gone`` is true when the peer said the endpoint no longer exists (HTTP 410):
    the channel is reported as gone.
    """

    def __init__(self, message: str, *, gone: bool = False):
        super().__init__(message)
        self.gone = gone
