"""One validation vocabulary: config.toml, notifier tables and schedule files report a mistake
in the same shape and the same words, through the same typed readers."""

from __future__ import annotations

import tomllib
from datetime import time, timedelta
from typing import Any

import pytest

import calendar_svc.notifiers as notifiers
from calendar_svc import validation
from calendar_svc.config import parse_config
from calendar_svc.errors import ConfigError, InputError, LocatedError
from calendar_svc.notifiers import build_notifier
from calendar_svc.schedule_files import parse_schedule
from calendar_svc.validation import Place, Table

HEADER = '[calendar]\nslug = "c"\nname = "C"\ntimezone = "America/Mexico_City"\n'


def schedule_error(body: str) -> InputError:
    with pytest.raises(InputError) as caught:
        parse_schedule(tomllib.loads(HEADER + body), source="f.toml")
    return caught.value


def config_error(data: dict[str, Any]) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        parse_config({"database": {"url": "sqlite://"}, **data}, path=None)
    return caught.value


def notifier_error(table: dict[str, Any]) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        build_notifier("out", table)
    return caught.value


ENTRY = '[[entries]]\nuid = "e"\ntitle = "E"\nstart = 2025-09-02T10:00:00\n'


@pytest.mark.parametrize(
    ("config", "notifier", "schedule", "words"),
    [
        (  # a value of the wrong type
            {"feed": {"port": "8080"}},
            {"type": "smtp", "host": "h", "from": "a@b.c", "to": ["d@e.f"], "port": "25"},
            ENTRY + "city = 5\n",
            "expected {}, got {}",
        ),
        (  # a key nobody knows
            {"feed": {"prot": 8080}},
            {"type": "console", "colour": "red"},
            ENTRY + 'locaton = "x"\n',
            "unknown key (known keys here: ",
        ),
        (  # a value outside its choices
            {"logging": {"format": "xml"}},
            {"type": "console", "stream": "printer"},
            ENTRY + 'status = "postponed"\n',
            "expected one of ",
        ),
    ],
    ids=["type", "unknown", "choice"],
)
def test_one_mistake_reads_the_same_in_all_three(
    config: dict[str, Any], notifier: dict[str, Any], schedule: str, words: str
) -> None:
    errors: list[LocatedError] = [
        config_error(config),
        notifier_error(notifier),
        schedule_error(schedule),
    ]
    for error in errors:
        assert error.exit_code == 2
        assert error.location and error.field, error  # where, then which key
        if words == "expected {}, got {}":
            assert "expected a" in error.detail and ", got " in error.detail
        else:
            assert error.detail.startswith(words), error.detail


def test_the_shapes_name_file_place_and_field() -> None:
    config = ConfigError("bad", file="c.toml", location="notifiers.phone", field="topic")
    assert str(config) == "c.toml: notifiers.phone.topic: bad"
    assert config.key == "notifiers.phone.topic"
    assert ConfigError("bad", key="feed.port").key == "feed.port"
    schedule = InputError("bad", file="f.toml", location="e", field="start")
    assert str(schedule) == "f.toml: entry e: field 'start': bad"
    assert str(InputError("bad")) == "bad"


def test_the_notifier_type_is_checked_by_one_function() -> None:
    """config.toml and a table given to the registry say the same about a bad type."""
    for table in ({"host": "a"}, {"type": 3}):
        from_config = config_error({"notifiers": {"out": table}})
        from_registry = notifier_error(table)
        assert from_config.key == from_registry.key == "notifiers.out.type"
        assert from_config.detail == from_registry.detail


@pytest.mark.parametrize(
    ("reader", "value", "result"),
    [
        (validation.integer(0, 65535), 8080, 8080),
        (validation.number(0, 10), 3, 3.0),
        (validation.one_of("text", "json", fold_case=True), "JSON", "json"),
        (validation.duration(positive=True), "PT15M", timedelta(minutes=15)),
        (validation.durations, ["PT1H", "P1D"], (timedelta(hours=1), timedelta(days=1))),
        (validation.clock_time, "9:30", time(9, 30)),
        (validation.zone, "America/Guayaquil", "America/Guayaquil"),
        (validation.strings, ["a", "b"], ["a", "b"]),
        (validation.string_table, {"X-Team": "ops"}, {"X-Team": "ops"}),
    ],
)
def test_readers_return_typed_values(reader: Any, value: Any, result: Any) -> None:
    assert reader(value) == result


@pytest.mark.parametrize(
    ("reader", "value", "words"),
    [
        (validation.integer(0, 65535), True, "expected an integer, got boolean True"),
        (validation.integer(0, 65535), 70000, "must be between 0 and 65535, got 70000"),
        (validation.integer(minimum=1), 0, "must be at least 1, got 0"),
        (validation.number(), "5", "expected a number, got string '5'"),
        (validation.one_of(0, 1), True, "expected one of 0, 1, got True"),
        (validation.duration(positive=True), "PT0S", "must be longer than zero"),
        (validation.zone, "America/Quito", "America/Guayaquil"),
        (validation.strings, ["a", 3], "expected a list of strings, found 3"),
        (validation.clock_time, "9am", 'expected a local time such as "09:00"'),
    ],
)
def test_readers_say_what_they_expected(reader: Any, value: Any, words: str) -> None:
    with pytest.raises(ValueError) as caught:
        reader(value)
    assert words in str(caught.value)


def test_a_table_refuses_what_nobody_read_and_names_where() -> None:
    place = Place(ConfigError, "c.toml", "feed")
    table = Table({"port": 1, "prot": 2}, place)
    assert table.read("port", validation.integer()) == 1
    with pytest.raises(ConfigError) as caught:
        table.done()
    assert caught.value.key == "feed.prot" and "known keys here: port" in str(caught.value)
    with pytest.raises(ConfigError, match=r"c\.toml: feed\.host: required, and missing"):
        table.read("host", validation.text)
    with pytest.raises(ConfigError, match="feed: expected a table, got integer 3"):
        Table(3, place)


def test_plugin_authors_import_from_the_package() -> None:
    """README's "Write your own notifier" imports, and nothing else, from the public face."""
    assert {"Key", "Notifier", "Reminder", "ReminderEntry", "TEMPLATE_VARIABLES"} <= set(
        notifiers.__all__
    )
    for name in notifiers.__all__:
        assert getattr(notifiers, name) is not None
