"""Structured logs (calendar_svc.logs): one line per event, key=value or JSON, no secrets."""

from __future__ import annotations

import json
import logging
import re
import secrets
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from calendar_svc.logs import log_event, redact_token, setup_logging
from calendar_svc.timezones import UTC

TOUCHED = ("apscheduler", "uvicorn", "uvicorn.error", "uvicorn.access")
TEXT_LINE = re.compile(
    r"^ts=\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z level=(\w+) logger=(\S+) msg=(.*)$"
)


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """setup_logging rewires the root logger; put everything back for the next test."""
    root = logging.getLogger()
    saved_root = (root.handlers[:], root.level)
    saved = {
        name: (lg.handlers[:], lg.level, lg.propagate, lg.disabled)
        for name in TOUCHED
        for lg in [logging.getLogger(name)]
    }
    yield
    root.handlers[:], root.level = saved_root[0], saved_root[1]
    for name, (handlers, level, propagate, disabled) in saved.items():
        lg = logging.getLogger(name)
        lg.handlers[:] = handlers
        lg.setLevel(level)
        lg.propagate = propagate
        lg.disabled = disabled


@pytest.fixture
def logger() -> logging.Logger:
    return logging.getLogger("calendar_svc.test")


def lines(capsys: pytest.CaptureFixture[str]) -> list[str]:
    captured = capsys.readouterr()
    assert captured.out == "", "logs go to stderr only"
    return captured.err.splitlines()


def level_of(line: str) -> str:
    match = TEXT_LINE.match(line)
    assert match, line
    return match.group(1)


# --- key=value text ---------------------------------------------------------------------


def test_text_line_shape(logger: logging.Logger, capsys: pytest.CaptureFixture[str]) -> None:
    setup_logging("info", "text")
    log_event(logger, "reminder.sent", uid="sheinbaum-bilateral", channel="console")
    [line] = lines(capsys)
    match = TEXT_LINE.match(line)
    assert match, line
    assert match.groups() == (
        "info",
        "calendar_svc.test",
        "reminder.sent uid=sheinbaum-bilateral channel=console",
    )


def test_text_timestamp_is_utc_milliseconds(
    logger: logging.Logger, capsys: pytest.CaptureFixture[str]
) -> None:
    setup_logging("info", "text")
    before = datetime.now(UTC)
    log_event(logger, "tick")
    after = datetime.now(UTC)
    [line] = lines(capsys)
    stamp = line.split()[0].removeprefix("ts=")
    logged = datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    # Truncated to the millisecond, never rounded up past the event.
    assert before.replace(microsecond=before.microsecond // 1000 * 1000) <= logged <= after


def test_text_quotes_values_that_need_it(
    logger: logging.Logger, capsys: pytest.CaptureFixture[str]
) -> None:
    setup_logging("info", "text")
    log_event(
        logger,
        "entry.imported",
        title="Flight to Quito",
        location='Palacio "Nacional"',
        query="city=Quito",
        description="two\nlines",
        tab="a\tb",
        empty="",
        plain="Mexico_City",
    )
    [line] = lines(capsys)  # the newline in a value did not split the event
    assert 'title="Flight to Quito"' in line
    assert r'location="Palacio \"Nacional\""' in line
    assert 'query="city=Quito"' in line
    assert r'description="two\nlines"' in line
    assert r'tab="a\tb"' in line
    assert 'empty=""' in line
    assert " plain=Mexico_City" in line


def test_text_keeps_non_ascii(logger: logging.Logger, capsys: pytest.CaptureFixture[str]) -> None:
    setup_logging("info", "text")
    log_event(logger, "entry.imported", city="Ciudad de México", who="Noboa")
    [line] = lines(capsys)
    assert 'city="Ciudad de México" who=Noboa' in line


def test_text_formats_datetimes_as_iso(
    logger: logging.Logger, capsys: pytest.CaptureFixture[str]
) -> None:
    setup_logging("info", "text")
    log_event(logger, "reminder.planned", due=datetime(2025, 9, 2, 15, 0, tzinfo=UTC), attempt=2)
    [line] = lines(capsys)
    assert line.endswith(" due=2025-09-02T15:00:00+00:00 attempt=2")


def test_text_message_arguments_are_interpolated(
    logger: logging.Logger, capsys: pytest.CaptureFixture[str]
) -> None:
    setup_logging("info", "text")
    logger.info("planned %d reminders", 3)
    [line] = lines(capsys)
    assert line.endswith(' msg="planned 3 reminders"')


def test_text_exception_stays_on_one_line(
    logger: logging.Logger, capsys: pytest.CaptureFixture[str]
) -> None:
    setup_logging("info", "text")
    try:
        raise ValueError("bad offset")
    except ValueError:
        logger.exception("planner.failed")
    [line] = lines(capsys)
    exc = line.partition(" exc=")[2]
    text = json.loads(exc)
    assert text.startswith("Traceback (most recent call last):")
    assert text.rstrip().endswith("ValueError: bad offset")


def test_private_extras_are_left_out(
    logger: logging.Logger, capsys: pytest.CaptureFixture[str]
) -> None:
    setup_logging("info", "text")
    log_event(logger, "feed.served", slug="rubio-2025-09", _internal="x")
    [line] = lines(capsys)
    assert "slug=rubio-2025-09" in line
    assert "_internal" not in line


# --- JSON -------------------------------------------------------------------------------


def test_json_line(logger: logging.Logger, capsys: pytest.CaptureFixture[str]) -> None:
    setup_logging("info", "json")
    log_event(
        logger,
        "reminder.sent",
        uid="noboa-meeting",
        channel="mail",
        attempts=1,
        late=False,
        due=datetime(2025, 9, 4, 15, 0, tzinfo=UTC),
        where=Path("/tmp/x"),
        title="Quito\n“hi”",
    )
    [line] = lines(capsys)
    data = json.loads(line)
    assert set(data) == {
        "ts",
        "level",
        "logger",
        "msg",
        "uid",
        "channel",
        "attempts",
        "late",
        "due",
        "where",
        "title",
    }
    assert data["level"] == "info"
    assert data["logger"] == "calendar_svc.test"
    assert data["msg"] == "reminder.sent"
    assert (data["uid"], data["channel"], data["attempts"], data["late"]) == (
        "noboa-meeting",
        "mail",
        1,
        False,
    )
    assert data["due"] == "2025-09-04T15:00:00+00:00"
    assert data["where"] == "/tmp/x"  # not JSON-native: written as str()
    assert data["title"] == "Quito\n“hi”"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00", data["ts"])


def test_json_exception(logger: logging.Logger, capsys: pytest.CaptureFixture[str]) -> None:
    setup_logging("info", "json")
    try:
        raise RuntimeError("smtp down")
    except RuntimeError:
        logger.exception("reminder.retry")
    [line] = lines(capsys)
    data = json.loads(line)
    assert data["level"] == "error"
    assert "RuntimeError: smtp down" in data["exc"]


# --- levels -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "configured, shown",
    [
        ("debug", ["debug", "info", "warning", "error"]),
        ("info", ["info", "warning", "error"]),
        ("warning", ["warning", "error"]),
        ("error", ["error"]),
    ],
)
def test_levels_are_honoured(
    logger: logging.Logger, capsys: pytest.CaptureFixture[str], configured: str, shown: list[str]
) -> None:
    setup_logging(configured, "text")
    for level in ("debug", "info", "warning", "error"):
        log_event(logger, f"event.{level}", getattr(logging, level.upper()))
    assert [level_of(line) for line in lines(capsys)] == shown


def test_apscheduler_chatter_is_quiet_below_warning(capsys: pytest.CaptureFixture[str]) -> None:
    setup_logging("debug", "text")
    scheduler = logging.getLogger("apscheduler.scheduler")
    scheduler.info("Running job ...")
    scheduler.warning("Run time of job was missed by 0:00:02")
    [line] = lines(capsys)
    assert "level=warning logger=apscheduler.scheduler" in line


def test_access_log_is_off_because_feed_paths_hold_tokens(
    capsys: pytest.CaptureFixture[str],
) -> None:
    setup_logging("debug", "text")
    token = secrets.token_urlsafe(32)
    logging.getLogger("uvicorn.access").info('127.0.0.1 - "GET /feeds/%s/trip.ics"', token)
    logging.getLogger("uvicorn.error").info("Uvicorn running on http://127.0.0.1:8080")
    [line] = lines(capsys)
    assert "logger=uvicorn.error" in line
    assert token not in line


def test_setup_twice_does_not_duplicate_lines(
    logger: logging.Logger, capsys: pytest.CaptureFixture[str]
) -> None:
    setup_logging("info", "text")
    setup_logging("info", "json")  # a SIGHUP reload calls it again
    log_event(logger, "config.reloaded")
    [line] = lines(capsys)
    assert json.loads(line)["msg"] == "config.reloaded"


# --- secrets ----------------------------------------------------------------------------


@pytest.mark.parametrize("length", [1, 3, 4, 5, 16, 43, 100])
def test_redact_token_keeps_at_most_four_characters(length: int) -> None:
    token = secrets.token_urlsafe(length)[:length]
    shown = redact_token(token)
    kept = shown.removesuffix("…")
    assert len(kept) <= 4
    assert token.startswith(kept)
    assert shown.endswith("…")


def test_redact_token_of_nothing() -> None:
    assert redact_token("") == "<none>"


def test_a_redacted_token_does_not_reach_the_log(
    logger: logging.Logger, capsys: pytest.CaptureFixture[str]
) -> None:
    setup_logging("debug", "json")
    token = secrets.token_urlsafe(32)
    log_event(logger, "feed.not_found", slug="rubio-2025-09", token=redact_token(token))
    [line] = lines(capsys)
    assert json.loads(line)["token"] == token[:4] + "…"
    assert token not in line


def test_text_quotes_control_characters(
    logger: logging.Logger, capsys: pytest.CaptureFixture[str]
) -> None:
    setup_logging("info", "text")
    log_event(logger, "entry.imported", title="evil\rforged", esc="\x1b[2J")
    err = capsys.readouterr().err
    assert "\r" not in err
    assert "\x1b" not in err


def test_fields_named_like_record_attributes(
    logger: logging.Logger, capsys: pytest.CaptureFixture[str]
) -> None:
    setup_logging("info", "text")
    log_event(logger, "notifier.built", name="mail")
    assert "mail" in capsys.readouterr().err
