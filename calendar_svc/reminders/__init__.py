"""Reminders: derived schedule, persisted record.

* ``rules``       which reminders an entry has and when they are due, and the feed's
                  alarms from the same rules (pure)
* ``policy``      late / missed and retry backoff (pure)
* ``outcome``     a claimed delivery row and the named ways one attempt at it ends (pure)
* ``decision``    what the dispatcher does with one claimed row: send it, or end it
                  unsent; retry or give up after a failure (pure)
* ``repository``  the deliveries table's SQL (insert-if-absent, claim, finish, leases),
                  in the caller's transaction
* ``entries``     the entry reads of the planner and the dispatcher
* ``passes``      the planner's state: one pass at a time, when the last one ran
* ``reports``     counts and lists of deliveries for ``status`` and the STATUS line
* ``planner``     entries -> pending delivery rows for the near horizon
* ``dispatcher``  claims due rows, sends them through notifiers, records outcomes
* ``workers``     the bounded pool of threads the dispatcher sends on
* ``retire``      closes the notifiers a reload replaced once no send holds them
* ``alarms``      APScheduler 3 date jobs that wake the dispatcher at each due instant
* ``lock``        one daemon per SQLite database
* ``watch``       notices edited schedule files
"""
