"""Background work that `growth serve` (in-process) and `growth worker` run: the hook later packages plug into.

Each registered worker is a function `(app, stop: threading.Event) -> None` that loops until `stop`
is set; the runner gives each its own daemon thread and restarts it after a crash.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from flask import Flask

log = logging.getLogger("growth.background")

Worker = Callable[[Flask, threading.Event], None]


@dataclass
class BackgroundRunner:
    """Starts and stops the registered workers of one app."""

    app: Flask
    workers: dict[str, Worker] = field(default_factory=dict)
    stop: threading.Event = field(default_factory=threading.Event)
    threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> None:
        """Start every worker in its own thread."""
        for name, fn in self.workers.items():
            thread = threading.Thread(target=self._supervise, args=(name, fn), name=f"growth-{name}", daemon=True)
            thread.start()
            self.threads.append(thread)

    def _supervise(self, name: str, fn: Worker) -> None:
        while not self.stop.is_set():
            try:
                fn(self.app, self.stop)
            except Exception:  # a crash must not end background work for good
                log.exception("background worker %s crashed; restarting in 5 s", name)
                self.stop.wait(5)
            else:
                return

    def shutdown(self, timeout: float = 10.0) -> None:
        """Ask every worker to stop and wait for them."""
        self.stop.set()
        deadline = time.monotonic() + timeout
        for thread in self.threads:
            thread.join(max(0.0, deadline - time.monotonic()))


def workers_for(app: Flask) -> dict[str, Worker]:
    """Return the app's registered background workers."""
    return app.extensions.setdefault("growth.workers", {})


def register_worker(app: Flask, name: str, fn: Worker) -> None:
    """Register a background worker under a unique name."""
    workers_for(app)[name] = fn
