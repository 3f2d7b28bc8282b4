"""schemathesis against the live API: a ``calendar-svc run`` with the trip loaded, driven
through its own OpenAPI document (``/api/v1/openapi.json``), stateful links on.

Every check schemathesis has runs but ``positive_data_acceptance``: the document
describes the shape of each value (a string for a zone, a list of durations) and the
one validator refuses wrong values (an unknown zone, a wall time in a DST gap) with a
422 that the document lists, so "every value the schema allows is accepted" is not a
promise the API makes. What is checked: no 5xx, every status, content type, header
and body as documented, schema-violating requests refused, missing auth refused,
deleted resources gone, created ones reachable, unsupported methods 405 with Allow.

A bounded number of examples per operation in CI (about 20 s); more with
``CALENDAR_SVC_SCHEMATHESIS_EXAMPLES=500`` (and a fixed seed with
``CALENDAR_SVC_SCHEMATHESIS_SEED``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from service_helpers import LOOPBACK, Service, base_env, http_get

from calendar_svc.api_keys import ApiKeys
from calendar_svc.store import Store

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = int(os.environ.get("CALENDAR_SVC_SCHEMATHESIS_EXAMPLES", "20"))


def _schemathesis() -> list[str]:
    script = Path(sys.executable).with_name("schemathesis")
    if script.exists():
        return [str(script)]
    found = shutil.which("schemathesis")
    if found is None:
        pytest.skip("schemathesis is not installed (pip install -e '.[test]')")
    return [found]


def test_schemathesis_finds_nothing_against_the_live_api(
    tmp_path: Path, services: list[Service]
) -> None:
    (tmp_path / "schedules").mkdir()
    shutil.copy(ROOT / "schedules" / "rubio-2025-09.toml", tmp_path / "schedules")
    db_url = f"sqlite:///{tmp_path / 'calendar.sqlite3'}"
    config = tmp_path / "config.toml"
    config.write_text(
        textwrap.dedent(f"""\
        schedules = ["schedules/*.toml"]

        [database]
        url = "{db_url}"

        [feed]
        host = "{LOOPBACK}"
        port = 0

        [api]
        enabled = true
        # schemathesis checks that a request without a key is refused, many times over.
        auth_failures = 100000

        [reminders]
        enabled = false
        """)
    )
    daemon = Service(config, name="api")
    services.append(daemon.start().wait_ready())
    port = daemon.feed_port()
    store = Store(db_url)
    try:
        _, token = ApiKeys(store).create("schemathesis")
    finally:
        store.close()
    status, _ = http_get(f"http://{LOOPBACK}:{port}/api/v1/openapi.json")
    assert status == 200

    command = [
        *_schemathesis(),
        "run",
        f"http://{LOOPBACK}:{port}/api/v1/openapi.json",
        "--header",
        f"Authorization: Bearer {token}",
        "--checks",
        "all",
        "--exclude-checks",
        "positive_data_acceptance",
        "--phases",
        "examples,coverage,fuzzing,stateful",
        "--max-examples",
        str(EXAMPLES),
        "--workers",
        "2",
        "--request-timeout",
        "20",
    ]
    if os.environ.get("CALENDAR_SVC_SCHEMATHESIS_SEED"):
        command += ["--seed", os.environ["CALENDAR_SVC_SCHEMATHESIS_SEED"]]
    run = subprocess.run(
        command,
        cwd=tmp_path,
        env=base_env(NO_COLOR="1", SCHEMATHESIS_TELEMETRY="false"),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    output = run.stdout + run.stderr
    assert run.returncode == 0, output[-20000:]
    assert "Stateful" in output and "passed" in output, output[-5000:]
    log = daemon.stderr()
    assert "msg=api.failed" not in log, log[-5000:]
    assert token not in log
