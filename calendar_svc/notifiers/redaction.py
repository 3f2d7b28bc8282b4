"""Secrets out of log records: what notifiers register is scrubbed from the libraries' logs.

httpx logs every request URL at INFO, and an ntfy topic or a chat webhook URL
is a secret; Apprise logs service URLs at DEBUG. A notifier registers each
secret it holds (``Notifier.hide``); ``REDACTOR`` replaces them by ``***`` in
the records of those libraries' loggers before any handler sees them.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable


def scrub(text: str, secrets: Iterable[str]) -> str:
    """``text`` with each of ``secrets`` replaced by ``***`` (longest first, so a secret
    that contains another is not left half-shown)."""
    for value in sorted(secrets, key=len, reverse=True):
        text = text.replace(value, "***")
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
