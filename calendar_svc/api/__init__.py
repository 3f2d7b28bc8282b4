"""The HTTP API under ``/api/v1`` (``[api] enabled = true``): calendars and entries in JSON,
for programs (a booking system, a newsroom's planning tool, a script).

``app`` builds the Starlette app the feed server mounts; ``auth`` says whose key
a request carries and slows down guessers; ``representation`` turns entries into
JSON and bodies into the tables the one validator reads; ``schema`` generates
the OpenAPI document from that validator's schema; ``problems`` answers refusals
as RFC 9457 problems. The writes themselves are ``entry_edits`` (shared with the
CLI), the keys ``api_keys``, the remembered answers ``idempotency``.
"""
