"""Reminders: derived schedule, persisted record.

* ``rules``       which reminders an entry has and when they are due, and the feed's
                  alarms from the same rules (pure)
* ``policy``      late / missed and retry backoff (pure)
* ``repository``  the deliveries table's SQL (insert-if-absent, claim, finish, leases),
                  in the caller's transaction; named outcomes
* ``planner``     entries -> pending delivery rows for the near horizon
* ``dispatcher``  claims due rows, sends them through notifiers, records outcomes
* ``alarms``      APScheduler 3 date jobs that wake the dispatcher at each due instant
* ``lock``        one daemon per SQLite database
* ``watch``       notices edited schedule files
"""
