"""A small pool of daemon threads for sends.

Not ``concurrent.futures.ThreadPoolExecutor``: its threads are joined at
interpreter exit, so one notifier hanging past the stop timeout would keep a
stopping daemon alive forever. These threads are daemonic; the dispatcher
decides how long to wait for them and puts unfinished work back in the table.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)

Task = Callable[[], None]


class WorkerPool:
    def __init__(self, workers: int, name: str = "send"):
        self._queue: queue.SimpleQueue[Task | None] = queue.SimpleQueue()
        self._threads = [
            threading.Thread(target=self._work, name=f"{name}-{i}", daemon=True)
            for i in range(workers)
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, task: Task) -> None:
        self._queue.put(task)

    def shutdown(self) -> None:
        """Ask idle workers to exit; busy ones finish their task (or are abandoned at exit)."""
        for _ in self._threads:
            self._queue.put(None)

    def _work(self) -> None:
        while True:
            task = self._queue.get()
            if task is None:
                return
            try:
                task()
            except Exception:  # a task's bug must not kill the worker and shrink the pool
                log.exception("worker.task_failed")
