"""Background work: the runner `growth worker` uses, and the supervisor `growth serve` keeps it alive with.

Each registered worker is a function `(app, stop: threading.Event) -> None` that loops until `stop`
is set; the runner gives each its own daemon thread and restarts it after a crash.

`growth serve` (the embedded default) runs no background work itself: it starts `growth worker` as
a child process, restarts it with backoff when it dies and stops it with the server, so pages and
ingest never share an interpreter (a GIL) with the processor or a campaign run. The child watches a
pipe from the server and stops when it closes, which also happens when the server is killed outright.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from flask import Flask

from growth.observability.services import Heartbeat, record_worker_crash
from growth.timeutil import utcnow

log = logging.getLogger("growth.background")

Worker = Callable[[Flask, threading.Event], None]


@dataclass
class BackgroundRunner:
    """Starts and stops the registered workers of one app."""

    app: Flask
    workers: dict[str, Worker] = field(default_factory=dict)
    stop: threading.Event = field(default_factory=threading.Event)
    threads: list[threading.Thread] = field(default_factory=list)
    heartbeat: bool = True  # tell /readyz this process is alive (a row in worker_heartbeats)
    _beat: Heartbeat | None = None

    def start(self) -> None:
        """Start every worker in its own thread, and the heartbeat."""
        if self.heartbeat:
            self._beat = Heartbeat(self.app, list(self.workers))
            self._beat.start()
        for name, fn in self.workers.items():
            thread = threading.Thread(target=self._supervise, args=(name, fn), name=f"growth-{name}", daemon=True)
            thread.start()
            self.threads.append(thread)

    def _supervise(self, name: str, fn: Worker) -> None:
        while not self.stop.is_set():
            started = utcnow()
            try:
                fn(self.app, self.stop)
            except Exception as err:  # a crash must not end background work for good
                log.exception("background worker %s crashed; restarting in 5 s", name)
                record_worker_crash(self.app, name, err, started=started)
                self.stop.wait(5)
            else:
                return

    def shutdown(self, timeout: float = 10.0) -> None:
        """Ask every worker to stop and wait for them."""
        self.stop.set()
        deadline = time.monotonic() + timeout
        for thread in self.threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        if self._beat is not None:
            self._beat.shutdown()


def workers_for(app: Flask) -> dict[str, Worker]:
    """Return the app's registered background workers."""
    return app.extensions.setdefault("growth.workers", {})


def register_worker(app: Flask, name: str, fn: Worker) -> None:
    """Register a background worker under a unique name."""
    workers_for(app)[name] = fn


# --- the child process of `growth serve` ------------------------------------------------------------


def worker_command(watch_fd: int, predecessor: int | None = None) -> list[str]:
    """Return the command line of a `growth worker` that stops when `watch_fd` reaches end of file.

    `predecessor` is the process id of the child that died before it: the new one frees its leases.
    """
    command = [sys.executable, "-m", "growth.cli", "worker", "--watch-fd", str(watch_fd)]
    if predecessor is not None:
        command += ["--predecessor-pid", str(predecessor)]
    return command


@dataclass
class Backoff:
    """Delays between restarts: doubling from `first` up to `longest`, reset after a run of `stable` seconds."""

    first: float = 1.0
    longest: float = 30.0
    stable: float = 60.0
    _next: float = 0.0

    def after_run(self, seconds: float) -> float:
        """Return how long to wait before the next start, given how long the last run lasted."""
        if seconds >= self.stable or self._next == 0.0:
            self._next = self.first
        else:
            self._next = min(self._next * 2, self.longest)
        return self._next


class WorkerSupervisor:
    """Runs a child process (by default `growth worker`), restarts it when it dies, stops it on request.

    The child gets the read end of a pipe whose write end only this process holds: when this
    process ends in any way (even SIGKILL) the child reads end of file and stops by itself.
    """

    def __init__(self, command: Callable[[int, int | None], Sequence[str]] = worker_command, *,
                 env: dict[str, str] | None = None, backoff: Backoff | None = None,
                 stop_timeout: float = 20.0) -> None:
        self.command = command
        self.env = env
        self.backoff = backoff or Backoff()
        self.stop_timeout = stop_timeout
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._read_fd, self._write_fd = os.pipe()  # both close-on-exec; the child inherits only the read end

    @property
    def pid(self) -> int | None:
        """Return the current child's process id (None between runs)."""
        proc = self.proc
        return proc.pid if proc is not None and proc.poll() is None else None

    def start(self) -> None:
        """Start the child and a thread that waits on it (it does no work of its own)."""
        self._spawn()
        self._thread = threading.Thread(target=self._watch, name="growth-worker-supervisor", daemon=True)
        self._thread.start()

    def _spawn(self, predecessor: int | None = None) -> None:
        with self._lock:
            if self._stopping.is_set():
                return
            # Its own process group: Ctrl+C in a terminal reaches the server only, which then stops
            # the child in order instead of the child dying (and being restarted) on its own.
            self.proc = subprocess.Popen(list(self.command(self._read_fd, predecessor)), env=self.env,
                                         pass_fds=(self._read_fd,), process_group=0)
            self.starts += 1
            log.info("background worker started (pid %d)", self.proc.pid)

    def _watch(self) -> None:
        while not self._stopping.is_set():
            proc = self.proc
            assert proc is not None
            started = time.monotonic()
            code = proc.wait()
            if self._stopping.is_set():
                return
            delay = self.backoff.after_run(time.monotonic() - started)
            log.warning("background worker (pid %d) exited with %s; restarting in %.0f s", proc.pid, code, delay)
            if self._stopping.wait(delay):
                return
            self._spawn(predecessor=proc.pid)  # reaped above: that pid is dead for sure

    def stop(self) -> int | None:
        """Stop the child (SIGTERM, then SIGKILL after `stop_timeout`) and let no new one start."""
        with self._lock:
            self._stopping.set()
            proc = self.proc
        with contextlib.suppress(OSError):  # end of file for the child too, should it ignore SIGTERM
            os.close(self._write_fd)
        code = None
        if proc is not None:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            try:
                code = proc.wait(self.stop_timeout)
            except subprocess.TimeoutExpired:
                log.error("background worker (pid %d) did not stop in %.0f s; killing it", proc.pid, self.stop_timeout)
                proc.kill()
                code = proc.wait()
        if self._thread is not None:
            self._thread.join(5)
        with contextlib.suppress(OSError):  # stop() called twice
            os.close(self._read_fd)
        return code


def watch_parent(fd: int, stop: threading.Event) -> threading.Thread:
    """Set `stop` when the pipe `fd` from the supervising `growth serve` closes (it stopped or died)."""

    def _read() -> None:
        try:
            while os.read(fd, 1):  # the server never writes; anything read is ignored
                pass
        except OSError:
            pass
        if not stop.is_set():
            log.warning("the supervising server is gone; stopping")
            stop.set()

    thread = threading.Thread(target=_read, name="growth-parent-watch", daemon=True)
    thread.start()
    return thread
