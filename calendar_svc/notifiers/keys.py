"""The keys of a notifier's table: how a notifier declares them and how they are read.

A notifier class lists its keys in ``keys`` as ``Key`` values; the base class
reads its channel's table with ``read_settings``, through the same typed
readers (``calendar_svc.validation``) as config.toml and schedule files, so a
mistake reads the same everywhere: ``FILE: notifiers.phone.topic: what is
wrong``. A secret key may also be given as ``<key>_env`` or
``<key>_credential`` (``calendar_svc.secrets``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from calendar_svc import secrets, validation
from calendar_svc.config import DEFAULT_CONCURRENCY, MAX_CONCURRENCY
from calendar_svc.errors import ConfigError
from calendar_svc.validation import REQUIRED, Place, Reader, Table


def _instance_of(kind: type) -> Reader[Any]:
    def read(value: Any) -> Any:
        if not isinstance(value, kind):
            raise validation.mismatch(validation.expected(kind), value)
        return value

    return read


@dataclass(frozen=True)
class Key:
    """One key of a notifier's config table.

    ``kind`` is ``str``, ``int``, ``float``, ``bool``, ``list`` (of strings),
    ``dict`` (string to string) or ``object`` (anything; check it yourself).
    Without a ``default`` the key is required. ``choices`` limits the values;
    ``bounds`` are inclusive limits of an int or float key, e.g. ``(1, 65535)``
    for a port. A ``secret`` key may also be given as ``<key>_env`` or
    ``<key>_credential`` (see ``calendar_svc.secrets``), is accepted inline
    only in a private config file, and its value is scrubbed from log records
    and from the notifier's errors.
    """

    kind: type
    default: Any = REQUIRED
    secret: bool = False
    choices: tuple[Any, ...] | None = None
    bounds: tuple[float, float] | None = None

    @property
    def required(self) -> bool:
        return self.default is REQUIRED

    def reader(self) -> Reader[Any]:
        """The typed reader of this key's value (kind, then bounds, then choices)."""
        low, high = self.bounds if self.bounds is not None else (None, None)
        by_kind: dict[type, Reader[Any]] = {
            str: validation.text,
            int: validation.integer(
                None if low is None else int(low), None if high is None else int(high)
            ),
            float: validation.number(low, high),
            bool: validation.boolean,
            list: validation.strings,
            dict: validation.string_table,
            object: validation.anything,
        }
        read = by_kind.get(self.kind) or _instance_of(self.kind)
        if self.choices is not None:
            return validation.then(read, validation.one_of(*self.choices))
        return read


#: Keys every notifier accepts besides its own (``type`` is the channel's, checked once
#: by ``config.channel_type``).
COMMON_KEYS: Mapping[str, Key] = {
    "title_template": Key(str, None),
    "body_template": Key(str, None),
    # Also checked by the config loader (``config.channel_concurrency``), with these bounds.
    "concurrency": Key(int, DEFAULT_CONCURRENCY, bounds=(1, MAX_CONCURRENCY)),
}


def read_settings(
    table: Mapping[str, Any],
    keys: Mapping[str, Key],
    *,
    place: Place[ConfigError],
    config_path: Path | None,
    hide: Callable[[str], None],
) -> dict[str, Any]:
    """Every declared key of ``table`` read (defaults for the absent ones), secrets resolved.

    Unknown keys, missing required keys and wrong values raise the ConfigError of
    ``place``; each secret value read is passed to ``hide`` before anything else.
    """
    values = Table(dict(table), place)
    allowed = {"type", *keys}
    for key, spec in keys.items():
        if spec.secret:
            allowed |= {f"{key}_env", f"{key}_credential"}
    values.done(also=allowed)
    settings: dict[str, Any] = {}
    for key, spec in keys.items():
        if not spec.secret:
            settings[key] = values.read(key, spec.reader(), spec.default)
            continue
        secret = secrets.resolve(
            values.values,
            key,
            table_name=place.location or "",
            config_path=config_path,
            allow_list=spec.kind is list,
        )
        if secret is None:
            if spec.required:
                raise values.fail(key, f"required, and missing (or {key}_env / {key}_credential)")
            settings[key] = spec.default
            continue
        hide(secret)
        settings[key] = secret
    return settings
