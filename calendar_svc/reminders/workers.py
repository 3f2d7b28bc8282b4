"""Daemon threads for sends: a small pool, and one per channel (``Lanes``).

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


class Lanes:
    """A ``WorkerPool`` per channel, of as many threads as the channel's ``concurrency``.

    One shared pool let a slow receiver take every thread while the other channels'
    reminders waited in the queue behind it; a lane holds up only its own channel.
    A lane whose size changes (a reload) is replaced: the old one runs what it already
    queued, then its threads end, so for that while the channel has both.
    """

    def __init__(self, name: str = "send"):
        self._name = name
        self._lock = threading.Lock()
        self._lanes: dict[str, tuple[int, WorkerPool]] = {}

    def submit(self, channel: str, size: int, task: Task) -> None:
        with self._lock:
            lane = self._lanes.get(channel)
            if lane is None or lane[0] != size:
                if lane is not None:
                    lane[1].shutdown()
                lane = (size, WorkerPool(size, f"{self._name}-{channel}"))
                self._lanes[channel] = lane
        lane[1].submit(task)

    def sizes(self) -> dict[str, int]:
        """Threads per channel (of the current lanes)."""
        with self._lock:
            return {channel: size for channel, (size, _) in self._lanes.items()}

    def shutdown(self) -> None:
        with self._lock:
            lanes, self._lanes = list(self._lanes.values()), {}
        for _, pool in lanes:
            pool.shutdown()
