"""The docs are part of the product: they must say what the code does."""

from __future__ import annotations

import dataclasses
import re
import tomllib
from pathlib import Path

from calendar_svc import config as cfg

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
SECTIONS = {
    "database": cfg.DatabaseConfig,
    "feed": cfg.FeedConfig,
    "reminders": cfg.RemindersConfig,
    "display": cfg.DisplayConfig,
    "logging": cfg.LoggingConfig,
}


def config_keys() -> list[str]:
    keys = ["schedules"]
    for section, klass in SECTIONS.items():
        keys.extend(f"{section}.{f.name}" for f in dataclasses.fields(klass))
    return keys


def test_every_config_key_is_in_the_readme_reference() -> None:
    missing = [key for key in config_keys() if f"`{key}`" not in README]
    assert not missing, f"README config reference lacks {missing}"


def test_every_config_key_is_in_the_shipped_config() -> None:
    shipped = tomllib.loads((ROOT / "config.toml").read_text(encoding="utf-8"))
    text = (ROOT / "config.toml").read_text(encoding="utf-8")
    missing = []
    for key in config_keys():
        if "." not in key:
            if key not in shipped:
                missing.append(key)
            continue
        section, name = key.split(".", 1)
        if name not in shipped.get(section, {}) and not re.search(
            rf"^#\s*\[\[{section}\.{name}\]\]", text, re.M
        ):
            missing.append(key)
    assert not missing, f"config.toml lacks {missing}"


def test_readme_documents_no_key_the_code_does_not_know() -> None:
    known = set(config_keys())
    documented = set(re.findall(r"^\| `([a-z_]+\.[a-z_]+)` \|", README, re.M))
    documented.discard("notifiers.NAME")
    assert documented <= known, f"README documents unknown keys {documented - known}"


def quick_start_commands() -> list[str]:
    section = README.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sh\n(.+?)\n```", section)


def test_quick_start_has_exactly_two_commands() -> None:
    commands = quick_start_commands()
    assert commands == [
        "pip install -e . && calendar-svc run",
        "pip install -e '.[test]' && pytest",
    ]


def test_ci_runs_the_readme_test_command() -> None:
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    test_command = quick_start_commands()[1]
    assert test_command in ci.splitlines()


def test_changelog_is_keep_a_changelog() -> None:
    text = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    assert "## [Unreleased]" in text and "Keep a Changelog" in text


def test_cli_commands_in_readme_exist() -> None:
    from calendar_svc.cli import cli

    documented = set(re.findall(r"^\| `calendar-svc ([a-z-]+)", README, re.M))
    assert documented <= set(cli.commands), documented - set(cli.commands)
