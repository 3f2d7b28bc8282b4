"""config.toml: where it is found, what it means, and one clear error per mistake."""

from __future__ import annotations

import os
import textwrap
from collections.abc import Callable
from datetime import time, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from calendar_svc.cli import cli
from calendar_svc.config import load_config
from calendar_svc.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


def write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def test_shipped_config_loads_with_the_documented_defaults() -> None:
    config = load_config(ROOT / "config.toml")
    assert config.database.url == f"sqlite:///{ROOT / 'var' / 'calendar-svc.sqlite3'}"
    assert config.feed.host == "127.0.0.1" and config.feed.port == 8080
    assert config.reminders.offsets == (timedelta(hours=1), timedelta(minutes=15))
    assert config.reminders.channels == ("console",)
    assert config.reminders.horizon == timedelta(hours=6)
    assert config.reminders.grace == timedelta(minutes=10)
    assert config.reminders.all_day_time == time(9, 0)
    assert config.notifiers["console"]["type"] == "console"
    assert [p.name for p in config.schedule_files()] == ["rubio-2025-09.toml"]


def test_relative_paths_resolve_against_the_config_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "etc").mkdir()
    conf = write(
        tmp_path / "etc" / "c.toml",
        """\
        schedules = ["plans/*.toml"]
        [database]
        url = "sqlite:///data/x.sqlite3"
        """,
    )
    (tmp_path / "etc" / "plans").mkdir()
    (tmp_path / "etc" / "plans" / "a.toml").write_text("")
    monkeypatch.chdir(tmp_path)
    config = load_config(conf)
    assert config.database.url == f"sqlite:///{tmp_path / 'etc' / 'data' / 'x.sqlite3'}"
    assert config.schedule_files() == [tmp_path / "etc" / "plans" / "a.toml"]


def test_lookup_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    explicit = write(tmp_path / "explicit.toml", "[feed]\nport = 1111\n")
    from_env = write(tmp_path / "env.toml", "[feed]\nport = 2222\n")
    write(tmp_path / "config.toml", "[feed]\nport = 3333\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CALENDAR_SVC_CONFIG", str(from_env))
    assert load_config(explicit).feed.port == 1111
    assert load_config().feed.port == 2222
    monkeypatch.delenv("CALENDAR_SVC_CONFIG")
    assert load_config().feed.port == 3333


def test_missing_config_says_where_it_looked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CALENDAR_SVC_CONFIG", raising=False)
    if Path("/etc/calendar-svc/config.toml").exists():
        pytest.skip("this machine has /etc/calendar-svc/config.toml")
    with pytest.raises(ConfigError, match=r"no config file found.*--config"):
        load_config()


def test_database_url_overrides(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    conf = write(tmp_path / "c.toml", '[database]\nurl = "sqlite:///a.sqlite3"\n')
    monkeypatch.setenv("CALENDAR_SVC_DATABASE_URL", "sqlite:///from-env.sqlite3")
    assert load_config(conf).database.url.endswith("/from-env.sqlite3")
    assert (
        load_config(conf, database_url="postgresql+psycopg://u@h/db").database.url
        == "postgresql+psycopg://u@h/db"
    )


BAD = [
    ("[feed]\nprot = 8080\n", "feed.prot", "unknown key"),
    ('colour = "blue"\n', "colour", "unknown key"),
    ('[feed]\nport = "8080"\n', "feed.port", "expected an integer"),
    ("[feed]\nport = 99999\n", "feed.port", "between 0 and 65535"),
    ('[feed]\ninclude_alarms = "yes"\n', "feed.include_alarms", "expected true or false"),
    ('[reminders]\nhorizon = "6 hours"\n', "reminders.horizon", "not an ISO 8601 duration"),
    (
        '[reminders]\noffsets = ["PT1H", "15m"]\n',
        "reminders.offsets",
        "'15m' is not an ISO 8601 duration",
    ),
    ('[reminders]\nall_day_time = "9am"\n', "reminders.all_day_time", "local time"),
    ('[reminders]\nchannels = ["email"]\n', "reminders.channels", "no [notifiers.email] table"),
    ('[display]\ntimezone = "America/Quito"\n', "display.timezone", "America/Guayaquil"),
    ('[notifiers.x]\nhost = "a"\n', "notifiers.x.type", "missing the notifier's type"),
    ('[logging]\nlevel = "loud"\n', "logging.level", "expected one of debug, info, warning, error"),
    ('[feed]\npublic_url = "example.org"\n', "feed.public_url", "http://"),
    ('[feed]\npublic_url = "https://cal.example.org:abc"\n', "feed.public_url", "invalid port"),
    ('[feed]\npublic_url = "https://cal.example.org:0"\n', "feed.public_url", "port 0 cannot"),
    ('[feed]\npublic_url = "https://:8443/cal"\n', "feed.public_url", "no host name"),
    ('[feed]\npublic_url = "https://[calendar.example.org]/"\n', "feed.public_url", "not a valid"),
    ('[feed]\npublic_url = "http://[::1"\n', "feed.public_url", "not a valid"),
    ('[feed]\npublic_url = "https://cal.example.org/?x=1"\n', "feed.public_url", "?query"),
]


@pytest.mark.parametrize(("text", "key", "message"), BAD, ids=[b[1] for b in BAD])
def test_each_mistake_is_one_error_naming_file_and_key(
    tmp_path: Path, text: str, key: str, message: str
) -> None:
    conf = write(tmp_path / "config.toml", text)
    with pytest.raises(ConfigError) as info:
        load_config(conf)
    assert info.value.key == key
    assert message in str(info.value)
    assert str(conf) in str(info.value)


def test_cli_reports_config_errors_in_one_line_with_exit_2(tmp_path: Path) -> None:
    conf = write(tmp_path / "config.toml", '[reminders]\ngrace = "ten minutes"\n')
    result = CliRunner().invoke(cli, ["--config", str(conf), "calendars"])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1
    assert str(conf) in lines[0] and "reminders.grace" in lines[0]
    assert "Traceback" not in result.output


def test_toml_syntax_error_in_config(tmp_path: Path) -> None:
    conf = write(tmp_path / "config.toml", "[feed\nport = 1\n")
    with pytest.raises(ConfigError, match="TOML syntax error"):
        load_config(conf)


def test_env_config_that_does_not_exist(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CALENDAR_SVC_CONFIG", os.fspath(tmp_path / "nope.toml"))
    with pytest.raises(ConfigError, match=r"does not exist \(from \$CALENDAR_SVC_CONFIG\)"):
        load_config()


def test_config_with_utf8_bom_is_accepted(run_cli: Callable[..., Result], workdir: Path) -> None:
    config = workdir / "config.toml"
    config.write_bytes(b"\xef\xbb\xbf" + config.read_bytes())
    result = run_cli("calendars")
    assert result.exit_code == 0 or "BOM" in result.output, result.output


def test_config_env_var_error_names_the_env_var(
    run_cli: Callable[..., Result], monkeypatch: pytest.MonkeyPatch
) -> None:
    """With CALENDAR_SVC_CONFIG=/nonexistent the error says "(given with --config)",
    sending the user to look for a --config flag they never passed."""
    monkeypatch.setenv("CALENDAR_SVC_CONFIG", "/nonexistent/calendar-svc.toml")
    result = run_cli("calendars")
    assert result.exit_code == 2
    assert "CALENDAR_SVC_CONFIG" in result.output
    assert "given with --config" not in result.output
