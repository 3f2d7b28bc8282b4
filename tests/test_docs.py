"""The docs are part of the product: they must say what the code does.

Each check loops over one of the code's own registries and fails naming what is
missing: config keys (the config dataclasses), CLI commands (the click group),
notifier keys (every built-in notifier class the entry-point registry finds),
template variables (``TEMPLATE_VARIABLES``) and log events (an ``ast`` scan of
the package for logging calls), against README.md and docs/operations.md.
"""

from __future__ import annotations

import ast
import dataclasses
import re
import textwrap
import tomllib
from pathlib import Path
from typing import Any

import pytest

from calendar_svc import config as cfg

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
SECTIONS = {
    "database": cfg.DatabaseConfig,
    "feed": cfg.FeedConfig,
    "api": cfg.ApiConfig,
    "reminders": cfg.RemindersConfig,
    "display": cfg.DisplayConfig,
    "time": cfg.TimeConfig,
    "logging": cfg.LoggingConfig,
    "sources": cfg.SourceConfig,  # [[sources]] tables
}
# Sections that are arrays of tables: the shipped config shows them as a commented example.
ARRAY_SECTIONS = {"sources"}


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
        if section in ARRAY_SECTIONS:
            example = text.split(f"# [[{section}]]", 1)
            if len(example) < 2 or not re.search(rf"^#\s*{name}\s*=", example[1], re.M):
                missing.append(key)
            continue
        if name not in shipped.get(section, {}) and not re.search(
            rf"^#\s*\[\[{section}\.{name}\]\]", text, re.M
        ):
            # A key with no default worth setting is shipped commented out in its table.
            table = re.search(rf"^\[{section}\]\n(.*?)(?=^\[|\Z)", text, re.M | re.S)
            if table is None or not re.search(rf"^#\s*{name}\s*=", table.group(1), re.M):
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


def test_ci_runs_the_static_checks_the_readme_lists() -> None:
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    development = README.split("## Development", 1)[1].split("\n## ", 1)[0]
    for check in ("ruff check .", "ruff format --check .", "mypy"):
        assert check in development, f"README's Development does not list {check!r}"
        assert f'"{check}"' in ci, f".ci/run does not run {check!r}"


def test_changelog_is_keep_a_changelog() -> None:
    text = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    assert "## [Unreleased]" in text and "Keep a Changelog" in text


def cli_commands() -> set[str]:
    """Every command, its module loaded (the CLI loads a command's module when asked)."""
    import click

    from calendar_svc.cli import cli

    names = cli.list_commands(click.Context(cli))
    assert all(cli.get_command(click.Context(cli), name) is not None for name in names)
    return set(names)


def test_every_cli_module_s_commands_are_listed() -> None:
    """A command added to a module's COMMANDS but not to ``cli.MODULES`` would never run."""
    import importlib

    from calendar_svc.cli import MODULES

    for module in set(MODULES.values()):
        names = {c.name for c in importlib.import_module(f"calendar_svc.cli.{module}").COMMANDS}
        assert names == {n for n, m in MODULES.items() if m == module}, module


def test_cli_commands_in_readme_exist() -> None:
    documented = set(re.findall(r"^\| `calendar-svc ([a-z-]+)", README, re.M))
    assert documented <= cli_commands(), documented - cli_commands()


def test_every_cli_command_is_in_the_readme() -> None:
    documented = set(re.findall(r"^\| `calendar-svc ([a-z-]+)", README, re.M))
    assert cli_commands() <= documented, cli_commands() - documented


# --- notifiers: keys and template variables, from the entry-point registry -----------------


def builtin_notifiers() -> dict[str, type[Any]]:
    """The built-in notifier classes, found the way the daemon finds every notifier."""
    from calendar_svc.notifiers import available_types, notifier_class

    classes = {name: notifier_class(name) for name in available_types()}
    # A plugin installed in this environment is not ours to document.
    return {n: c for n, c in classes.items() if c.__module__.startswith("calendar_svc.")}


BUILTIN_NOTIFIERS = builtin_notifiers()


def markdown_section(text: str, heading: str) -> str:
    """The body under a heading (``"## Notifiers"``, ``"### smtp"``: the heading line starts
    with it), up to the next heading of the same or a higher level outside code blocks."""
    level = len(heading.split(" ", 1)[0])
    body: list[str] = []
    inside = fenced = False
    for line in text.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and (match := re.match(r"(#+) ", line)):
            if inside and len(match.group(1)) <= level:
                break
            if not inside and re.match(rf"{re.escape(heading)}\b", line):
                inside = True
                continue
        if inside:
            body.append(line)
    assert inside, f"no {heading!r} heading"
    return "\n".join(body)


def notifier_section(type_name: str) -> str:
    return markdown_section(markdown_section(README, "## Notifiers"), f"### {type_name}")


def toml_examples(section: str) -> list[str]:
    return re.findall(r"```toml\n(.*?)```", section, re.S)


def test_the_registry_finds_the_built_in_notifiers() -> None:
    assert set(BUILTIN_NOTIFIERS) >= {"console", "smtp", "webhook", "ntfy", "mqtt"}


@pytest.mark.parametrize(
    ("type_name", "key"),
    [(t, k) for t, cls in BUILTIN_NOTIFIERS.items() for k in cls.keys],
)
def test_every_notifier_key_is_in_its_readme_section(type_name: str, key: str) -> None:
    """In the notifier's own README section: named in `backticks` or set in its example
    (``key = ...``, commented out or not; a secret also as ``key_env`` / ``key_credential``)."""
    section = notifier_section(type_name)
    secret = getattr(BUILTIN_NOTIFIERS[type_name].keys[key], "secret", False)
    suffix = "(_env|_credential)?" if secret else ""
    examples = "\n".join(toml_examples(section))
    assert f"`{key}`" in section or re.search(
        rf"^#?\s*{re.escape(key)}{suffix}\s*=", examples, re.M
    ), f"README section '### {type_name}' does not document key {key!r}"


@pytest.mark.parametrize("type_name", sorted(BUILTIN_NOTIFIERS))
def test_readme_notifier_examples_use_only_keys_the_notifier_knows(type_name: str) -> None:
    known = set(BUILTIN_NOTIFIERS[type_name].keys) | set(common_notifier_keys())
    used = set()
    for example in toml_examples(notifier_section(type_name)):
        for key in re.findall(r"^#?\s*([a-z_]+)\s*=", example, re.M):
            base = re.sub(r"_(env|credential)$", "", key)
            used.add(base if base in known else key)
    assert used, f"README section '### {type_name}' has no example table"
    assert used <= known, f"'### {type_name}' shows keys {type_name} does not know: {used - known}"


def common_notifier_keys() -> list[str]:
    """The keys of README's "Keys every notifier has" table."""
    table = markdown_section(README, "### Keys every notifier has")
    return re.findall(r"^\| `([a-z_]+)` \|", table, re.M)


def test_the_keys_every_notifier_has_are_accepted() -> None:
    from calendar_svc.notifiers import build_notifier

    keys = common_notifier_keys()
    assert "type" in keys and len(keys) >= 3
    values = {
        "type": "console",
        "title_template": "$title",
        "body_template": "$when",
        "concurrency": 4,
    }
    assert set(keys) <= set(values), f"a common key this test has no value for: {keys}"
    build_notifier("docs", {k: values[k] for k in keys}).close()


def template_variables() -> list[str]:
    from calendar_svc.notifiers import TEMPLATE_VARIABLES  # where plugin authors find it

    return list(TEMPLATE_VARIABLES)


def documented_template_variables() -> set[str]:
    table = README.split("Template variables:", 1)[1].strip().split("\n\n", 1)[0]
    return {
        name
        for line in table.splitlines()
        for name in re.findall(r"`\$([a-z_]+)`", line.split("|")[1] if line.startswith("|") else "")
    }


@pytest.mark.parametrize("name", template_variables())
def test_every_template_variable_is_in_the_readme(name: str) -> None:
    assert name in documented_template_variables(), f"README's template variables lack ${name}"


def test_readme_documents_no_template_variable_the_code_does_not_know() -> None:
    documented = documented_template_variables()
    assert len(documented) >= 10
    assert documented <= set(template_variables()), documented - set(template_variables())


# --- log events, found in the code itself ------------------------------------------------------

LEVELS = ("debug", "info", "warning", "error", "critical")
EVENT_NAME = re.compile(r"^[a-z_]+(\.[a-z_]+)+$")
OPERATIONS = (ROOT / "docs" / "operations.md").read_text(encoding="utf-8")


@dataclasses.dataclass(frozen=True)
class LogCall:
    where: str  # file:line
    message: str | None  # None: not a literal
    levels: frozenset[str] | None  # None: not known statically


def _levels(node: ast.expr | None) -> frozenset[str] | None:
    """``logging.WARNING`` -> {"warning"}; ``A if c else B`` -> both; None when unknown."""
    if node is None:
        return frozenset({"info"})  # log_event's default
    if isinstance(node, ast.Attribute) and node.attr.lower() in LEVELS:
        return frozenset({node.attr.lower()})
    if isinstance(node, ast.IfExp):
        body, orelse = _levels(node.body), _levels(node.orelse)
        return body | orelse if body is not None and orelse is not None else None
    return None


def _argument(call: ast.Call, index: int, name: str) -> ast.expr | None:
    if len(call.args) > index:
        return call.args[index]
    return next((k.value for k in call.keywords if k.arg == name), None)


def log_calls(source: str, filename: str) -> list[LogCall]:
    """Every logging call in ``source``: ``log_event(logger, "event", level, ...)`` and
    ``<logger>.<level>("event", ...)`` / ``<logger>.log(level, "event")``, where
    ``<logger>`` is ``log``, ``logger`` or a name bound to ``logging.getLogger(...)``."""
    tree = ast.parse(source)
    loggers = {"log", "logger"}
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Assign)
            and isinstance(node.value, ast.Call)
            and ast.unparse(node.value.func) == "logging.getLogger"
        ):
            loggers |= {t.id for t in node.targets if isinstance(t, ast.Name)}
    inside_log_event = {
        id(inner)
        for fn in ast.walk(tree)
        if isinstance(fn, ast.FunctionDef) and fn.name == "log_event"
        for inner in ast.walk(fn)
    }
    calls = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or id(node) in inside_log_event:
            continue
        func = node.func
        if (isinstance(func, ast.Name) and func.id == "log_event") or (
            isinstance(func, ast.Attribute) and func.attr == "log_event"
        ):
            message, levels = _argument(node, 1, "event"), _levels(_argument(node, 2, "level"))
        elif (
            isinstance(func, ast.Attribute)
            and isinstance(func.value, ast.Name)
            and func.value.id in loggers
        ):
            if func.attr == "log":
                message, levels = _argument(node, 1, "msg"), _levels(_argument(node, 0, "level"))
            elif func.attr in (*LEVELS, "exception"):
                level = "error" if func.attr == "exception" else func.attr
                message, levels = _argument(node, 0, "msg"), frozenset({level})
            else:
                continue
        else:
            continue
        text = message.value if isinstance(message, ast.Constant) else None
        calls.append(
            LogCall(f"{filename}:{node.lineno}", text if isinstance(text, str) else None, levels)
        )
    return calls


def package_log_calls() -> list[LogCall]:
    calls = []
    for path in sorted((ROOT / "calendar_svc").rglob("*.py")):
        calls += log_calls(path.read_text(encoding="utf-8"), str(path.relative_to(ROOT)))
    return calls


def code_events() -> dict[str, set[str] | None]:
    """Event name -> the levels it is logged at (None where a level is not a literal)."""
    events: dict[str, set[str] | None] = {}
    for call in package_log_calls():
        if call.message is None or not EVENT_NAME.match(call.message):
            continue
        known = events.setdefault(call.message, set())
        if known is not None and call.levels is not None:
            known |= call.levels
        else:
            events[call.message] = None
    return events


def documented_events() -> dict[str, str]:
    """Event -> its level cell, from the tables under docs/operations.md's "Log events"."""
    section = markdown_section(OPERATIONS, "## Log events")
    return dict(re.findall(r"^\| `([a-z_.]+)` \| ([^|]+) \|", section, re.M))


CODE_EVENTS = code_events()


def test_the_log_scan_sees_every_form_of_logging_call() -> None:
    source = textwrap.dedent("""\
        import logging
        log = logging.getLogger(__name__)
        _feed = logging.getLogger("calendar_svc.feed")

        def log_event(logger, event, level=logging.INFO, **fields):
            logger.log(level, event)  # the helper itself: not an event

        def work(ok):
            log_event(log, "a.default")
            log_event(_feed, "b.warned", logging.WARNING, slug="x")
            log_event(log, "c.either", logging.WARNING if ok else logging.INFO)
            log.info("d.info", extra={"k": 1})
            log.exception("e.failed")
            _feed.debug("free text %s", ok)
            log.log(logging.ERROR, "f.logged")
            log_event(log, computed_name)
        """)
    calls = {c.message: c.levels for c in log_calls(source, "x.py")}
    assert calls == {
        "a.default": {"info"},
        "b.warned": {"warning"},
        "c.either": {"info", "warning"},
        "d.info": {"info"},
        "e.failed": {"error"},
        "free text %s": {"debug"},
        "f.logged": {"error"},
        None: {"info"},
    }


def test_every_log_call_names_its_event_with_a_literal() -> None:
    """So that this file can find it (and an operator can grep for it)."""
    computed = [c.where for c in package_log_calls() if c.message is None]
    assert not computed, f"log calls whose event is not a string literal: {computed}"


def test_lines_above_debug_are_events() -> None:
    """Free text (``"sd_notify %r not sent"``) is for debugging; whatever an operator sees at
    info or above is an event of the reference."""
    free = [
        f"{c.where}: {c.message!r}"
        for c in package_log_calls()
        if c.message is not None
        and not EVENT_NAME.match(c.message)
        and c.levels != frozenset({"debug"})
    ]
    assert not free, f"log lines above debug that are not event names: {free}"


def test_the_log_scan_finds_the_package_s_events() -> None:
    """A scan of the wrong folder would find nothing, and the test below would have no cases."""
    assert len(CODE_EVENTS) >= 30, sorted(CODE_EVENTS)


@pytest.mark.parametrize("event", sorted(CODE_EVENTS))
def test_every_log_event_is_in_the_reference(event: str) -> None:
    documented = documented_events()
    assert event in documented, f"docs/operations.md 'Log events' lacks {event}"
    levels = CODE_EVENTS[event]
    if levels is not None:
        said = set(re.findall(rf"\b({'|'.join(LEVELS)})\b", documented[event]))
        assert said == levels, f"{event} is logged at {sorted(levels)}, documented {sorted(said)}"


def test_the_reference_lists_no_event_the_code_does_not_log() -> None:
    stale = set(documented_events()) - set(CODE_EVENTS)
    assert not stale, f"docs/operations.md documents events nothing logs: {sorted(stale)}"
