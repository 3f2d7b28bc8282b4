"""A calendar's feed URL: built in one place, printed by ``feed-url`` and carried by reminders
(``$feed_url``, the JSON ``feed_url``), always with the calendar's own token."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import ClassVar

import pytest
from click.testing import CliRunner

from calendar_svc.cli.context import CliContext
from calendar_svc.cli.notify import notify_test
from calendar_svc.config import Config, default_config
from calendar_svc.notifiers import Notifier, Reminder
from calendar_svc.reminders.dispatcher import Dispatcher
from calendar_svc.reminders.planner import Planner
from calendar_svc.store import Store

SLUG = "rubio-2025-09"
PUBLIC = "https://cal.example.org/base"


def Z(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


class Recorder(Notifier):
    """Keeps what it was given; its body template is the feed URL alone."""

    keys: ClassVar = {}

    def __init__(self) -> None:
        super().__init__("console", {"type": "recorder", "body_template": "$feed_url"})
        self.got: list[tuple[Reminder, str]] = []
        self.lock = threading.Lock()

    def send(self, reminder: Reminder) -> None:
        with self.lock:
            self.got.append((reminder, self.render(reminder)[1]))


def with_public_url(store: Store, public_url: str) -> Config:
    base = default_config(store.url)
    return dataclasses.replace(base, feed=dataclasses.replace(base.feed, public_url=public_url))


@pytest.fixture
def sent(trip_store: Store, clock) -> Iterator[list[tuple[Reminder, str]]]:  # type: ignore[no-untyped-def]
    """Sends the bilateral's 15:00Z reminder through a dispatcher configured with PUBLIC."""

    def send(config: Config) -> list[tuple[Reminder, str]]:
        clock.set(Z("2025-09-02T12:00:00Z"))
        Planner(trip_store, config.reminders).plan()
        recorder = Recorder()
        dispatcher = Dispatcher(trip_store, config, {"console": recorder}, workers=2)
        made.append(dispatcher)
        clock.set(Z("2025-09-02T15:00:00.5Z"))
        while dispatcher.run_once():
            assert dispatcher.wait_idle(10)
        assert dispatcher.wait_idle(10)
        dispatcher.flush()
        return recorder.got

    made: list[Dispatcher] = []
    yield send  # type: ignore[misc]
    for dispatcher in made:
        dispatcher.stop(1)


def test_a_sent_reminder_carries_its_calendars_feed_url(trip_store: Store, sent) -> None:  # type: ignore[no-untyped-def]
    token = trip_store.get_calendar(SLUG).feed_token
    got = sent(with_public_url(trip_store, PUBLIC))
    assert got, "the due reminder was not sent"
    reminder, body = got[0]
    expected = f"{PUBLIC}/feeds/{token}/{SLUG}.ics"
    assert reminder.feed_url == expected
    assert body == expected  # $feed_url in a channel's template
    assert reminder.to_json()["feed_url"] == expected  # the webhook / MQTT payload


def test_the_feed_url_follows_a_rotated_token(trip_store: Store, sent) -> None:  # type: ignore[no-untyped-def]
    old = trip_store.get_calendar(SLUG).feed_token
    new = trip_store.rotate_token(SLUG)
    reminder, _ = sent(with_public_url(trip_store, PUBLIC))[0]
    assert reminder.feed_url == f"{PUBLIC}/feeds/{new}/{SLUG}.ics"
    assert old not in reminder.feed_url


def test_no_feed_url_when_the_public_url_has_port_0(trip_store: Store, sent) -> None:  # type: ignore[no-untyped-def]
    reminder, body = sent(with_public_url(trip_store, "http://127.0.0.1:0"))[0]
    assert reminder.feed_url is None and body == ""


def test_notify_test_sends_the_entrys_feed_url(tmp_path: Path) -> None:
    from conftest import TRIP

    from calendar_svc.importer import import_specs
    from calendar_svc.schedule_files import load_file

    database = f"sqlite:///{tmp_path}/cal.sqlite3"
    store = Store(database)
    store.migrate()
    with store.write() as session:
        import_specs(session, [load_file(TRIP)], now=store.clock())
    token = store.get_calendar(SLUG).feed_token
    store.close()
    config = tmp_path / "config.toml"
    config.write_text(
        f'[database]\nurl = "{database}"\n\n[feed]\npublic_url = "{PUBLIC}/"\n\n'
        '[notifiers.console]\ntype = "console"\nbody_template = "$feed_url"\n'
    )
    result = CliRunner().invoke(notify_test, ["console"], obj=CliContext(config_path=str(config)))
    assert result.exit_code == 0, result.output
    assert f" | {PUBLIC}/feeds/{token}/{SLUG}.ics [" in result.stdout
