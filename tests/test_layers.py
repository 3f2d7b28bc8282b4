"""Imports go one way: a module may import only modules of its own layer or a lower one.

Data flows files/CLI/API -> store -> (ICS feed | planner -> deliveries ->
dispatcher -> notifiers); observers (health, metrics, logs) subscribe to events
instead of being written to. ``RANKS`` below is that flow as layers, the same
list README's "Layout" shows. The import graph is read from the source with
``ast``: module-level and function-level imports, ``from . import x``, and
``__import__("x")`` / ``importlib.import_module("x")`` with a literal name.

A new module goes into ``RANKS`` (and README's "Layout") at the rank of what it
is; the notifier implementations are placed by the entry points pyproject.toml
registers them under. A name in ``RANKS`` that no module has is an error: a
module that moved or went takes its name out with it, and a branch adds the
names of the modules it adds.
"""

from __future__ import annotations

import ast
import re
import textwrap
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "calendar_svc"
TESTS = ROOT / "tests"

# Module names are relative to calendar_svc; "x.*" covers every module of package x.
RANKS: dict[str, int] = {
    # 0 foundation: imports no other layer of the package (timezones, tzif and tzdb read
    # the tz database's files; timezones holds the process's tz database)
    "__init__": 0,  # calendar_svc itself: __version__
    "errors": 0,
    "clock": 0,
    "timezones": 0,
    "tzif": 0,
    "tzdb": 0,
    "durations": 0,
    "events": 0,  # event types and the listener interface
    "validation": 0,  # typed readers of what people write in TOML
    "holders": 0,  # API keys' and share links' names and states
    "recurrence": 0,  # RRULE expansion
    # 1 services every layer above may use; observers subscribe to events
    "models": 1,
    "config": 1,
    "tzsource": 1,  # which tz database folder, and noticing that it changed
    "logs": 1,
    "event_log": 1,
    "observers": 1,
    "secrets": 1,
    "sdnotify": 1,
    "metrics": 1,
    "health": 1,
    "resources": 1,  # descriptor limit and lazily imported codecs, secured at start
    "addresses": 1,  # which peer addresses are public (DNS and the IPv4-in-IPv6 forms)
    # 2 rules and texts: pure functions of entries, config and time
    "reminders": 2,  # the package's docstring only
    "reminders.rules": 2,
    "reminders.policy": 2,
    "reminders.outcome": 2,
    "reminders.decision": 2,
    "schedule_files": 2,
    "filters": 2,
    "isolation": 2,  # entries whose stored values the engine cannot use, left out
    "ics": 2,
    "vtimezone": 2,
    "presenters": 2,
    "messages": 2,
    "status_text": 2,
    "links": 2,
    "page": 2,  # the subscribers' page: the package's docstring only
    "page.view": 2,  # what the page shows, from entries (pure)
    "page.subscribe": 2,  # each calendar app's subscribe link (pure)
    "page.assets": 2,  # static files under content-hashed names
    "page.html": 2,  # the Jinja2 template and the QR code
    "notifiers.base": 2,  # the pieces every notifier shares
    "notifiers.keys": 2,
    "notifiers.reminder": 2,
    "notifiers.redaction": 2,
    "notifiers.tokens": 2,
    "ics_in": 2,  # .ics files and bodies -> CalendarSpec, through the schedule validator
    "ics_in.*": 2,
    # 3 storage: the only layer that opens database sessions
    "db": 3,
    "migrations": 3,
    "migrations.*": 3,
    "store": 3,
    "importer": 3,
    "rederive": 3,  # stored instants derived again when the tz database changes
    "reminders.repository": 3,
    "schedule_loader": 3,  # a TOML or .ics schedule file -> spec (asks the store for a zone)
    "reminders.entries": 3,
    "reminders.passes": 3,
    "reminders.reports": 3,
    # 4 what reads the store and acts: feeds, planning, waking, the notifier registry
    "feed": 4,
    "feed.*": 4,
    "sources": 4,  # followed ICS feeds: fetch (network), sync (store), the loop thread
    "sources.*": 4,
    "changes": 3,  # a commit by any process, heard at once (LISTEN/NOTIFY, data_version)
    "shares": 3,  # share links: tokens as digests, fetch statistics
    "entry_edits": 3,  # one entry added, changed or moved (CLI and API), through the validator
    "api_keys": 3,  # the HTTP API's keys: tokens as digests, scope, expiry
    "idempotency": 3,  # the first answers to POSTs with an Idempotency-Key
    "api": 4,  # the HTTP API under /api/v1, beside the feed
    "api.*": 4,
    "page.endpoint": 4,  # the page over HTTP, beside the feed
    "reminders.planner": 4,
    "reminders.alarms": 4,
    "reminders.watch": 4,
    "reminders.leases": 4,  # other daemons' leases, watched on the monotonic clock
    "reminders.lock": 4,
    "reminders.workers": 4,
    "reminders.retire": 4,
    "schedule_import": 4,
    "notifiers": 4,  # the registry plugins import from
    "notifiers.registry": 4,
    "notifiers._http": 4,  # DNS and HTTP posts, for the HTTP notifiers
    # (the notifier implementations: rank 4, from pyproject's entry points)
    # 5 sending
    "reminders.dispatcher": 5,
    # 6 the process that runs it all
    "daemon": 6,
    # 7 commands
    "cli": 7,
    "cli.*": 7,
    "__main__": 7,
}
IMPLEMENTATION_RANK = 4


def notifier_implementations() -> set[str]:
    """Modules pyproject.toml registers built-in notifiers from (``notifiers.smtp``, ...)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    group = project["project"]["entry-points"]["calendar_svc.notifiers"]
    return {value.split(":")[0].removeprefix(f"{PACKAGE}.") for value in group.values()}


IMPLEMENTATIONS = notifier_implementations()


def rank_of(module: str) -> int | None:
    """The rank of a module named relative to the package, or None when it is not placed."""
    if module in RANKS:
        return RANKS[module]
    if module in IMPLEMENTATIONS:
        return IMPLEMENTATION_RANK
    parts = module.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        pattern = ".".join(parts[:cut]) + ".*"
        if pattern in RANKS:
            return RANKS[pattern]
    return None


def short(module: str) -> str:
    """``calendar_svc.reminders.rules`` -> ``reminders.rules``; the package -> ``__init__``."""
    return "__init__" if module == PACKAGE else module.removeprefix(f"{PACKAGE}.")


def package_modules() -> dict[str, Path]:
    """Full dotted name -> file, for every module of the package (a package by its __init__)."""
    modules = {}
    for path in sorted((ROOT / PACKAGE).rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


def helper_modules() -> set[str]:
    """What ``import <name>`` reaches in tests/ (pytest puts the folder on sys.path)."""
    return {"tests"} | {p.stem for p in TESTS.glob("*.py")}


def _literal(node: ast.expr | None) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def imports_in(
    source: str, module: str, *, is_package: bool, known: set[str]
) -> list[tuple[str, int]]:
    """(imported module, line) for every import in ``source``, the source of ``module``.

    Relative imports are resolved against ``module``; ``from a import b`` counts as an
    import of ``a.b`` when that is a module in ``known``, else of ``a``.
    """
    package = module if is_package else module.rpartition(".")[0]

    def absolute(name: str, level: int) -> str:
        if level == 0:
            return name
        base = package.split(".")
        base = base[: len(base) - (level - 1)]
        return ".".join([*base, name] if name else base)

    found: list[tuple[str, int]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = absolute(node.module or "", node.level)
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                found.append((candidate if candidate in known else base, node.lineno))
        elif isinstance(node, ast.Call):
            func = node.func
            called = (
                func.id
                if isinstance(func, ast.Name)
                else (func.attr if isinstance(func, ast.Attribute) else None)
            )
            if called not in ("__import__", "import_module") or not node.args:
                continue
            name = _literal(node.args[0])
            if name is None:
                continue  # computed at run time: nothing to read here
            if called == "import_module" and name.startswith("."):
                anchor = _literal(node.args[1]) if len(node.args) > 1 else None
                if anchor is None:
                    continue
                level = len(name) - len(name.lstrip("."))
                parts = anchor.split(".")
                name = ".".join([*parts[: len(parts) - (level - 1)], name.lstrip(".")])
            found.append((name, node.lineno))
    return found


def import_graph() -> list[tuple[str, str, int]]:
    """(importer, imported, line) for every import inside the package or of the tests."""
    modules = package_modules()
    helpers = helper_modules()
    edges = []
    for name, path in modules.items():
        source = path.read_text(encoding="utf-8")
        for target, line in imports_in(
            source, name, is_package=path.name == "__init__.py", known=set(modules)
        ):
            top = target.split(".")[0]
            if top == PACKAGE or top in helpers:
                edges.append((name, target, line))
    return edges


def where(module: str, line: int) -> str:
    return f"{package_modules()[module].relative_to(ROOT)}:{line}"


# --- the scan itself -------------------------------------------------------------------------


def test_the_scan_sees_every_form_of_import() -> None:
    source = textwrap.dedent("""\
        import calendar_svc.errors
        from calendar_svc import store
        from calendar_svc.models import Entry
        from . import rules
        from .. import daemon
        from ..feed.app import build_app
        import importlib
        from typing import TYPE_CHECKING

        if TYPE_CHECKING:
            from calendar_svc.cli import main

        def later(name):
            from calendar_svc.reminders import planner
            importlib.import_module("calendar_svc.health")
            importlib.import_module(".watch", "calendar_svc.reminders")
            __import__("calendar_svc.metrics")
            __import__(name)  # computed: not readable
        """)
    known = {
        f"calendar_svc.{m}"
        for m in (
            "errors",
            "store",
            "models",
            "reminders.rules",
            "daemon",
            "feed.app",
            "cli",
            "reminders.planner",
            "health",
            "reminders.watch",
            "metrics",
        )
    }
    found = {
        name
        for name, _ in imports_in(
            source, "calendar_svc.reminders.dispatcher", is_package=False, known=known
        )
    }
    assert found == known | {"importlib", "typing"}


def test_the_scan_reads_the_package() -> None:
    edges = {(a, b) for a, b, _ in import_graph()}
    assert ("calendar_svc.daemon", "calendar_svc.reminders.dispatcher") in edges
    assert len(edges) > 100


# --- the rules -------------------------------------------------------------------------------


def test_every_module_has_a_rank() -> None:
    unplaced = sorted(short(m) for m in package_modules() if rank_of(short(m)) is None)
    assert not unplaced, (
        f"modules with no layer: {unplaced}. Place each in RANKS in tests/test_layers.py at "
        'the rank of what it is (and in README\'s "Layout").'
    )


def test_every_name_in_the_map_is_a_module() -> None:
    present = {short(m) for m in package_modules()}
    stale = sorted(
        name
        for name in RANKS
        if not (
            any(m.startswith(name.removesuffix("*")) for m in present)
            if name.endswith(".*")
            else name in present
        )
    )
    assert not stale, (
        f"names in RANKS that no module has: {stale}. Take them out of RANKS in "
        'tests/test_layers.py (and README\'s "Layout").'
    )


def test_no_module_imports_a_higher_layer() -> None:
    upward = []
    for importer, imported, line in import_graph():
        if not imported.startswith(PACKAGE):
            continue
        mine, theirs = rank_of(short(importer)), rank_of(short(imported))
        if mine is not None and theirs is not None and theirs > mine:
            upward.append(
                f"{where(importer, line)}: {short(importer)} (rank {mine}) imports "
                f"{short(imported)} (rank {theirs})"
            )
    assert not upward, "imports from a lower layer to a higher one:\n" + "\n".join(upward)


def test_the_package_never_imports_the_tests() -> None:
    found = [
        f"{where(importer, line)}: imports {imported}"
        for importer, imported, line in import_graph()
        if not imported.startswith(PACKAGE)
    ]
    assert not found, "the package imports test code:\n" + "\n".join(found)


# --- README ----------------------------------------------------------------------------------


def readme_layers() -> dict[int, set[str]]:
    """README "Layout": a layer is ``  N name: module, package/, package/module, ...``, its
    list continued on the more indented lines below; remarks in parentheses."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = readme.split("\n## Layout\n", 1)[1].split("```", 2)[1]
    texts: dict[int, str] = {}
    rank = None
    for line in block.splitlines():
        start = re.match(r"^  (\d) [^:]+:(.*)$", line)
        if start:
            rank = int(start.group(1))
            texts[rank] = start.group(2)
        elif rank is not None and line.startswith(" " * 10):
            texts[rank] += " " + line.strip()
        else:
            rank = None
    layers = {}
    for rank, text in texts.items():
        names = (n.strip() for n in re.sub(r"\([^)]*\)", "", text).split(","))
        layers[rank] = {
            n.rstrip("/").replace("/", ".") for n in names if n and n != "notifiers/<type>"
        }
    return layers


@pytest.mark.parametrize("rank", range(8))
def test_readme_layout_lists_each_layer_as_the_test_does(rank: int) -> None:
    expected = {
        name.removesuffix(".*")
        for name, r in RANKS.items()
        if r == rank
        and name not in ("__init__", "reminders")
        and not (name.endswith(".*") and name.removesuffix(".*") in RANKS)
    }
    assert readme_layers().get(rank, set()) == expected
