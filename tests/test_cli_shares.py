"""The share-link commands' words: what they print, and their errors (exit code 2, one line).
Their effect on a running server is tests/test_share_links_http.py."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import Result

SLUG = "rubio-2025-09"
Cli = Callable[..., Result]


@pytest.fixture
def cli(run_cli: Cli, workdir: Path) -> Cli:
    config = workdir / "config.toml"
    config.write_text(
        config.read_text().replace("port = 0", 'port = 0\npublic_url = "https://cal.example.org"')
    )
    result = run_cli("import", f"schedules/{SLUG}.toml")
    assert result.exit_code == 0, result.output
    return run_cli


def test_share_prints_the_urls_once_and_how_to_revoke(cli: Cli) -> None:
    result = cli(
        "share", SLUG, "--name", "Embassy Quito", "--city", "quito", "--expires", "2099-09-30"
    )
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == (
        f"Share link 'Embassy Quito' for {SLUG} (only entries in Quito; "
        "until Thu 2099-10-01 00:00 CST (UTC-06:00))."
    )
    assert "only a digest of the token is kept" in lines[1]
    assert [line.split()[0] for line in lines[2:5]] == ["page:", "feed:", "webcal:"]
    assert lines[5] == f"Revoke it with: calendar-svc unshare {SLUG} 'Embassy Quito'"
    token = lines[3].split("/")[-2]
    listed = cli("shares", SLUG, "--json")
    assert token not in listed.stdout
    (link,) = json.loads(listed.stdout)
    assert link["cities"] == ["Quito"] and link["expires"] == "2099-10-01T06:00:00Z"
    assert link["state"] == "active" and link["fetches"] == 0 and link["current"] is False

    as_json = json.loads(cli("share", SLUG, "--name", "Family", "--json").stdout)
    assert as_json["feed_url"].startswith("https://cal.example.org/feeds/")
    assert as_json["webcal"].startswith("webcal://cal.example.org/feeds/")
    assert as_json["page_url"].startswith("https://cal.example.org/c/")


def test_shares_table(cli: Cli) -> None:
    assert cli("shares", SLUG).stdout == (
        f"{SLUG} has no share links (calendar-svc share {SLUG} --name NAME).\n"
    )
    cli("share", SLUG, "--name", "Press office", "--category", "press", "--category", "MEETING")
    table = cli("shares", SLUG).stdout.splitlines()
    assert table[0] == f"Share links of {SLUG} (times in America/Mexico_City):"
    assert table[1].split() == [
        "NAME", "STATE", "CREATED", "EXPIRES", "ONLY", "FETCHES", "LAST", "FETCH", "CURRENT",
        "CLIENT",
    ]  # fmt: skip
    assert table[2].startswith("Press office  active")
    assert table[2].split()[-5:] == ["meeting", "0", "never", "no", "-"]
    assert "press, meeting" in table[2]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--name", "x", "--city", "Lima"], "no entry of 'rubio-2025-09' has city 'Lima'"),
        (["--name", "x", "--expires", "yesterday"], "--expires expects a day"),
        (["--name", "x", "--expires", "2020-01-01"], "is not in the future"),
        (["--name", " "], "--name must not be empty"),
    ],
)
def test_share_refuses_bad_input(cli: Cli, args: list[str], message: str) -> None:
    result = cli("share", SLUG, *args)
    assert result.exit_code == 2 and message in result.stderr
    assert "Traceback" not in result.output
    assert json.loads(cli("shares", SLUG, "--json").stdout) == []


def test_names_unknown_calendars_and_links(cli: Cli) -> None:
    cli("share", SLUG, "--name", "Press office")
    twice = cli("share", SLUG, "--name", "Press office")
    assert twice.exit_code == 2 and "already has a link called 'Press office'" in twice.stderr
    missing = cli("unshare", SLUG, "Pres office")
    assert missing.exit_code == 2
    assert "no live link called 'Pres office' ('Press office')" in missing.stderr
    for command in (["share", "nope", "--name", "x"], ["shares", "nope"], ["unshare", "nope", "x"]):
        result = cli(*command)
        assert result.exit_code == 2 and "no calendar 'nope'" in result.stderr
    assert cli("unshare", SLUG, "Press office").exit_code == 0


def test_share_refuses_a_public_url_nobody_can_reach(run_cli: Cli) -> None:
    assert run_cli("import", f"schedules/{SLUG}.toml").exit_code == 0
    result = run_cli("share", SLUG, "--name", "x")
    assert result.exit_code == 2 and "[feed] port is 0" in result.stderr
    assert json.loads(run_cli("shares", SLUG, "--json").stdout) == []


def test_help_texts_have_examples(cli: Cli) -> None:
    for command in ("share", "shares", "unshare"):
        result = cli(command, "--help")
        assert result.exit_code == 0 and f"calendar-svc {command} {SLUG}" in result.output
