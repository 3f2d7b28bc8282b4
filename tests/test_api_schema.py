"""The API's OpenAPI document is generated from the validator's schema, and its examples are
the trip's entries; a body becomes the [[entries]] table a schedule file holds."""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime

import pytest
from conftest import TRIP

from calendar_svc.api import representation as rep
from calendar_svc.api.schema import EXAMPLE_CALENDAR, EXAMPLE_ENTRY, EXAMPLE_FLIGHT, openapi
from calendar_svc.entry_edits import raw_of, validate, wall_value
from calendar_svc.errors import ApiProblem
from calendar_svc.models import EntryStatus
from calendar_svc.schedule_files import ENTRY_TABLE, load_file
from calendar_svc.store import Store


def test_every_key_of_an_entries_table_is_a_member_of_a_body() -> None:
    reachable = set(rep.SIMPLE.values()) | set(rep.DATES.values())
    reachable |= {key for keys in rep.TIMES.values() for key in keys.values()}
    assert reachable == {f.name for f in dataclasses.fields(ENTRY_TABLE)}


def test_the_document_takes_its_schemas_from_the_readers() -> None:
    document = openapi()
    assert document["openapi"] == "3.1.0"
    write = document["components"]["schemas"]["EntryWrite"]["properties"]
    assert write["status"]["enum"][:-1] == [str(s) for s in EntryStatus]
    assert write["status"]["default"] == "confirmed"
    assert write["transparency"]["enum"][:-1] == ["opaque", "transparent"]
    assert write["uid"]["pattern"].endswith("$")
    assert write["start"]["properties"]["fold"]["enum"] == [0, 1, None]
    read = document["components"]["schemas"]["Entry"]["properties"]
    assert read["start_utc"]["readOnly"] and read["version"]["readOnly"]
    assert "start_utc" not in write
    json.dumps(document)  # plain JSON throughout


@pytest.mark.parametrize("example", [EXAMPLE_ENTRY, EXAMPLE_FLIGHT])
def test_the_examples_are_the_trip_s_entries(example: dict[str, object]) -> None:
    trip = {entry.uid: entry for entry in load_file(TRIP).entries}
    spec = validate(rep.entry_table(example), source="x", default_zone="America/Mexico_City")
    assert spec == trip[spec.uid]


def test_the_calendar_example_is_the_trip_s_calendar() -> None:
    trip = load_file(TRIP)
    assert {
        "slug": trip.slug,
        "name": trip.name,
        "timezone": trip.timezone,
        "reminders": list(trip.reminders or ()),
    } == EXAMPLE_CALENDAR


def test_a_stored_entry_round_trips_through_its_table(trip_store: Store) -> None:
    """raw_of gives the [[entries]] table that validates back to the same entry, and
    table_body / entry_table are inverse, so a PATCH of nothing changes nothing."""
    trip = {entry.uid: entry for entry in load_file(TRIP).entries}
    for entry in trip_store.entries():
        table = raw_of(entry)
        assert validate(table, source="x", default_zone=entry.calendar.timezone) == trip[entry.uid]
        assert rep.entry_table(rep.table_body(table)) == table


def test_wall_values_read_as_toml_reads_them() -> None:
    assert wall_value("2025-09-02T10:00:00") == datetime(2025, 9, 2, 10)
    assert wall_value("2025-09-02 10:00") == datetime(2025, 9, 2, 10)
    assert wall_value("2025-09-04").isoformat() == "2025-09-04"
    assert wall_value("2025-09-02T16:00:00Z").isoformat() == "2025-09-02T16:00:00+00:00"
    for kept in ("2025-13-01", "tomorrow", "2025-09-02T25:00", 5, None):
        assert wall_value(kept) == kept


def test_members_a_request_may_not_set_are_named() -> None:
    with pytest.raises(ApiProblem) as derived:
        rep.check_members({"title": "x", "end_utc": "2025-09-02T17:00:00Z"})
    assert (derived.value.status, derived.value.pointer) == (422, "/end_utc")
    with pytest.raises(ApiProblem) as unknown:
        rep.check_members({"timezone": "UTC"})
    assert unknown.value.pointer == "/timezone" and "start" in unknown.value.detail
    with pytest.raises(ApiProblem) as inner:
        rep.entry_table({"start": {"local": "2025-09-02T10:00:00", "tz": "UTC"}})
    assert inner.value.pointer == "/start/tz"
    assert rep.pointer("end_timezone") == "/end/zone" and rep.pointer("exdate") == "/exdates"
