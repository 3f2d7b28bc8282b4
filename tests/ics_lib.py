"""The `ics` library (one of the parsers the feeds are read with), made safe to call many times.

Its grammar engine, TatSu, calls ``colorama.init()`` on every content line it parses. Where
colorama is installed and standard output is not a terminal (CI), each call wraps
``sys.stdout`` once more, and a feed of a few hundred lines ends in ``RecursionError`` inside
colorama, not in anything the feed holds. Colours play no part in parsing, so the call is
turned off for the duration of a parse.
"""

from __future__ import annotations

from typing import Any
from unittest import mock

import dateutil


def reads_zones_past_2037() -> bool:
    """Whether ``ics`` reads times in a named zone right after 2037.

    ics looks zones up by name in the system's TZif files through dateutil's tzfile (the
    feed's VTIMEZONE only when the name is unknown), and before dateutil 3 tzfile ignores
    the files' footer rule: past 2037 its reading is then dateutil's standard time, not
    our feed's. (The bench extra pins dateutil < 3; some machines have 2.9 installed.)
    """
    return int(dateutil.__version__.split(".")[0]) >= 3


OLD_DATEUTIL = f"dateutil {dateutil.__version__} reads TZif files without their footer"


def ics_calendar(text: str) -> Any:
    """``ics.Calendar(text)``, without TatSu re-initialising colorama on every line."""
    import ics
    import tatsu.color

    with mock.patch.object(tatsu.color, "init", lambda: None):
        return ics.Calendar(text)
