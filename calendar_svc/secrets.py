"""Where notifier secrets come from, and the one place config files are checked for them.

A secret key ``K`` of a notifier table (``password``, ``secret``, ``token``, …)
can be given three ways, at most one at a time:

* ``K_env = "NAME"``: read from the environment variable ``NAME``;
* ``K_credential = "NAME"``: read from ``$CREDENTIALS_DIRECTORY/NAME``, the
  folder systemd fills from ``LoadCredential=`` / ``SetCredentialEncrypted=``;
* ``K = "value"`` inline, accepted only when the config file is readable by its
  owner alone (``chmod 600``), because a world-readable config.toml is how
  passwords leak into backups, bug reports and other users' shells.

Values read here are never logged and never put into error messages.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from calendar_svc.errors import ConfigError

CREDENTIALS_DIRECTORY = "CREDENTIALS_DIRECTORY"

# Key names that hold a secret when written inline, whatever the notifier.
INLINE_SECRET_KEYS = frozenset({"password", "secret", "token"})


def read_env(variable: str, *, key: str, file: str | None = None) -> str:
    """The value of environment variable ``variable``; ConfigError when unset or empty."""
    value = os.environ.get(variable)
    if not value:
        raise ConfigError(
            f"environment variable {variable!r} is not set or empty", file=file, key=key
        )
    return value


def read_credential(name: str, *, key: str, file: str | None = None) -> str:
    """The systemd credential ``name`` (trailing newline stripped); ConfigError when missing."""
    if not name or "/" in name or name in (".", ".."):
        raise ConfigError(f"{name!r} is not a credential name (no slashes)", file=file, key=key)
    folder = os.environ.get(CREDENTIALS_DIRECTORY)
    if not folder:
        raise ConfigError(
            f"credential {name!r} asked for but $CREDENTIALS_DIRECTORY is not set "
            f"(add LoadCredential={name}:/path/to/file to the systemd unit)",
            file=file, key=key,
        )
    try:
        value = (Path(folder) / name).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            f"credential {name!r} not found in $CREDENTIALS_DIRECTORY", file=file, key=key
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise ConfigError(
            f"cannot read credential {name!r}: {reason}", file=file, key=key
        ) from None
    # Files written with `echo` end in a newline that is not part of the secret.
    value = value.rstrip("\r\n")
    if not value:
        raise ConfigError(f"credential {name!r} is empty", file=file, key=key)
    return value


def ensure_private(path: Path | None, *, key: str) -> None:
    """Refuse an inline secret (at ``key``) in a file that group or others may read.

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
        base = key.rsplit(".", 1)[-1]
        raise ConfigError(
            f"holds a secret inline but the file is readable by {' and '.join(readers)} "
            f"(mode {stat.S_IMODE(mode):04o}); run `chmod 600 {path}`, or move the secret to "
            f"{base}_env (an environment variable) or {base}_credential (a systemd credential)",
            file=str(path), key=key,
        )


def check_config_file(
    path: Path | None,
    notifier_tables: dict[str, dict[str, object]] | None,
    secret_keys: frozenset[str] = INLINE_SECRET_KEYS,
) -> None:
    """Refuse ``path`` if any ``[notifiers.*]`` table holds one of ``secret_keys`` inline
    while the file is group- or world-readable."""
    for name, table in (notifier_tables or {}).items():
        for key in sorted(secret_keys & set(table)):
            ensure_private(path, key=f"notifiers.{name}.{key}")


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
    file = str(config_path) if config_path else None
    given = [k for k in (key, f"{key}_env", f"{key}_credential") if k in table]
    if not given:
        return None
    if len(given) > 1:
        raise ConfigError(
            f"set only one of {', '.join(given)}", file=file, key=f"{table_name}.{given[1]}"
        )
    which = given[0]
    dotted = f"{table_name}.{which}"
    value = table[which]
    if (
        allow_list and which == key and isinstance(value, list) and value
        and all(isinstance(item, str) and item for item in value)
    ):
        value = ", ".join(value)
    if not isinstance(value, str) or not value:
        # Never echo the value: it may be the secret itself.
        raise ConfigError("expected a non-empty string", file=file, key=dotted)
    if which == key:
        ensure_private(config_path, key=dotted)
        return value
    if which.endswith("_env"):
        return read_env(value, key=dotted, file=file)
    return read_credential(value, key=dotted, file=file)
