"""apprise notifier: an Apprise json:// URL pointing at a local HTTP receiver."""

from __future__ import annotations

from datetime import datetime, timedelta

import peers
import pytest

from calendar_svc.config import DisplayConfig
from calendar_svc.errors import ConfigError, RetryableNotifierError
from calendar_svc.notifiers import Reminder
from calendar_svc.notifiers.apprise import AppriseNotifier

# Apprise loads its plugins with `imghdr` (deprecated since Python 3.11), nothing we can change.
pytestmark = pytest.mark.filterwarnings("ignore:'imghdr' is deprecated:DeprecationWarning")


def reminder() -> Reminder:
    return peers.reminder(
        key="rem-a-1",
        calendar="trip",
        start=datetime(2025, 9, 3, 0, 0),
        offset=timedelta(days=1),
        display=DisplayConfig(timezone="America/New_York"),
        uid="trip-day",
        title="Visita a Quito",
        location="",
        city="Quito",
        start_tz="America/Guayaquil",
        all_day=True,
        categories=[],
    )


def test_json_url_delivers_title_and_body() -> None:
    with peers.HttpReceiver() as receiver:
        url = f"json://{peers.LOOPBACK}:{receiver.port}/apprise"
        AppriseNotifier("chat", {"type": "apprise", "urls": [url]}).send(reminder())
        [request] = receiver.wait_for(1)
    assert request.path == "/apprise"
    data = request.json()
    assert data["title"] == "In 1 day: Visita a Quito"
    assert data["message"] == "Wed 3 Sep 2025 · Quito"


def test_urls_from_env_with_templates(monkeypatch: pytest.MonkeyPatch) -> None:
    with peers.HttpReceiver() as one, peers.HttpReceiver() as two:
        monkeypatch.setenv(
            "TEST_APPRISE_URLS",
            f"json://{peers.LOOPBACK}:{one.port}/a, json://{peers.LOOPBACK}:{two.port}/b",
        )
        table = {
            "type": "apprise",
            "urls_env": "TEST_APPRISE_URLS",
            "title_template": "[$calendar] $title",
            "body_template": "$date ($uid)",
        }
        AppriseNotifier("chat", table).send(reminder())
        for receiver in (one, two):
            data = receiver.wait_for(1)[0].json()
            assert data["title"] == "[trip] Visita a Quito"
            assert data["message"] == "Wed 3 Sep 2025 (trip-day)"


def test_failure_is_retryable_with_apprise_reason() -> None:
    with peers.HttpReceiver(lambda _r: (500, {}, b"boom")) as receiver:
        url = f"json://{peers.LOOPBACK}:{receiver.port}/x"
        with pytest.raises(RetryableNotifierError, match="500"):
            AppriseNotifier("chat", {"type": "apprise", "urls": [url]}).send(reminder())


def test_unknown_url_is_a_config_error_without_the_url() -> None:
    with pytest.raises(ConfigError) as caught:
        AppriseNotifier("chat", {"type": "apprise", "urls": ["nosuchscheme://tok3n@x"]})
    assert "tok3n" not in str(caught.value)
    assert caught.value.key == "notifiers.chat.urls"
