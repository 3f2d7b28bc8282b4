"""What a long-running process secures at start, so that running short later cannot
break what it still has to do.

* **Descriptors.** The soft ``RLIMIT_NOFILE`` is often 1,024 while the hard
  limit is far higher: a process may raise its own soft limit to the hard one,
  and the daemon does at start (``raise_descriptor_limit``). What is left is
  shared with the feed server, which keeps ``DESCRIPTOR_RESERVE`` descriptors
  free for everything else (database, notifiers, schedule files, logs) by
  refusing connections beyond ``soft limit - reserve``.
* **Lazy imports.** Some modules are imported on first use, deep inside a
  library: ``socket.getaddrinfo`` imports the ``idna`` codec (with
  ``stringprep`` and ``unicodedata``) the first time a name is resolved. If
  that first time comes while descriptors are exhausted, the import fails and
  ``encodings`` caches the failure: every later webhook or ntfy send failed
  with ``LookupError: unknown encoding: idna`` until restart (issue 12).
  ``preload`` imports them while the process is fresh.
"""

from __future__ import annotations

import codecs
import importlib
import logging
import resource
from dataclasses import dataclass

from calendar_svc.logs import log_event

# Descriptors the feed server leaves to the rest of the process; see the module docstring.
DESCRIPTOR_RESERVE = 256

# Codecs looked up by name on the way to a peer: host names go through "idna" (socket
# resolves every str host with it; "punycode" underneath), headers and bodies through the
# others.
CODECS = ("idna", "punycode", "ascii", "latin-1", "utf-8")
# Modules libraries import on first use on the send paths (smtplib, email, ssl, httpx).
MODULES = (
    "encodings.idna",
    "stringprep",
    "unicodedata",
    "email.generator",
    "email.headerregistry",
    "email.policy",
    "email.utils",
    "ssl",
)


@dataclass(frozen=True)
class DescriptorLimit:
    """The soft limit found at start, the one in force now, and the hard limit
    (``None``: unlimited)."""

    before: int | None
    soft: int | None
    hard: int | None
    error: str | None = None

    @property
    def raised(self) -> bool:
        return self.soft != self.before


def _value(limit: int) -> int | None:
    return None if limit == resource.RLIM_INFINITY else limit


def _nr_open() -> int:
    """The kernel's ceiling for any descriptor limit (what "unlimited" may be raised to)."""
    try:
        with open("/proc/sys/fs/nr_open", encoding="ascii") as file:
            return int(file.read().strip())
    except (OSError, ValueError):
        return 1 << 20


def raise_descriptor_limit() -> DescriptorLimit:
    """Raise this process's soft ``RLIMIT_NOFILE`` to its hard limit (an unlimited hard
    limit: to the kernel's ``nr_open``). Never raises: a refusal is reported in ``error``."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = _nr_open() if hard == resource.RLIM_INFINITY else hard
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError) as exc:
            return DescriptorLimit(_value(soft), _value(soft), _value(hard), error=str(exc))
    now = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return DescriptorLimit(_value(soft), _value(now), _value(hard))


def descriptors_for_connections(wanted: int) -> int:
    """At most ``wanted`` connections, and never so many that fewer than
    ``DESCRIPTOR_RESERVE`` descriptors stay for the rest of the process (at least one)."""
    soft = _value(resource.getrlimit(resource.RLIMIT_NOFILE)[0])
    if soft is None:
        return wanted
    return max(1, min(wanted, soft - DESCRIPTOR_RESERVE))


def preload() -> list[str]:
    """Import now what would otherwise be imported on first use; returns what could not
    be (an optional module missing from this Python), for the log."""
    missing: list[str] = []
    for name in CODECS:
        try:
            codecs.lookup(name)
        except LookupError:
            missing.append(f"codec {name}")
    for module in MODULES:
        try:
            importlib.import_module(module)
        except ImportError:
            missing.append(module)
    return missing


def soft_nofile() -> int | None:
    """The soft descriptor limit in force (``None``: unlimited), for ``daemon.ready``."""
    return _value(resource.getrlimit(resource.RLIMIT_NOFILE)[0])


def secure(logger: logging.Logger) -> DescriptorLimit:
    """Both, at a daemon's start, told as ``daemon.resources``: a warning when the limit
    could not be raised or a module not imported, else at debug level (the limit in force
    is in ``daemon.ready``: a start that fails stays one line)."""
    limit = raise_descriptor_limit()
    missing = preload()
    log_event(
        logger,
        "daemon.resources",
        logging.WARNING if limit.error or missing else logging.DEBUG,
        nofile_before=limit.before,
        nofile=limit.soft,
        nofile_hard=limit.hard,
        reserve=DESCRIPTOR_RESERVE,
        **({"error": limit.error} if limit.error else {}),
        **({"not_preloaded": missing} if missing else {}),
    )
    return limit
