"""Notifiers: the public face for plugin authors and for the daemon.

A plugin imports what it needs from here::

    from calendar_svc.notifiers import Key, Notifier, Reminder

Inside, one module per concept: ``reminder`` (what is sent), ``base`` (the
``Notifier`` contract), ``keys`` (a notifier's table schema), ``redaction``
(secrets out of logs), ``tokens`` (header and Message-ID tokens from a
reminder's idempotency key), ``registry`` (finding notifier classes by type),
and one module per built-in notifier, named after its ``type``; ``_http`` is
what the HTTP ones share.
"""

from __future__ import annotations

from calendar_svc.notifiers.base import Notifier
from calendar_svc.notifiers.keys import Key
from calendar_svc.notifiers.registry import (
    ENTRY_POINT_GROUP,
    available_types,
    build_notifier,
    build_notifiers,
    close_all,
    notifier_class,
)
from calendar_svc.notifiers.reminder import TEMPLATE_VARIABLES, Reminder, ReminderEntry

__all__ = [
    "ENTRY_POINT_GROUP",
    "TEMPLATE_VARIABLES",
    "Key",
    "Notifier",
    "Reminder",
    "ReminderEntry",
    "available_types",
    "build_notifier",
    "build_notifiers",
    "close_all",
    "notifier_class",
]
