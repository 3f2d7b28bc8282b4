"""The HTTP API under ``/api/v1`` (``[api] enabled = true``): calendars and entries in JSON,
for programs (a booking system, a newsroom's planning tool, a script).

``app`` builds the Starlette app the feed server mounts and runs every request
in one frame (key, problems, the log of changes); ``auth`` says whose key a
request carries and slows down guessers; ``frame`` holds what every endpoint
checks (scope, read-only keys, ``If-Match``, the body, idempotent POSTs);
``calendars``, ``entries`` and ``reminders`` are the endpoints;
``representation`` turns entries into JSON and bodies into the tables the one
validator reads; ``schema`` generates the OpenAPI document from that
validator's schema; ``problems`` answers refusals as RFC 9457 problems. The
writes themselves are ``entry_edits`` (shared with the CLI), the keys
``api_keys``, the remembered answers ``idempotency``.
"""
