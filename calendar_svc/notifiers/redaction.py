"""Secrets out of log records: what notifiers register is scrubbed from the libraries' logs.

httpx logs every request URL at INFO, and an ntfy topic or a chat webhook URL
is a secret; Apprise logs service URLs at DEBUG. A notifier registers each
secret it holds (``Notifier.hide``); ``REDACTOR`` replaces them by ``***`` in
the records of those libraries' loggers before any handler sees them.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

# Characters that continue a word or a name (separators such as / = & : ? do not): a
# secret that begins (or ends) with one is only that secret where no such character comes
# right before (after). A dot continues a name only when more of it follows
# ("hooks.invalid"); a dot that ends a sentence must not let a secret through.
_TOKEN = "-A-Za-z0-9_~"
_TOKEN_CHAR = re.compile(f"[{_TOKEN}.]")
_BEFORE = f"(?<![{_TOKEN}.])"
_AFTER = f"(?![{_TOKEN}]|\\.[{_TOKEN}])"


def _whole(value: str) -> str:
    """A pattern for ``value`` standing alone, not as a piece of a longer token.

    A webhook path ``/h`` is a secret, but the ``/h`` inside ``https://hooks`` is
    not it: a plain replace turned the error's origin into ``https:/***ooks``.
    """
    pattern = re.escape(value)
    if _TOKEN_CHAR.match(value[0]):
        pattern = _BEFORE + pattern
    if _TOKEN_CHAR.match(value[-1]):
        pattern += _AFTER
    return pattern


def scrub(text: str, secrets: Iterable[str]) -> str:
    """``text`` with each whole occurrence of ``secrets`` replaced by ``***`` (longest
    first, so a secret that contains another is not left half-shown)."""
    for value in sorted((s for s in secrets if s), key=len, reverse=True):
        text = re.sub(_whole(value), "***", text)
    return text


class Redactor(logging.Filter):
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
        redacted = scrub(message, self._values)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


#: The one redactor of the process: notifiers register their secrets with it.
REDACTOR = Redactor()
