"""Secrets: env vars, systemd credentials, and refusing readable configs with inline secrets."""

from __future__ import annotations

from pathlib import Path

import pytest

from calendar_svc import secrets
from calendar_svc.config import load_config
from calendar_svc.errors import ConfigError
from calendar_svc.notifiers import build_notifiers


def resolve(table: dict[str, object], path: Path | None = None) -> str | None:
    return secrets.resolve(table, "password", table_name="notifiers.mail", config_path=path)


def test_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAIL_PW", "env-value")
    assert resolve({"password_env": "MAIL_PW"}) == "env-value"


def test_missing_env_names_the_variable_not_a_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MAIL_PW", raising=False)
    with pytest.raises(ConfigError, match="'MAIL_PW' is not set") as caught:
        resolve({"password_env": "MAIL_PW"})
    assert caught.value.key == "notifiers.mail.password_env"


def test_from_credentials_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "mail-pw").write_text("cred-value\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    assert resolve({"password_credential": "mail-pw"}) == "cred-value"


@pytest.mark.parametrize(
    ("name", "setup", "words"),
    [
        ("absent", "dir", "not found"),
        ("../etc/passwd", "dir", "no slashes"),
        ("mail-pw", "unset", "CREDENTIALS_DIRECTORY is not set"),
        ("empty", "dir", "is empty"),
    ],
)
def test_credential_errors(
    name: str, setup: str, words: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "empty").write_text("\n")
    if setup == "dir":
        monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    else:
        monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    with pytest.raises(ConfigError, match=words):
        resolve({"password_credential": name})


def test_only_one_source() -> None:
    with pytest.raises(ConfigError, match="only one of"):
        resolve({"password": "a", "password_env": "B"})


def test_absent_is_none() -> None:
    assert resolve({}) is None


def test_wrong_type_never_echoes_the_value() -> None:
    with pytest.raises(ConfigError) as caught:
        resolve({"password": 123456})
    assert "123456" not in str(caught.value)
    # The words of every other reader, less the value.
    assert caught.value.detail.startswith("expected a non-empty string, got integer")


@pytest.mark.parametrize(
    ("value", "got"), [("", "got string ''"), (["a", 1], "got list"), (True, "got boolean")]
)
def test_a_wrong_secret_says_what_it_got_in_the_readers_words(value: object, got: str) -> None:
    with pytest.raises(ConfigError) as caught:
        resolve({"password_env": value})
    assert caught.value.key == "notifiers.mail.password_env"
    assert got in caught.value.detail


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604])
def test_inline_secret_in_a_readable_file_is_refused(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "config.toml"
    path.write_text("")
    path.chmod(mode)
    with pytest.raises(ConfigError) as caught:
        resolve({"password": "Zq8-inline-value"}, path)
    message = str(caught.value)
    assert f"chmod 600 {path}" in message
    assert "password_env" in message and "password_credential" in message
    assert "Zq8-inline-value" not in message


def test_inline_secret_in_a_private_file_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text("")
    path.chmod(0o600)
    assert resolve({"password": "inline"}, path) == "inline"


def test_a_readable_config_with_an_inline_secret_is_refused_at_start(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(
        '[database]\nurl = "sqlite://"\n\n[notifiers.console]\ntype = "console"\n\n'
        '[notifiers.hook]\ntype = "webhook"\nurl = "https://hooks.example.org/x"\n'
        'secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"\n'
    )
    path.chmod(0o644)
    config = load_config(path)
    with pytest.raises(ConfigError, match="chmod 600") as caught:
        build_notifiers(config)
    assert "MfKQ9r8G" not in str(caught.value)
    path.chmod(0o600)
    notifiers = build_notifiers(config)
    for notifier in notifiers.values():
        notifier.close()
