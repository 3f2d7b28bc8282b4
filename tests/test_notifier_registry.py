"""The registry: entry-point discovery, a real third-party plugin, table validation."""

from __future__ import annotations

import importlib
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import ClassVar

import peers
import pytest
from click.testing import Result

from calendar_svc.config import parse_config
from calendar_svc.errors import ConfigError
from calendar_svc.notifiers import (
    Key,
    Notifier,
    Reminder,
    available_types,
    build_notifier,
    build_notifiers,
)
from calendar_svc.notifiers.console import ConsoleNotifier

BUILTINS = ["apprise", "console", "mqtt", "ntfy", "smtp", "webhook"]

PLUGIN = '''
from calendar_svc.notifiers import Key, Notifier

SENT = []


class MemoNotifier(Notifier):
    """Keeps reminders in a list: a stand-in for someone's Matrix or Signal notifier."""

    keys = {"room": Key(str), "loud": Key(bool, False)}

    def send(self, reminder):
        SENT.append((self.settings["room"], self.render(reminder)))


class NotANotifier:
    pass
'''


@pytest.fixture
def plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A third-party distribution on sys.path declaring the notifier types ``memo``,
    ``broken`` (module missing) and ``bogus`` (not a Notifier)."""
    site = tmp_path / "site"
    site.mkdir()
    module = f"cs_memo_plugin_{tmp_path.name.replace('-', '_')}"
    (site / f"{module}.py").write_text(PLUGIN)
    dist = site / "cs_memo_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: cs-memo-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        textwrap.dedent(f"""\
        [calendar_svc.notifiers]
        memo = {module}:MemoNotifier
        broken = {module}_missing:Nope
        bogus = {module}:NotANotifier
        """)
    )
    monkeypatch.syspath_prepend(str(site))  # also invalidates importlib's caches
    yield module
    sys.modules.pop(module, None)
    monkeypatch.undo()
    importlib.invalidate_caches()


def test_builtins_are_registered_through_entry_points() -> None:
    assert set(BUILTINS) <= set(available_types())


def test_unknown_type_lists_the_available_ones() -> None:
    with pytest.raises(ConfigError) as caught:
        build_notifier("pager", {"type": "pager"})
    assert caught.value.key == "notifiers.pager.type"
    for name in BUILTINS:
        assert name in str(caught.value)


def test_third_party_notifier_used_from_config(plugin: str, tmp_path: Path) -> None:
    assert "memo" in available_types()
    config = parse_config(
        {
            "database": {"url": "sqlite://"},
            "reminders": {"channels": ["team"]},
            "notifiers": {
                "team": {"type": "memo", "room": "#ops", "title_template": "$lead: $title"}
            },
        },
        path=None,
    )
    notifiers = build_notifiers(config)
    assert type(notifiers["team"]).__name__ == "MemoNotifier"
    notifiers["team"].send(peers.reminder())
    sent = sys.modules[plugin].SENT
    assert sent == [
        (
            "#ops",
            (
                "In 1 hour: Bilateral meeting with President Claudia Sheinbaum",
                "Tue 2 Sep 2025, 10:00 CST (UTC-06:00) — 12:00 EDT (UTC-04:00) in Washington · "
                "Palacio Nacional, Mexico City",
            ),
        )
    ]


def test_plugin_table_is_validated_by_its_keys(plugin: str) -> None:
    with pytest.raises(ConfigError) as caught:
        build_notifier("team", {"type": "memo"})
    assert caught.value.key == "notifiers.team.room"
    assert "missing" in str(caught.value)


def test_plugin_that_cannot_be_imported(plugin: str) -> None:
    with pytest.raises(ConfigError, match="cannot be imported"):
        build_notifier("x", {"type": "broken"})


def test_plugin_that_is_not_a_notifier(plugin: str) -> None:
    with pytest.raises(ConfigError, match="not a calendar_svc Notifier"):
        build_notifier("x", {"type": "bogus"})


def test_plugin_is_gone_after_cleanup() -> None:
    assert "memo" not in available_types()


@pytest.mark.parametrize(
    ("table", "key", "words"),
    [
        ({"type": "console", "colour": "red"}, "notifiers.out.colour", "unknown key"),
        ({"type": "console", "stream": "printer"}, "notifiers.out.stream", "expected one of"),
        (
            {"type": "console", "title_template": "$nope"},
            "notifiers.out.title_template",
            "unknown variable $nope",
        ),
        (
            {"type": "console", "body_template": "100$"},
            "notifiers.out.body_template",
            "invalid template",
        ),
        (
            {"type": "webhook", "url": "https://e.org", "timeout": True},
            "notifiers.out.timeout",
            "expected a number",
        ),
        (
            {"type": "webhook", "url": "https://e.org", "secret": "a", "secret_env": "B"},
            "notifiers.out.secret_env",
            "only one of",
        ),
        ({}, "notifiers.out.type", "missing"),
    ],
)
def test_table_validation_names_the_table_and_key(
    table: dict[str, object], key: str, words: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        build_notifier("out", table)
    assert caught.value.key == key
    assert words in str(caught.value)


def test_build_notifiers_closes_what_it_built_when_one_fails(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    closed: list[str] = []
    monkeypatch.setattr(ConsoleNotifier, "close", lambda self: closed.append(self.name))
    config = parse_config(
        {
            "database": {"url": "sqlite://"},
            "reminders": {"channels": ["a"]},
            "notifiers": {"a": {"type": "console"}, "b": {"type": "nope"}},
        },
        path=None,
    )
    with pytest.raises(ConfigError):
        build_notifiers(config)
    assert closed == ["a"]


def test_a_minimal_subclass_is_enough() -> None:
    class Bare(Notifier):
        keys: ClassVar = {"where": Key(str, "here")}

        def send(self, reminder: Reminder) -> None:
            pass

    bare = Bare("b", {"type": "bare"})
    assert bare.settings["where"] == "here"
    assert repr(bare) == "<Bare 'b'>"
    bare.close()


@pytest.mark.parametrize("kind", ["smtp", "mqtt"])
def test_notifier_port_out_of_range_is_a_config_error(
    run_cli: Callable[..., Result], add_to_config: Callable[[str], None], kind: str
) -> None:
    """`port = -1` (or 70000) is accepted and every send then fails as *retryable*
    ("gaierror" / "Invalid port number"); feed.port is range-checked, notifier ports not."""
    extra = (
        'security = "plain"\nfrom = "calendar@example.org"\nto = ["ops@example.org"]'
        if kind == "smtp"
        else 'topic = "calendar/reminders"'
    )
    add_to_config(
        f'\n[notifiers.chan]\ntype = "{kind}"\nhost = "127.0.0.1"\nport = -1\n{extra}\n',
    )
    result = run_cli("notify-test", "chan", "--sample")
    assert result.exit_code == 2, result.output
    assert "notifiers.chan.port" in result.output


def test_notifier_type_is_required_as_documented(
    run_cli: Callable[..., Result], workdir: Path
) -> None:
    """README's config table says `notifiers.NAME.type` is required; a table without it
    is one error naming the key, and the README must not claim a default."""
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    row = next(line for line in readme.splitlines() if line.startswith("| `notifiers.NAME.type`"))
    assert "required" in row
    config = workdir / "config.toml"
    config.write_text(
        config.read_text().replace(
            '[notifiers.console]\ntype = "console"\n', '[notifiers.console]\nstream = "stdout"\n'
        )
    )
    result = run_cli("notify-test", "console", "--sample")
    assert result.exit_code == 2, result.output
    assert "notifiers.console.type" in result.output and "missing" in result.output
