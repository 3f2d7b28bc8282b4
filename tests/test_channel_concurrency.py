"""Per-channel concurrency: each channel sends on threads of its own, ``concurrency`` of
them, so a receiver that hangs holds up only its own channel; the HTTP notifiers keep
one pooled client per channel, reused across sends and closed with the notifier; the
key is checked where the config is loaded. Real HTTP receivers on loopback (tests/peers.py).
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import peers
import pytest
from peers import HttpReceiver, HttpRequest, Response
from waiting import wait_for

from calendar_svc.config import Config, default_config, load_config
from calendar_svc.errors import ConfigError
from calendar_svc.importer import import_specs
from calendar_svc.notifiers import Notifier, build_notifier, close_all
from calendar_svc.reminders.dispatcher import Dispatcher
from calendar_svc.reminders.planner import Planner
from calendar_svc.schedule_files import parse_schedule
from calendar_svc.store import Store

# More than the one shared pool of 16 send threads there was before channels had their
# own: with it, a hung receiver's rows took every thread and the other channel waited.
ENTRIES = 20


def Z(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def webhook(name: str, url: str, **more: Any) -> Notifier:
    table = {"type": "webhook", "url": url, "allow_private": True, "timeout": 30, **more}
    return build_notifier(name, table)


@pytest.fixture
def hung() -> Iterator[tuple[HttpReceiver, threading.Event]]:
    """A receiver that answers nothing until the test lets it."""
    let_go = threading.Event()

    def answer_later(_: HttpRequest) -> Response:
        let_go.wait(30)
        return 200, {}, b"{}"

    with HttpReceiver(answer_later) as receiver:
        yield receiver, let_go
        let_go.set()


def burst_on_two_channels(store: Store, clock: Any) -> Config:
    """``ENTRIES`` reminders due at 16:00Z, each on channels ``slow`` and ``fast``."""
    entries = [
        {"uid": f"e{i:02d}", "title": f"Entry {i}", "start": datetime(2025, 9, 2, 10, 0)}
        for i in range(ENTRIES)
    ]
    schedule = {
        "calendar": {"slug": "two", "name": "Two", "timezone": "America/Mexico_City"},
        "entries": [{**e, "reminders": ["PT0S"]} for e in entries],
    }
    with store.write() as session:
        import_specs(session, [parse_schedule(schedule, source="test")], now=store.clock())
    base = default_config(store.url)
    config = dataclasses.replace(
        base, reminders=dataclasses.replace(base.reminders, channels=("slow", "fast"))
    )
    clock.set(Z("2025-09-02T15:59:00Z"))
    Planner(store, config.reminders).plan()
    clock.set(Z("2025-09-02T16:00:00Z"))
    return config


def test_a_hung_receiver_holds_up_only_its_own_channel(store: Store, clock, hung) -> None:
    slow_receiver, let_go = hung
    config = burst_on_two_channels(store, clock)
    with HttpReceiver() as fast_receiver:
        notifiers = {
            "slow": webhook("slow", slow_receiver.url, concurrency=2),
            "fast": webhook("fast", fast_receiver.url, concurrency=3),
        }
        dispatcher = Dispatcher(store, config, notifiers)
        dispatcher.start()
        dispatcher.wake()
        try:
            # Every reminder of the fast channel arrives while the slow one answers none.
            fast = fast_receiver.wait_for(ENTRIES, timeout=20)
            assert len({r.header("webhook-id") for r in fast}) == ENTRIES
            # The slow channel has exactly its two sends in flight, no more.
            slow_receiver.wait_for(2)
            assert len(slow_receiver.requests) == 2
            # Once the fast sends are written, what is left is the slow channel's, claimed
            # and waiting in its own lane.
            wait_for(
                lambda: dispatcher.inflight == ENTRIES,
                10,
                lambda: f"{dispatcher.inflight} in flight, not the slow channel's {ENTRIES}",
            )
            let_go.set()
            slow = slow_receiver.wait_for(ENTRIES, timeout=20)
            assert len({r.header("webhook-id") for r in slow}) == ENTRIES
            assert dispatcher.wait_idle(10)
        finally:
            dispatcher.stop(5)
            close_all(notifiers)
    # Two connections at most carried the slow channel's sends: its pool is its concurrency.
    assert len({r.peer for r in slow_receiver.requests}) <= 2


def test_connections_are_kept_alive_per_send_thread_and_closed_with_the_notifier() -> None:
    """A channel holds at most one connection per send thread, reused send after send,
    and closing the notifier (shutdown, reload) closes every one of them."""
    with HttpReceiver() as receiver:
        notifier = webhook("hook", receiver.url, concurrency=3)
        clients = notifier.clients  # type: ignore[attr-defined]

        def five_sends() -> None:
            for i in range(5):
                notifier.send(peers.reminder(key=f"rem-{threading.get_ident()}-{i}"))

        threads = [threading.Thread(target=five_sends) for _ in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(20)
        requests = receiver.wait_for(15)
        # Three threads, three connections: each carried its thread's five sends.
        peers_used = {r.peer for r in requests}
        assert len(peers_used) == 3 and clients.open == 3
        five_sends()  # a thread's second burst reuses its connection
        assert len({r.peer for r in receiver.wait_for(20)}) == 4
        notifier.close()
        assert clients.open == 0
        receiver.wait_closed({r.peer for r in receiver.requests})


@pytest.mark.parametrize("value", [0, -1, 257, "8", 2.5, True])
def test_a_bad_concurrency_stops_the_config_loading(tmp_path: Path, value: Any) -> None:
    config = tmp_path / "config.toml"
    written = repr(value).lower() if isinstance(value, bool) else repr(value).replace("'", '"')
    config.write_text(
        f'[reminders]\nchannels = ["hook"]\n[notifiers.hook]\ntype = "console"\n'
        f"concurrency = {written}\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_config(config)
    message = str(caught.value)
    assert "notifiers.hook.concurrency" in message
    assert str(config) in message


def test_concurrency_is_read_for_every_notifier(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(
        '[reminders]\nchannels = ["hook"]\n[notifiers.hook]\ntype = "console"\nconcurrency = 3\n'
    )
    loaded = load_config(config)
    notifier = build_notifier("hook", loaded.notifiers["hook"], config_path=config)
    assert notifier.concurrency == 3
    assert build_notifier("plain", {"type": "console"}).concurrency == 16
