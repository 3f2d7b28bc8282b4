"""Every exception calendar-svc raises on purpose.

The hierarchy::

    CalendarSvcError                 base of everything below
    ├── LocatedError                 something a person wrote is wrong; says where
    │   ├── ConfigError              config.toml is wrong (names the file and the dotted key)
    │   │   └── TzDatabaseError      the tz database folder, or a TZif file in it, is unusable
    │   └── InputError               a schedule file or CLI argument is wrong
    │       │                        (names the file, the entry and the field)
    │       ├── RuleError            an RRULE the recurrence engine cannot use
    │       └── TimeInputError       a wall time that cannot be turned into an instant
    │           ├── UnknownTimezoneError     not an IANA zone name (e.g. America/Quito)
    │           ├── NonexistentTimeError     falls in a DST gap
    │           ├── AmbiguousTimeError       falls in a DST fold and no ``fold`` was given
    │           └── TimeRangeError           a year the time-zone rules are not computed for
    ├── StoreError                   the database refused or is in a bad state
    │   ├── NotFoundError            no such calendar / entry
    │   ├── ReadOnlyEntryError       the entry belongs to a source (a followed feed)
    │   ├── ConflictError            a write that clashes with what is stored
    │   │   ├── OwnedEntryError      another owner (a schedule file, a source) holds the entry
    │   │   ├── AlreadyExistsError   the calendar or entry exists already
    │   │   └── StaleVersionError    it changed since the version the writer read (If-Match)
    │   └── AlreadyRunningError      a second daemon on one SQLite file
    ├── ApiProblem                   an HTTP API request refused (status, RFC 9457 problem)
    ├── DaemonStateError             a daemon call that does not fit its state (a bug)
    ├── AddressError                 a peer's host may not be connected to (``addresses``)
    │   ├── UnresolvedHostError      its name does not resolve (perhaps only for now)
    │   └── NonPublicAddressError    it is, or resolves to, a non-public address
    ├── SourceError                  a source (a followed ICS feed) could not be fetched
    └── NotifierError                a reminder could not be delivered
        ├── RetryableNotifierError   try again later (network, 5xx, timeout, 429)
        └── PermanentNotifierError   retrying cannot help (4xx, bad address)

The CLI turns any ``CalendarSvcError`` into one line on stderr and an exit code
(2 for bad input or config, 1 for everything else); anything else is a bug and
keeps its traceback. ``validation.Place`` builds the located errors of config,
notifier tables and schedule files alike.
"""

from __future__ import annotations


class CalendarSvcError(Exception):
    """Base class of every error calendar-svc raises on purpose."""

    exit_code = 1


class LocatedError(CalendarSvcError):
    """Something a person wrote is wrong, and the message says where.

    ``file`` is the file, ``location`` where in it (a dotted table such as
    ``notifiers.phone``, or a schedule entry), ``field`` the key there, and
    ``detail`` what is wrong, alone. ``str()`` joins what is known,
    ``FILE: WHERE: detail``, each subclass spelling WHERE its own way.
    """

    exit_code = 2

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        location: str | None = None,
        field: str | None = None,
    ):
        self.detail = message
        self.file = file
        self.location = location
        self.field = field
        super().__init__(self._compose())

    def _where(self) -> list[str]:
        return [part for part in (self.location, self.field) if part]

    def _compose(self) -> str:
        return ": ".join([*([self.file] if self.file else []), *self._where(), self.detail])

    def __str__(self) -> str:
        return self._compose()


class ConfigError(LocatedError):
    """The configuration is invalid: ``FILE: notifiers.phone.topic: what is wrong``.

    Where is given as ``location`` (the table) and ``field``, or as the whole
    dotted ``key``.
    """

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        location: str | None = None,
        field: str | None = None,
        key: str | None = None,
    ):
        if key is not None:
            table, _, name = key.rpartition(".")
            location, field = table or None, name
        super().__init__(message, file=file, location=location, field=field)

    @property
    def key(self) -> str | None:
        """The dotted key: location and field (``feed.port``, ``notifiers.phone.topic``)."""
        return ".".join(part for part in (self.location, self.field) if part) or None

    def _where(self) -> list[str]:
        return [self.key] if self.key else []


class TzDatabaseError(ConfigError):
    """The tz database folder is missing or unreadable, or holds a file that is not TZif."""


class InputError(LocatedError, ValueError):
    """Bad user input: a schedule file, an entry field or a CLI argument.

    ``location`` (also given as ``entry``) is the entry: its uid, or ``#N`` when
    the uid is the problem. The message reads ``FILE: entry UID: field FIELD:
    what is wrong``.
    """

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        location: str | None = None,
        field: str | None = None,
        entry: str | None = None,
    ):
        super().__init__(
            message, file=file, location=entry if entry is not None else location, field=field
        )

    @property
    def entry(self) -> str | None:
        return self.location

    def _where(self) -> list[str]:
        parts = []
        if self.location:
            parts.append(f"entry {self.location}")
        if self.field:
            parts.append(f"field {self.field!r}")
        return parts


class RuleError(InputError):
    """An RRULE the recurrence engine refuses: a part it does not know, a value out of
    range, a combination RFC 5545 forbids, or a rule that never fires or fires too often.
    A ``ValueError`` too, so the schema's readers report it at the field."""


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


class ReadOnlyEntryError(StoreError):
    """The entry is owned by a source (a followed ICS feed) and only its feed changes it."""

    exit_code = 2


class ConflictError(StoreError):
    """A write that clashes with what is stored (HTTP 409, or 412 for a stale version)."""

    exit_code = 2


class OwnedEntryError(ConflictError):
    """The entry belongs to a schedule file or a source: only it changes the entry, unless
    the writer detaches the entry from it (``--detach``, ``"detach": true``)."""


class AlreadyExistsError(ConflictError):
    """A calendar or entry with that slug or uid exists already."""


class StaleVersionError(ConflictError):
    """The entry or calendar changed since the version the writer read (``If-Match``)."""


class AlreadyRunningError(StoreError):
    """Another daemon already runs against this SQLite database."""


class ApiProblem(CalendarSvcError):
    """An HTTP API request refused, as an RFC 9457 problem: ``status``, ``detail`` (the
    message), the JSON ``pointer`` of the field at fault when there is one, and extra
    response ``headers`` (``Retry-After``, ``WWW-Authenticate``, ``Allow``)."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        pointer: str | None = None,
        headers: dict[str, str] | None = None,
    ):
        self.status = status
        self.detail = detail
        self.pointer = pointer
        self.headers = dict(headers or {})
        super().__init__(f"{pointer}: {detail}" if pointer else detail)


class DaemonStateError(CalendarSvcError, RuntimeError):
    """A ``Daemon`` method was called in a state that refuses it: ``run()`` a second
    time, ``reload()`` before it runs or after it stopped."""


class AddressError(CalendarSvcError):
    """A peer's host may not be connected to; each user maps it to its own error."""


class UnresolvedHostError(AddressError):
    """The host name does not resolve (a DNS failure may pass: worth trying again)."""


class NonPublicAddressError(AddressError):
    """The host is, or resolves to, an address that is not public (and no allow_private)."""


class SourceError(CalendarSvcError):
    """A source could not be fetched (network, status, a limit); its entries are kept."""


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
