"""Which tz database is used, and following it when its folder changes.

``[time] tzdir`` or ``$CALENDAR_SVC_TZDIR`` names a folder as ``zic -d`` writes it;
``--version``, ``/healthz`` and ``doctor`` say which one is in use; a running
process notices the folder changed (``FolderWatch``, ``TzFollower``) and the feed
never serves bytes rendered with the old one.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import pytz
from click.testing import CliRunner, Result
from tz_releases import RELEASE_A, RELEASE_B, ZIC, compile_release, needs_zic

from calendar_svc import ics
from calendar_svc import timezones as tz
from calendar_svc.cli import cli
from calendar_svc.config import load_config, parse_config
from calendar_svc.errors import ConfigError, TzDatabaseError
from calendar_svc.feed.cache import CalendarHead, FeedCache, filter_key
from calendar_svc.filters import EntryFilter
from calendar_svc.health import Health
from calendar_svc.importer import import_specs
from calendar_svc.rederive import TzFollower
from calendar_svc.schedule_files import parse_schedule
from calendar_svc.store import Store
from calendar_svc.timezones import UTC
from calendar_svc.tzsource import ENV_TZDIR, FolderWatch, TzSource, resolve

OLSON = vars(pytz)["OLSON_VERSION"]


@pytest.fixture
def restore() -> Iterator[None]:
    previous = tz.current()
    yield
    tz.use(previous)


@pytest.fixture(scope="module")
def releases(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    if ZIC is None:
        pytest.skip("zic (the tz compiler) is not installed")
    folder = tmp_path_factory.mktemp("tz")
    return (
        compile_release(folder / "a", RELEASE_A, "test-a"),
        compile_release(folder / "b", RELEASE_B, "test-b"),
    )


# --- where the database comes from ----------------------------------------------------------


def test_the_environment_wins_over_the_config_which_wins_over_pytz(tmp_path: Path) -> None:
    assert resolve(None, None) == TzSource(None, "pytz")
    assert resolve(tmp_path / "conf", None) == TzSource(tmp_path / "conf", "[time] tzdir")
    assert resolve(tmp_path / "conf", str(tmp_path / "env")) == TzSource(
        tmp_path / "env", "$CALENDAR_SVC_TZDIR"
    )
    assert resolve(tmp_path / "conf", "  ") == TzSource(tmp_path / "conf", "[time] tzdir")


@needs_zic
def test_config_tzdir_is_relative_to_the_config_and_checks_zone_names_with_it(
    tmp_path: Path, releases: tuple[Path, Path], restore: None
) -> None:
    config_dir = tmp_path / "etc"
    config_dir.mkdir()
    (config_dir / "tz").symlink_to(releases[1])
    # Test/Drift exists only in the configured folder, not in pytz's.
    data = {"time": {"tzdir": "tz"}, "display": {"timezone": "Test/Drift"}}
    config = parse_config(data, path=config_dir / "config.toml")
    assert config.time.tzdir == config_dir / "tz"  # not resolved: a symlink swap is seen
    assert config.tz == TzSource(config_dir / "tz", "[time] tzdir")
    assert config.tz_database.version == "test-b"
    assert tz.version() == OLSON  # loading a config switches nothing
    with pytest.raises(ConfigError, match=r"display\.timezone: unknown timezone 'Europe/Berlin'"):
        parse_config(
            {"time": {"tzdir": "tz"}, "display": {"timezone": "Europe/Berlin"}},
            path=config_dir / "config.toml",
        )


def test_a_bad_tzdir_is_one_error_naming_the_key_or_the_variable(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    with pytest.raises(ConfigError) as caught:
        parse_config({"time": {"tzdir": "missing"}}, path=path)
    assert caught.value.key == "time.tzdir"
    assert str(caught.value) == (
        f"{path}: time.tzdir: tz database '{tmp_path / 'missing'}' is not a folder"
    )
    with pytest.raises(ConfigError, match=r"time\.tzdir: expected a folder's path, got integer"):
        parse_config({"time": {"tzdir": 3}}, path=path)
    with pytest.raises(ConfigError, match=r"time\.tz_dir: unknown key \(known keys here: tzdir\)"):
        parse_config({"time": {"tz_dir": "x"}}, path=path)
    with pytest.raises(ConfigError, match=r"is empty \(from \$CALENDAR_SVC_TZDIR\)"):
        (tmp_path / "empty").mkdir()
        parse_config({}, path=path, tzdir=str(tmp_path / "empty"))


@needs_zic
def test_load_config_reads_the_variable(
    tmp_path: Path, releases: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "config.toml"
    path.write_text(f'[time]\ntzdir = "{releases[0]}"\n')
    assert load_config(path).tz_database.version == "test-a"
    monkeypatch.setenv(ENV_TZDIR, str(releases[1]))
    config = load_config(path)
    assert (config.tz.origin, config.tz_database.version) == ("$CALENDAR_SVC_TZDIR", "test-b")


@needs_zic
def test_version_names_the_database_of_the_variable(
    releases: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch, restore: None
) -> None:
    def version() -> Result:
        return CliRunner().invoke(cli, ["--version"], catch_exceptions=False)

    monkeypatch.delenv(ENV_TZDIR, raising=False)
    out = version().output.splitlines()
    assert out[1] == f"tz database {OLSON} (pytz {pytz.VERSION}, pytz's own folder)"
    assert "does not read the config" in out[2]
    monkeypatch.setenv(ENV_TZDIR, str(releases[1]))
    assert version().output.splitlines()[1] == (
        f"tz database test-b ({releases[1]}, from $CALENDAR_SVC_TZDIR)"
    )
    monkeypatch.setenv(ENV_TZDIR, str(releases[1] / "nope"))
    result = version()
    assert result.exit_code == 2
    assert "is not a folder (from $CALENDAR_SVC_TZDIR)" in result.output


@needs_zic
def test_commands_use_the_config_s_database_before_reading_schedules(
    run_cli: Callable[..., Result],
    workdir: Path,
    add_to_config: Callable[[str], None],
    releases: tuple[Path, Path],
    restore: None,
) -> None:
    """A zone only the configured folder has is accepted by `import`, and `list` shows the
    times that folder gives."""
    add_to_config(f'\n[time]\ntzdir = "{releases[1]}"\n')
    (workdir / "drift.toml").write_text(
        '[calendar]\nslug = "drift"\nname = "Drift"\ntimezone = "Test/Drift"\n\n'
        '[[entries]]\nuid = "d"\ntitle = "D"\nstart = 2027-01-05T10:00:00\n'
    )
    result = run_cli("import", "drift.toml")
    assert result.exit_code == 0, result.output
    listed = json.loads(run_cli("list", "--calendar", "drift", "--json").output)
    assert listed[0]["start_utc"] == "2027-01-05T09:59:00Z"
    assert tz.version() == "test-b"


# --- noticing a change ----------------------------------------------------------------------


@needs_zic
def test_the_folder_watch_sees_a_swap_and_ignores_a_touch(
    tmp_path: Path, releases: tuple[Path, Path]
) -> None:
    link = tmp_path / "current"
    link.symlink_to(releases[0])
    source = TzSource(link, "[time] tzdir")
    watch = FolderWatch(source, source.open())
    assert watch.changed() is None
    os.utime(releases[0] / "+VERSION")  # same bytes, new mtime: reopened, the same database
    assert watch.changed() is None
    swap = tmp_path / "next"
    swap.symlink_to(releases[1])
    swap.replace(link)  # an atomic swap, as docs/operations.md recommends
    changed = watch.changed()
    assert changed is not None and changed.version == "test-b"
    assert watch.changed() is None
    pytz_watch = FolderWatch(TzSource(None), tz.bundled())
    assert pytz_watch.changed() is None


@needs_zic
def test_an_unusable_folder_is_said_once_and_kept_out(
    tmp_path: Path, releases: tuple[Path, Path]
) -> None:
    import shutil

    folder = tmp_path / "tz"
    shutil.copytree(releases[0], folder)
    source = TzSource(folder, "[time] tzdir")
    watch = FolderWatch(source, source.open())
    (folder / "America" / "Mexico_City").unlink()
    shutil.rmtree(folder)
    with pytest.raises(TzDatabaseError, match="is not a folder"):
        watch.changed()
    assert watch.failing() and watch.changed() is None  # said once
    shutil.copytree(releases[1], folder)
    changed = watch.changed()
    assert changed is not None and changed.version == "test-b" and not watch.failing()


SCHEDULE = """\
[calendar]
slug = "cal"
name = "Cal"
timezone = "America/Mexico_City"

[[entries]]
uid = "winter"
title = "January in Mexico City: the instant stays, the VTIMEZONE does not"
start = 2031-01-15T10:00:00

[[entries]]
uid = "old"
title = "Before 1970"
start = 1965-05-01T10:00:00
"""


@pytest.fixture
def store_a(
    sqlite_store: Store, releases: tuple[Path, Path], restore: None
) -> Iterator[tuple[Store, int]]:
    import tomllib

    tz.use_folder(releases[0])
    with sqlite_store.write() as session:
        spec = parse_schedule(tomllib.loads(SCHEDULE), source="cal.toml")
        import_specs(session, [spec], now=sqlite_store.clock())
    yield sqlite_store, sqlite_store.get_calendar("cal").id


def _head(store: Store, calendar_id: int) -> CalendarHead:
    calendar = store.get_calendar("cal")
    return CalendarHead(calendar_id, "cal", calendar.feed_token, calendar.version)


@needs_zic
def test_the_feed_cache_never_serves_what_the_old_database_rendered(
    store_a: tuple[Store, int], releases: tuple[Path, Path]
) -> None:
    """No entry moves (the calendar's version stays), yet Mexico City's VTIMEZONE gains
    DST rules: the cached feed is not served again after the switch."""
    store, calendar_id = store_a
    cache = FeedCache(store, ics.FeedOptions())
    key = filter_key(EntryFilter())
    old = cache.render(calendar_id, EntryFilter())
    assert cache.get(_head(store, calendar_id), key) is old
    assert b"CDT" not in old.body
    tz.use_folder(releases[1])
    assert cache.get(_head(store, calendar_id), key) is None
    new = cache.render(calendar_id, EntryFilter())
    assert new.version == old.version and new.body != old.body and b"TZNAME:CDT" in new.body
    calendar = store.get_calendar("cal")
    assert new.body == ics.render(
        calendar, store.entries(EntryFilter(calendar="cal")), cache.options
    )
    assert cache.get(_head(store, calendar_id), key) is new


def test_the_feed_cache_starts_its_vtimezones_in_the_earliest_year(sqlite_store: Store) -> None:
    """A feed with an entry of 1965 is byte-identical to ``ics.render``: its VTIMEZONE
    reaches back to 1965 (New York had DST then), not to 1970 only."""
    import tomllib

    text = SCHEDULE.replace("America/Mexico_City", "America/New_York")
    with sqlite_store.write() as session:
        spec = parse_schedule(tomllib.loads(text), source="cal.toml")
        import_specs(session, [spec], now=sqlite_store.clock())
    calendar = sqlite_store.get_calendar("cal")
    body = FeedCache(sqlite_store, ics.FeedOptions()).render(calendar.id, EntryFilter()).body
    entries = sqlite_store.entries(EntryFilter(calendar="cal"))
    assert ics.first_year(entries) == 1965
    assert body == ics.render(calendar, entries, ics.FeedOptions())
    assert ics.timezone_blocks(["America/New_York"], 1965)[0] in body
    assert ics.timezone_blocks(["America/New_York"])[0] not in body  # 1970's


@needs_zic
def test_the_follower_switches_derives_and_keeps_an_unusable_folder_out(
    store_a: tuple[Store, int],
    releases: tuple[Path, Path],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    store, _ = store_a
    link = tmp_path / "current"
    link.symlink_to(releases[0])
    source = TzSource(link, "[time] tzdir")
    ticks = [0.0]
    follower = TzFollower(
        store,
        source,
        source.open(),
        interval=timedelta(seconds=30),
        monotonic=lambda: ticks[0],
    )
    caplog.set_level(logging.INFO)
    assert follower.start().checked == 0  # every entry already says test-a
    assert follower.check() is None

    swap = tmp_path / "next"
    swap.symlink_to(releases[1])
    swap.replace(link)
    assert follower.check() is None  # looked at most every interval
    ticks[0] += 30
    report = follower.check()
    assert report is not None and tz.version() == "test-b"
    assert report.checked == 2 and report.moved == []  # January and 1965: no DST either way
    assert "time.database_switched" in caplog.text

    broken = tmp_path / "broken"
    broken.mkdir()
    swap = tmp_path / "next"
    swap.symlink_to(broken)
    swap.replace(link)
    ticks[0] += 30
    caplog.clear()
    assert follower.check() is None
    assert tz.version() == "test-b"  # the old one is kept
    assert caplog.text.count("time.database_unusable") == 1
    ticks[0] += 30
    assert (
        follower.check() is None
        and "time.database_unusable" not in caplog.text.split("time.database_unusable", 1)[1]
    )

    # A reload naming pytz's own database: followed on the next check, interval or not.
    follower.reset(TzSource(None), tz.bundled())
    assert follower.check() is not None and tz.version() == OLSON


def test_health_reports_the_version_in_use(restore: None, tmp_path: Path) -> None:
    assert Health().snapshot()["tz_database"] == OLSON == tz.version()


@needs_zic
def test_health_follows_a_switch(releases: tuple[Path, Path], restore: None) -> None:
    health = Health()
    tz.use_folder(releases[1])
    assert health.snapshot()["tz_database"] == "test-b"


def test_instants_are_utc_in_the_snapshot_too() -> None:
    health = Health()
    health.last_planner_run = datetime(2025, 9, 1, 12, tzinfo=UTC)
    assert health.snapshot()["last_planner_run"] == "2025-09-01T12:00:00Z"
