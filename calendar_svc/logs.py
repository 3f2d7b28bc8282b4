"""Structured logging to stderr: one line per event, ``key=value`` text or JSON.

Callers log an event name and fields::

    log_event(logger, "reminder.sent", uid="sheinbaum-bilateral", channel="console")

Secrets never reach this module: feed tokens are logged through ``redact_token``.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import datetime
from typing import Any

from calendar_svc.timezones import UTC

_RESERVED = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}
# Extras other libraries attach that say nothing new (uvicorn's ANSI-coloured copy of msg).
_DROPPED = {"color_message"}


def redact_token(token: str) -> str:
    """What may be logged of a feed token: its first 4 characters."""
    return f"{token[:4]}…" if token else "<none>"


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    return {
        k: v
        for k, v in vars(record).items()
        if k not in _RESERVED and k not in _DROPPED and not k.startswith("_")
    }


def _quote(value: Any) -> str:
    text = value.isoformat() if isinstance(value, datetime) else str(value)
    # Quote anything a reader could misparse, including control characters (CR, ESC).
    if text == "" or any(c in text for c in ' "=') or not text.isprintable():
        return json.dumps(text, ensure_ascii=False)
    return text


class KeyValueFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        ts = datetime.fromtimestamp(record.created, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        parts = [f"ts={ts[:-4]}Z", f"level={record.levelname.lower()}", f"logger={record.name}"]
        parts.append(f"msg={_quote(record.getMessage())}")
        parts.extend(f"{k}={_quote(v)}" for k, v in _fields(record).items())
        line = " ".join(parts)
        if record.exc_info:
            line += " exc=" + json.dumps(self.formatException(record.exc_info))
        return line


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in _fields(record).items():
            data[key] = value.isoformat() if isinstance(value, datetime) else value
        if record.exc_info:
            data["exc"] = self.formatException(record.exc_info)
        return json.dumps(data, ensure_ascii=False, default=str)


def setup_logging(level: str = "info", fmt: str = "text") -> None:
    """Send calendar-svc's (and uvicorn's, APScheduler's) logs to stderr in one format."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else KeyValueFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # APScheduler logs every job run at INFO; ours already says what happened.
    logging.getLogger("apscheduler").setLevel(max(logging.WARNING, root.level))
    # Alembic announces its context at INFO on every start; migrations we log ourselves.
    logging.getLogger("alembic").setLevel(max(logging.WARNING, root.level))
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True
    # uvicorn's access log would print request paths, and a feed path holds its token.
    logging.getLogger("uvicorn.access").disabled = True


def log_event(logger: logging.Logger, event: str, level: int = logging.INFO, **fields: Any) -> None:
    """Log ``event`` with ``fields`` as structured extras."""
    # A field named like a LogRecord attribute ("name", "msg") would make logging raise.
    extra = {(f"{k}_" if k in _RESERVED else k): v for k, v in fields.items()}
    logger.log(level, event, extra=extra, stacklevel=2)
