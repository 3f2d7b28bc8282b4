"""Where notifier secrets come from, and the checks of the config file that holds them.

A secret key ``K`` of a notifier table (``password``, ``secret``, ``token``, …)
can be given three ways, at most one at a time:

* ``K_env = "NAME"``: read from the environment variable ``NAME``;
* ``K_credential = "NAME"``: read from ``$CREDENTIALS_DIRECTORY/NAME``, the
  folder systemd fills from ``LoadCredential=`` / ``SetCredentialEncrypted=``;
* ``K = "value"`` inline, accepted only when the config file is readable by its
  owner alone (``chmod 600``), because a world-readable config.toml is how
  passwords leak into backups, bug reports and other users' shells.

Values read here are never logged and never put into error messages. A
notifier's table is read by ``notifiers.keys``; each secret key of it comes
through ``resolve`` here.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from calendar_svc.errors import ConfigError
from calendar_svc.validation import Place, secret_text

CREDENTIALS_DIRECTORY = "CREDENTIALS_DIRECTORY"


def read_env(variable: str, *, place: Place[ConfigError], field: str) -> str:
    """The value of environment variable ``variable``; ConfigError at ``field`` when unset or
    empty."""
    value = os.environ.get(variable)
    if not value:
        raise place.fail(field, f"environment variable {variable!r} is not set or empty")
    return value


def read_credential(name: str, *, place: Place[ConfigError], field: str) -> str:
    """The systemd credential ``name`` (trailing newline stripped); ConfigError when missing."""
    if not name or "/" in name or name in (".", ".."):
        raise place.fail(field, f"{name!r} is not a credential name (no slashes)")
    folder = os.environ.get(CREDENTIALS_DIRECTORY)
    if not folder:
        raise place.fail(
            field,
            f"credential {name!r} asked for but $CREDENTIALS_DIRECTORY is not set "
            f"(add LoadCredential={name}:/path/to/file to the systemd unit)",
        )
    try:
        value = (Path(folder) / name).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise place.fail(
            field, f"credential {name!r} not found in $CREDENTIALS_DIRECTORY"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise place.fail(field, f"cannot read credential {name!r}: {reason}") from None
    # Files written with `echo` end in a newline that is not part of the secret.
    value = value.rstrip("\r\n")
    if not value:
        raise place.fail(field, f"credential {name!r} is empty")
    return value


def ensure_private(path: Path | None, *, place: Place[ConfigError], field: str) -> None:
    """Refuse an inline secret (at ``field``) in a file that group or others may read.

    ``path`` None means the config did not come from a file (tests, defaults).
    """
    if path is None:
        return
    try:
        mode = path.stat().st_mode
    except OSError:
        return  # the file was read a moment ago; a vanished file is not our concern here
    bits = ((stat.S_IRGRP, "group"), (stat.S_IROTH, "others"))
    readers = [who for bit, who in bits if mode & bit]
    if readers:
        raise Place(ConfigError, str(path), place.location).fail(
            field,
            f"holds a secret inline but the file is readable by {' and '.join(readers)} "
            f"(mode {stat.S_IMODE(mode):04o}); run `chmod 600 {path}`, or move the secret to "
            f"{field}_env (an environment variable) or {field}_credential (a systemd "
            "credential)",
        )


def resolve(
    table: dict[str, object],
    key: str,
    *,
    table_name: str,
    config_path: Path | None = None,
    allow_list: bool = False,
) -> str | None:
    """The secret ``key`` of ``table`` from inline, ``key_env`` or ``key_credential``.

    None when none of the three is present. Two at once is a ConfigError, as is
    a wrong type; an inline value also needs a private config file. With
    ``allow_list`` an inline list of strings is accepted, joined with ", "
    (Apprise URL lists).
    """
    place = Place(ConfigError, str(config_path) if config_path else None, table_name)
    given = [k for k in (key, f"{key}_env", f"{key}_credential") if k in table]
    if not given:
        return None
    if len(given) > 1:
        raise place.fail(given[1], f"set only one of {', '.join(given)}")
    which = given[0]
    value = table[which]
    if (
        allow_list
        and which == key
        and isinstance(value, list)
        and value
        and all(isinstance(item, str) and item for item in value)
    ):
        value = ", ".join(value)
    try:
        value = secret_text(value)  # never echoes the value: it may be the secret itself
    except ValueError as exc:
        raise place.fail(which, str(exc)) from None
    if which == key:
        ensure_private(config_path, place=place, field=which)
        return value
    if which.endswith("_env"):
        return read_env(value, place=place, field=which)
    return read_credential(value, place=place, field=which)
