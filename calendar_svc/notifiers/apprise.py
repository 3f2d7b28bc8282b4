"""``apprise``: any service Apprise knows (Slack, Telegram, Matrix, Signal, e-mail, …).

Needs the extra: ``pip install 'calendar-svc[apprise]'``. Apprise only says
whether a notification went out, not why not, so every failure is retryable
and carries Apprise's own log lines as the reason. Service URLs usually hold
tokens, so ``urls`` is a secret: keep it in ``urls_env`` / ``urls_credential``
(comma- or space-separated) or in a private config file.
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar

from calendar_svc.notifiers.base import Notifier
from calendar_svc.notifiers.keys import Key
from calendar_svc.notifiers.reminder import Reminder

try:
    import apprise
except ImportError:  # the optional extra is not installed
    apprise = None  # type: ignore[assignment]


class AppriseNotifier(Notifier):
    """Keys: ``urls`` (secret: a list of Apprise URLs, or ``urls_env`` / ``urls_credential``
    holding them comma-separated). Timeouts are Apprise's own per service (URL
    parameters ``cto`` / ``rto``).
    """

    keys: ClassVar = {
        "urls": Key(list, secret=True),
    }

    def __init__(self, name: str, table: Any, **kwargs: Any) -> None:
        super().__init__(name, table, **kwargs)
        if apprise is None:
            raise self.config_error(
                "type", "the apprise notifier needs Apprise: pip install 'calendar-svc[apprise]'"
            )
        urls = [u.strip() for u in self.settings["urls"].replace(" ", ",").split(",")]
        urls = [u for u in urls if u]
        for url in urls:
            self.hide(url)
        self.apprise = apprise.Apprise()
        for index, url in enumerate(urls, start=1):
            if not self.apprise.add(url):
                # Never echo the URL: it holds the service's token.
                raise self.config_error(
                    "urls", f"URL number {index} is not one Apprise understands"
                )
        if not urls:
            raise self.config_error("urls", "needs at least one URL")

    def send(self, reminder: Reminder) -> None:
        title, body = self.render(reminder)
        with apprise.LogCapture(level=logging.INFO) as captured:  # type: ignore[no-untyped-call]
            result = self.apprise.notify(body=body, title=title)
        if result:
            return
        lines = [line for line in captured.getvalue().splitlines() if line.strip()]
        # The last lines say why; a whole HTTP error page would not fit in a status column.
        reason = " / ".join(line.split(" - ", 2)[-1] for line in lines[-3:]) or "no reason given"
        raise self.retryable(f"Apprise could not notify: {reason}")
