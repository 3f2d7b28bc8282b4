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


def ics_calendar(text: str) -> Any:
    """``ics.Calendar(text)``, without TatSu re-initialising colorama on every line."""
    import ics
    import tatsu.color

    with mock.patch.object(tatsu.color, "init", lambda: None):
        return ics.Calendar(text)
