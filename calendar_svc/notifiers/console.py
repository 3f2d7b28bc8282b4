"""``console``: one line per reminder on stdout (the default channel, and the dev loop's)."""

from __future__ import annotations

import sys
from typing import ClassVar, TextIO

from calendar_svc.notifiers.base import Notifier
from calendar_svc.notifiers.keys import Key
from calendar_svc.notifiers.reminder import Reminder


class ConsoleNotifier(Notifier):
    """Prints ``TITLE | BODY [idempotency key]`` to stdout (or stderr).

    Keys: ``stream`` = ``"stdout"`` (default) or ``"stderr"``.
    """

    keys: ClassVar = {"stream": Key(str, "stdout", choices=("stdout", "stderr"))}

    def _stream(self) -> TextIO:
        # Looked up at send time, so that a redirected sys.stdout (tests, daemons) is honoured.
        return sys.stdout if self.settings["stream"] == "stdout" else sys.stderr

    def send(self, reminder: Reminder) -> None:
        title, body = self.render(reminder)
        # One line per reminder: embedded newlines from templates would split it in a journal.
        line = f"{title} | {body} [{reminder.idempotency_key}]".replace("\n", " ")
        try:
            stream = self._stream()
            stream.write(line + "\n")
            stream.flush()
        except (OSError, ValueError) as exc:  # ValueError: write to a closed file
            raise self.retryable(f"cannot write to {self.settings['stream']}: {exc}") from None
