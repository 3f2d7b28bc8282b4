"""``calendar-svc notify-test CHANNEL``: exit 0 on success, one line and exit 1 on failure."""

from __future__ import annotations

from pathlib import Path

import peers
import pytest
from click.testing import CliRunner

from calendar_svc.cli.context import CliContext
from calendar_svc.cli.notify import notify_test


def run(tmp_path: Path, notifiers: str, *args: str) -> tuple[int, str, str]:
    config = tmp_path / "config.toml"
    config.write_text(
        f'[database]\nurl = "sqlite:///{tmp_path}/none.sqlite3"\n\n'
        '[display]\ntimezone = "America/New_York"\nlabel = "Washington"\n\n'
        '[notifiers.console]\ntype = "console"\n\n' + notifiers
    )
    config.chmod(0o600)
    result = CliRunner().invoke(notify_test, list(args), obj=CliContext(config_path=str(config)))
    return result.exit_code, result.stdout, result.stderr


def test_console_sends_the_built_in_sample(tmp_path: Path) -> None:
    code, out, _ = run(tmp_path, "", "console")
    assert code == 0
    assert (
        "In 1 hour: Bilateral meeting with President Claudia Sheinbaum | "
        "Tue 2 Sep 2025, 10:00 CST (UTC-06:00) — 12:00 EDT (UTC-04:00) in Washington" in out
    )
    assert "sent a test reminder through console" in out
    assert not (tmp_path / "none.sqlite3").exists()  # a test never creates a database


def test_webhook_delivers_to_a_real_receiver(tmp_path: Path) -> None:
    with peers.HttpReceiver() as receiver:
        code, out, _ = run(
            tmp_path,
            f'[notifiers.hook]\ntype = "webhook"\nurl = "{receiver.url}/h"\n'
            "allow_private = true\ntimeout = 2\n",
            "hook",
        )
        [request] = receiver.wait_for(1)
    assert code == 0, out
    assert request.json()["data"]["entry"]["title"].startswith("Bilateral meeting")


def test_failure_is_one_line_exit_1_without_secret(tmp_path: Path) -> None:
    port = peers.free_port()
    code, out, err = run(
        tmp_path,
        f'[notifiers.phone]\ntype = "ntfy"\nserver = "http://127.0.0.1:{port}"\n'
        'topic = "very_secret_topic"\ntimeout = 1\nallow_private = true\n',
        "phone",
    )
    assert code == 1
    assert out == ""
    assert len(err.strip().splitlines()) == 1
    assert "phone (ntfy): failed (retryable)" in err
    assert "very_secret_topic" not in err and "Traceback" not in err


def test_unknown_channel_is_a_config_error(tmp_path: Path) -> None:
    from calendar_svc.errors import ConfigError

    with pytest.raises(ConfigError, match="configured: console"):
        CliRunner().invoke(
            notify_test,
            ["pager"],
            obj=CliContext(config_path=str(_write(tmp_path))),
            catch_exceptions=False,
        )


def _write(tmp_path: Path) -> Path:
    config = tmp_path / "config.toml"
    config.write_text('[database]\nurl = "sqlite://"\n\n[notifiers.console]\ntype = "console"\n')
    return config
