"""smtp notifier against real aiosmtpd servers: STARTTLS, implicit TLS, plain, MIME."""

from __future__ import annotations

import email
import email.policy
import logging
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import peers
import pytest
from click.testing import Result

from calendar_svc.config import DisplayConfig
from calendar_svc.errors import ConfigError, PermanentNotifierError, RetryableNotifierError
from calendar_svc.notifiers import Reminder
from calendar_svc.notifiers.smtp import SmtpNotifier
from calendar_svc.timezones import UTC

FIXED = datetime(2025, 9, 2, 15, 0, tzinfo=UTC)


def reminder(key: str = "rem-1") -> Reminder:
    return peers.reminder(
        key=key,
        calendar="trip",
        display=DisplayConfig(),
        uid="sheinbaum",
        title="Reunión con Sheinbaum",
        url="https://example.org/e/1",
        categories=[],
    )


@pytest.fixture
def tls(tmp_path: Path) -> peers.Tls:
    return peers.make_tls(tmp_path)


def notifier(port: int, **overrides: Any) -> SmtpNotifier:
    table = {
        "type": "smtp",
        "host": peers.LOOPBACK,
        "port": port,
        "from": "cal@example.org",
        "to": ["a@example.org", "b@example.org"],
        "timeout": 3,
        **overrides,
    }
    return SmtpNotifier("mail", table, clock=lambda: FIXED)


def test_starttls_with_login_sends_one_proper_mime_message(tls: peers.Tls) -> None:
    with peers.smtp_server(starttls=tls.server_context, login=("cal", "pw")) as (rec, port):
        notifier(port, username="cal", password="pw", ca_file=str(tls.ca_file)).send(reminder())
        [mail] = rec.wait_for(1)
    assert sorted(mail.rcpt_tos) == ["a@example.org", "b@example.org"]  # one message for all
    msg = email.message_from_bytes(mail.data, policy=email.policy.default)
    assert msg["Subject"] == "In 1 hour: Reunión con Sheinbaum"
    subject_line = next(line for line in mail.data.splitlines() if line.startswith(b"Subject:"))
    assert subject_line.isascii() and b"=?utf-8?" in subject_line.lower()  # RFC 2047
    assert msg["Message-ID"] == "<rem-1@example.org>"
    assert msg["Date"] == "Tue, 02 Sep 2025 15:00:00 +0000"
    assert msg["Auto-Submitted"] == "auto-generated"
    assert msg.get_content_type() == "text/plain"
    assert msg.get_content_charset() == "utf-8"
    assert "Palacio Nacional, Mexico City" in msg.get_content()
    assert "https://example.org/e/1" in msg.get_content()


def test_odd_idempotency_key_gives_a_stable_valid_message_id(tls: peers.Tls) -> None:
    key = "trip|uid|20250902T160000Z|3600|mail"
    with peers.smtp_server(starttls=tls.server_context) as (rec, port):
        n = notifier(port, ca_file=str(tls.ca_file))
        n.send(reminder(key))
        n.send(reminder(key))
        first, second = rec.wait_for(2)
    ids = [email.message_from_bytes(m.data)["Message-ID"] for m in (first, second)]
    assert ids[0] == ids[1]
    assert "|" not in ids[0]


def test_server_without_starttls_is_refused_not_downgraded() -> None:
    with (
        peers.smtp_server() as (rec, port),
        pytest.raises(PermanentNotifierError, match="STARTTLS"),
    ):
        notifier(port, username="cal", password="pw").send(reminder())
    assert rec.messages == []


def test_untrusted_certificate_is_permanent(tls: peers.Tls) -> None:
    # No ca_file: the system store does not know our throwaway CA.
    with (
        peers.smtp_server(starttls=tls.server_context) as (rec, port),
        pytest.raises(PermanentNotifierError, match="certificate"),
    ):
        notifier(port).send(reminder())
    assert rec.messages == []


def test_implicit_tls(tls: peers.Tls) -> None:
    with peers.smtp_server(implicit_tls=tls.server_context) as (rec, port):
        notifier(port, security="tls", ca_file=str(tls.ca_file)).send(reminder())
        assert len(rec.wait_for(1)) == 1


def test_plain_only_when_configured() -> None:
    with peers.smtp_server() as (rec, port):
        notifier(port, security="plain").send(reminder())
        assert len(rec.wait_for(1)) == 1


def test_wrong_password_is_permanent_and_not_echoed(tls: peers.Tls) -> None:
    with peers.smtp_server(starttls=tls.server_context, login=("cal", "right")) as (_, port):
        n = notifier(port, username="cal", password="wrong-pässword", ca_file=str(tls.ca_file))
        with pytest.raises(PermanentNotifierError) as caught:
            n.send(reminder())
    assert "wrong-pässword" not in str(caught.value)


def test_some_recipients_refused_is_sent_with_a_warning(
    tls: peers.Tls, caplog: pytest.LogCaptureFixture
) -> None:
    """The others got it: that is a send (a retry would give them a duplicate), and the
    refused address is named in a warning."""
    with peers.smtp_server(starttls=tls.server_context) as (rec, port):
        n = notifier(port, ca_file=str(tls.ca_file), to=["a@example.org", "x@invalid.example"])
        with caplog.at_level(logging.WARNING, logger="calendar_svc.notifiers.smtp"):
            n.send(reminder())
        assert rec.wait_for(1)[0].rcpt_tos == ["a@example.org"]
    [warning] = [r for r in caplog.records if r.getMessage() == "notifier.recipients_refused"]
    assert "x@invalid.example (5" in warning.refused and warning.delivered == 1


def test_refused_connection_is_retryable() -> None:
    with pytest.raises(RetryableNotifierError):
        notifier(peers.free_port(), security="plain").send(reminder())


def test_password_from_env_and_credential(
    tls: peers.Tls, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_SMTP_PW", "from-env")
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "smtp-password").write_text("from-cred\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    for secret, key, value in (
        ("from-env", "password_env", "TEST_SMTP_PW"),
        ("from-cred", "password_credential", "smtp-password"),
    ):
        with peers.smtp_server(starttls=tls.server_context, login=("cal", secret)) as (rec, port):
            notifier(port, username="cal", ca_file=str(tls.ca_file), **{key: value}).send(
                reminder()
            )
            assert len(rec.wait_for(1)) == 1


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        ({"to": []}, "notifiers.mail.to"),
        ({"to": ["not an address"]}, "notifiers.mail.to"),
        ({"from": "nobody"}, "notifiers.mail.from"),
        ({"security": "ssl"}, "notifiers.mail.security"),
        ({"username": "cal"}, "notifiers.mail.username"),
        ({"ca_file": "/nonexistent/ca.pem"}, "notifiers.mail.ca_file"),
        ({"timeout": "soon"}, "notifiers.mail.timeout"),
    ],
)
def test_config_errors_name_the_key(overrides: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        notifier(25, **overrides)
    assert caught.value.key == key


def test_smtp_accepts_display_names(run_cli: Callable[..., Result], workdir: Path) -> None:
    config = workdir / "config.toml"
    config.write_text(
        config.read_text()
        + '\n[notifiers.mail]\ntype = "smtp"\nhost = "127.0.0.1"\nport = 2525\nsecurity = "plain"\n'
        'from = "Calendar <cal@example.org>"\nto = ["Ops Team <ops@example.org>"]\n'
    )
    # Building the channel validates the addresses; the send itself then fails to connect.
    result = run_cli("notify-test", "mail", "--sample")
    assert "is not an e-mail address" not in result.output
    assert result.exit_code == 1, result.output
