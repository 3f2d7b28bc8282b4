"""Two small tz database releases built with ``zic``, for the tests of a rule change.

Release A is the world as the tests start in; release B is the update a
government forces on it:

* ``America/Mexico_City``: CST (-06:00) all year in A; in B Mexico takes DST
  back from 2027 (first Sunday of April 02:00 to last Sunday of October 02:00,
  CDT -05:00), so a July meeting moves an hour earlier in UTC and
  2030-04-07 02:30 no longer exists;
* ``America/Guayaquil``: -05 in A; -04 from 2024 in B, so every entry from
  now on moves an hour;
* ``America/New_York``: the same US rules in both (entries there do not move);
* ``Europe/Berlin``: in A only (a zone that is gone in B);
* ``Test/Drift``: +00 in A, +00:01 from 2020 in B: an instant one minute earlier,
  for a test that waits for a reminder at its new instant;
* ``UTC``.

``zic`` is Debian's (``/usr/sbin/zic``, from libc-bin); the tests that need it
skip without it.
"""

from __future__ import annotations

import shutil
import subprocess
import zoneinfo
from datetime import UTC, datetime
from pathlib import Path

import pytest

ZIC = shutil.which("zic") or ("/usr/sbin/zic" if Path("/usr/sbin/zic").exists() else None)
needs_zic = pytest.mark.skipif(ZIC is None, reason="zic (the tz compiler) is not installed")

_COMMON = """\
Rule	US	2007	max	-	Mar	Sun>=8	2:00	1:00	D
Rule	US	2007	max	-	Nov	Sun>=1	2:00	0	S
Zone	America/New_York	-4:56:02 -	LMT	1883 Nov 18 17:00u
			-5:00	US	E%sT
Zone	Etc/UTC	0	-	UTC
Link	Etc/UTC	UTC
"""

RELEASE_A = (
    _COMMON
    + """\
Zone	America/Mexico_City	-6:36:36 -	LMT	1922 Jan  1  7:00u
			-6:00	-	CST
Zone	America/Guayaquil	-5:19:20 -	LMT	1890
			-5:00	-	-05
Rule	EU	1981	max	-	Mar	lastSun	 1:00u	1:00	S
Rule	EU	1996	max	-	Oct	lastSun	 1:00u	0	-
Zone	Europe/Berlin	0:53:28 -	LMT	1893 Apr
			1:00	EU	CE%sT
Zone	Test/Drift	0	-	+00
"""
)

RELEASE_B = (
    _COMMON
    + """\
Rule	Mexico	2027	max	-	Apr	Sun>=1	2:00	1:00	D
Rule	Mexico	2027	max	-	Oct	lastSun	2:00	0	S
Zone	America/Mexico_City	-6:36:36 -	LMT	1922 Jan  1  7:00u
			-6:00	-	CST	2027
			-6:00	Mexico	C%sT
Zone	America/Guayaquil	-5:19:20 -	LMT	1890
			-5:00	-	-05	2024
			-4:00	-	-04
Zone	Test/Drift	0	-	+00	2020
			0:01	-	+0001
"""
)


def compile_release(folder: Path, source: str, version: str | None) -> Path:
    """``folder`` as ``zic -d`` writes it from ``source``, with ``+VERSION`` when given."""
    assert ZIC is not None
    folder.mkdir(parents=True)
    source_file = folder.parent / f"{folder.name}.zi"
    source_file.write_text(source)
    subprocess.run(
        [ZIC, "-d", str(folder), str(source_file)], check=True, capture_output=True, timeout=60
    )
    if version is not None:
        (folder / "+VERSION").write_text(f"{version}\n")
    return folder


def reference(folder: Path, zone: str) -> zoneinfo.ZoneInfo:
    """The standard library's reading of the same TZif file: the independent computation."""
    with (folder / zone).open("rb") as handle:
        return zoneinfo.ZoneInfo.from_file(handle, key=zone)


def instant(folder: Path, zone: str, wall: datetime) -> datetime:
    """``wall`` in ``zone`` as zoneinfo reads the folder's file (PEP 495 fold=0)."""
    return wall.replace(tzinfo=reference(folder, zone)).astimezone(UTC)
