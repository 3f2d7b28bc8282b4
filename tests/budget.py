"""How hard the property tests try: a bounded number of examples in CI, more on request.

``CALENDAR_SVC_HYPOTHESIS_EXAMPLES=20000 pytest tests/test_timezones.py`` runs every
time property with that many examples (a long run before a release, or after a tz
database update); unset, each property keeps the small default it names.
"""

from __future__ import annotations

import os

ENV = "CALENDAR_SVC_HYPOTHESIS_EXAMPLES"


def examples(default: int) -> int:
    """``default``, or the number in ``$CALENDAR_SVC_HYPOTHESIS_EXAMPLES`` when it is set."""
    value = os.environ.get(ENV, "").strip()
    if not value:
        return default
    try:
        count = int(value)
    except ValueError:
        raise ValueError(f"{ENV} must be a whole number of examples, got {value!r}") from None
    if count < 1:
        raise ValueError(f"{ENV} must be at least 1, got {count}")
    return count
