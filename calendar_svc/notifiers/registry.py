"""The notifier registry: notifier classes found through the ``calendar_svc.notifiers``
entry points.

Built-ins are declared in calendar-svc's own pyproject.toml, exactly like a
third-party plugin declares its own, so both go through one path. A
``[notifiers.<name>]`` table's ``type`` is the entry-point name; an unknown
one is an error listing the available types.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import Any, Protocol

from calendar_svc.clock import Clock, now_utc
from calendar_svc.config import channel_type
from calendar_svc.errors import ConfigError
from calendar_svc.notifiers.base import Notifier
from calendar_svc.validation import Place

ENTRY_POINT_GROUP = "calendar_svc.notifiers"
_BUILTIN_PREFIX = "calendar_svc.notifiers."

# The registry speaks as the package it serves.
logger = logging.getLogger("calendar_svc.notifiers")


class _ConfigLike(Protocol):
    @property
    def path(self) -> Path | None: ...

    @property
    def notifiers(self) -> Mapping[str, Mapping[str, Any]]: ...


def _registered() -> dict[str, EntryPoint]:
    found: dict[str, EntryPoint] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        other = found.get(ep.name)
        if other is not None:
            # A plugin cannot silently replace a built-in (and its security checks).
            keep, drop = (other, ep) if other.value.startswith(_BUILTIN_PREFIX) else (ep, other)
            logger.warning("notifier.shadowed", extra={"type": ep.name, "ignored": drop.value})
            ep = keep
        found[ep.name] = ep
    return found


def available_types() -> list[str]:
    """Names usable as ``type`` in a ``[notifiers.*]`` table, sorted."""
    return sorted(_registered())


def notifier_class(
    type_name: str, *, channel: str | None = None, file: str | None = None
) -> type[Notifier]:
    """The class registered as ``type_name``; ConfigError listing the available ones if none.

    ``channel`` and ``file`` say where the type was asked for (``notifiers.<channel>.type``).
    """
    place = Place(ConfigError, file, f"notifiers.{channel}" if channel else None)
    registered = _registered()
    ep = registered.get(type_name)
    if ep is None:
        raise place.fail(
            "type",
            f"unknown notifier type {type_name!r} (available: {', '.join(sorted(registered))})",
        )
    try:
        cls = ep.load()
    except ImportError as exc:
        raise place.fail(
            "type", f"notifier type {type_name!r} ({ep.value}) cannot be imported: {exc}"
        ) from None
    if not (isinstance(cls, type) and issubclass(cls, Notifier)):
        raise place.fail(
            "type", f"notifier type {type_name!r} ({ep.value}) is not a calendar_svc Notifier class"
        )
    return cls


def build_notifier(
    name: str, table: Mapping[str, Any], *, config_path: Path | None = None, clock: Clock = now_utc
) -> Notifier:
    """The notifier for channel ``name`` from its ``[notifiers.<name>]`` table; ``clock``
    stamps what it sends."""
    file = str(config_path) if config_path else None
    cls = notifier_class(channel_type(name, table, file=file), channel=name, file=file)
    return cls(name, table, config_path=config_path, clock=clock)


def build_notifiers(config: _ConfigLike, *, clock: Clock = now_utc) -> dict[str, Notifier]:
    """Every configured channel's notifier, or the first ConfigError (nothing left open)."""
    built: dict[str, Notifier] = {}
    try:
        for name, table in config.notifiers.items():
            built[name] = build_notifier(name, table, config_path=config.path, clock=clock)
    except BaseException:
        close_all(built)
        raise
    return built


def close_all(notifiers: Mapping[str, Notifier]) -> None:
    """Close every notifier; one failing ``close`` does not keep the others open."""
    for name, notifier in notifiers.items():
        try:
            notifier.close()
        except Exception as exc:  # closing is best effort, and must go on to the next one
            logger.warning("notifier.close_failed", extra={"channel": name, "error": str(exc)})
