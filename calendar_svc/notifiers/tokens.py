"""Tokens notifiers derive from a reminder's idempotency key for their peers.

A peer that de-duplicates wants the key in a header or an e-mail's
Message-ID, whose characters are restricted: ``message_id_token`` gives the
key itself when it fits, else a stable digest of it, so every attempt of one
reminder carries the same token.
"""

from __future__ import annotations

import hashlib
import re


def message_id_token(key: str, *, limit: int = 64) -> str:
    """``key`` if it is safe as a header token / Message-ID left part, else a digest of it.

    Safe means letters, digits, ``-``, ``_`` and ``.``, at most ``limit``
    characters; anything else becomes 32 hex digits of SHA-256, so the same
    key always gives the same token.
    """
    if re.fullmatch(rf"[A-Za-z0-9_.-]{{1,{limit}}}", key) and not key.startswith("."):
        return key
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[: min(32, limit)]
