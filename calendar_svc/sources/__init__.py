"""Sources: ICS feeds the daemon follows (``[[sources]]``), so other calendars' entries
appear in ours and get our reminders.

* ``fetch``: one conditional GET with limits (size, time, redirects, addresses,
  decompressed size), never parsing what did not change;
* ``sync``: fetch, then the same .ics import as ``calendar-svc import`` (one
  transaction, prune on) and the source's state row; the entries stay the last
  good copy when anything fails;
* ``loop``: a thread of its own in the daemon that syncs each source every
  ``interval``, several at once, so a slow or hostile feed delays no other.
"""
