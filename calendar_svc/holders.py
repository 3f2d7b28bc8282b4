"""What API keys and share links have in common: a token handed to someone by name.

Both are created with a ``--name`` saying who holds the token (how an operator later
lists and revokes it), and both are active until they expire or are revoked.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final

from calendar_svc.errors import InputError

NAME_MAX: Final = 200


def holder_name(name: str, *, example: str) -> str:
    """A ``--name`` for whoever holds a token, spaces collapsed; an empty one is refused
    with an ``example`` of what to write."""
    cleaned = " ".join(name.split())
    if not cleaned:
        raise InputError(f"--name must not be empty: say {example}")
    if len(cleaned) > NAME_MAX:
        raise InputError(f"--name is {len(cleaned)} characters long; at most {NAME_MAX}")
    return cleaned


def token_state(now: datetime, *, expires_at: datetime | None, revoked_at: datetime | None) -> str:
    """``active``, ``expired`` or ``revoked`` (revoked wins over expired)."""
    if revoked_at is not None:
        return "revoked"
    if expires_at is not None and now >= expires_at:
        return "expired"
    return "active"
