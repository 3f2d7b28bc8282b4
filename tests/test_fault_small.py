"""Issue 12, finding 7: the smaller items (the PostgreSQL import race and the full disk
have their own modules; trailing newlines in slugs and uids are in test_fault_input).

* The SQLite file, ``-wal``, ``-shm`` and the daemon lock are created 0600, their
  folder 0700, whatever the umask (run with 022).
* Every notifier that makes HTTP requests (webhook, ntfy) refuses IPv4 embedded in
  IPv6 (compatible, mapped, NAT64 64:ff9b::/96 and 64:ff9b:1::/48, 6to4 2002::/16,
  Teredo 2001::/32) unless ``allow_private``. The channel is tried the way an
  operator would: ``calendar-svc notify-test CHANNEL --sample``.
* Secret scrubbing replaces whole secrets only: a webhook path ``/h`` must not
  mangle ``https://hooks...`` in an error message.
"""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

import pytest
from faults import (
    Daemon,
    Inbox,
    assert_no_traceback,
    assert_ok,
    cli,
    cli_process,
    daemons_killed,
    umask,
    write_config,
)

# --- file modes -------------------------------------------------------------------------------

MODES = "7. the database files are created 0644 and their folder 0755 outside systemd"


def _private(modes: dict[str, str]) -> bool:
    files = {name: mode for name, mode in modes.items() if name != "<folder>"}
    return modes["<folder>"] == oct(0o700) and set(files.values()) == {oct(0o600)}


def _modes(folder: Path) -> dict[str, str]:
    found = {"<folder>": oct(stat.S_IMODE(folder.stat().st_mode))}
    for path in folder.iterdir():
        found[path.name] = oct(stat.S_IMODE(path.stat().st_mode))
    return found


@pytest.mark.slow
def test_daemon_files_are_private_whatever_the_umask(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    with daemons_killed() as started:
        daemon = Daemon(config, preexec=umask(0o022))
        started.append(daemon.start())
        daemon.ready()
        modes = _modes(tmp_path / "var")  # while it runs: -wal, -shm and the lock exist
        assert daemon.stop() == 0
    names = set(modes)
    assert {"calendar.sqlite3", "calendar.sqlite3-wal", "calendar.sqlite3-shm"} <= names, modes
    assert len(names - {"<folder>"}) >= 4, f"no daemon lock file: {modes}"
    assert _private(modes), modes


@pytest.mark.slow
def test_cli_creates_the_database_private_whatever_the_umask(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    assert_ok(cli_process(config, "init", preexec=umask(0o022)))
    modes = _modes(tmp_path / "var")
    assert "calendar.sqlite3" in modes, modes
    assert _private(modes), modes


# --- private addresses hidden in IPv6 -------------------------------------------------------

EMBEDDED = [
    pytest.param("[::127.0.0.1]", id="ipv4-compatible"),
    pytest.param("[::ffff:127.0.0.1]", id="ipv4-mapped"),
    pytest.param("[64:ff9b::7f00:1]", id="nat64"),
    pytest.param("[64:ff9b:1::7f00:1]", id="nat64-local"),
    pytest.param("[2002:7f00:1::1]", id="6to4"),
    # Teredo: server 65.54.227.120, client 127.0.0.1 (stored inverted: 80ff:fffe).
    pytest.param("[2001:0:4136:e378:8000:63bf:80ff:fffe]", id="teredo"),
]


def _table(kind: str, base: str, **extra: Any) -> dict[str, Any]:
    if kind == "webhook":
        return {"type": "webhook", "url": f"{base}/hook", "timeout": 0.5, **extra}
    return {"type": "ntfy", "server": base, "topic": "faults", "timeout": 0.5, **extra}


def _embedded_cases() -> list[Any]:
    return [
        pytest.param(kind, *param.values, id=f"{kind}-{param.id}")
        for kind in ("webhook", "ntfy")
        for param in EMBEDDED
    ]


@pytest.mark.parametrize(("kind", "host"), _embedded_cases())
def test_http_notifiers_refuse_ipv4_hidden_in_ipv6(tmp_path: Path, kind: str, host: str) -> None:
    with Inbox() as inbox:
        base = f"http://{host}:{inbox.receiver.port}"
        config = write_config(tmp_path, notifiers={"chan": _table(kind, base)})
        outcome = cli(config, "notify-test", "chan", "--sample")
        assert_no_traceback(outcome)
        assert outcome.exit_code in (1, 2), outcome.describe()
        assert "allow_private" in outcome.stderr, outcome.describe()
        assert inbox.requests == []


@pytest.mark.parametrize(
    "kind",
    ["webhook", "ntfy"],
)
def test_allow_private_lets_a_mapped_loopback_address_through(tmp_path: Path, kind: str) -> None:
    with Inbox() as inbox:
        base = f"http://[::ffff:127.0.0.1]:{inbox.receiver.port}"
        config = write_config(tmp_path, notifiers={"chan": _table(kind, base, allow_private=True)})
        assert_ok(cli(config, "notify-test", "chan", "--sample"))
        assert len(inbox.requests) == 1


# --- secret scrubbing -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "secret"),
    [
        pytest.param(
            "https://hooks.invalid/h",
            "/h",
            id="short-path",
        ),
        pytest.param(
            "https://hooks.invalid/services/T0001/B0002/s3cr3tT0k3nV4lu3", "s3cr3t", id="long-path"
        ),
    ],
)
def test_scrubbing_replaces_whole_secrets_only(tmp_path: Path, url: str, secret: str) -> None:
    """The webhook path is a secret (chat webhooks carry their token there): it never
    appears in an error, and nothing else is cut out of the message."""
    config = write_config(
        tmp_path, notifiers={"hook": {"type": "webhook", "url": url, "timeout": 2}}
    )
    outcome = cli(config, "notify-test", "hook", "--sample")
    assert_no_traceback(outcome)
    assert outcome.exit_code == 1, outcome.describe()
    assert "https://hooks.invalid" in outcome.stderr, outcome.describe()
    assert "***" not in outcome.stderr.replace("https://hooks.invalid", ""), outcome.describe()
    if len(secret) > 2:
        assert secret not in outcome.stderr, outcome.describe()
