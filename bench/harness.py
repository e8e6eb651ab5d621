"""What the benchmark scripts share: loopback ports, logs, medians, waiting for a quiet machine."""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

LOOPBACK = "127.0.0.1"
RSS_SAMPLE_SECONDS = 0.005


class BenchError(RuntimeError):
    """The benchmark could not measure what it set out to (a refused batch, a lost message, a process that died …)."""


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def tail(path: Path, lines: int = 30) -> str:
    """Return the last lines of a log file (or say there is none)."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def median_of(values: list[float]) -> float:
    """Return the median, NaN for no values."""
    return statistics.median(values) if values else float("nan")


def wait_for_quiet(max_load: float, max_wait: float) -> None:
    """Wait until the 1-minute load average drops below `max_load` (the machine is shared)."""
    deadline = time.monotonic() + max_wait
    while os.getloadavg()[0] >= max_load and time.monotonic() < deadline:
        print(f"  load {os.getloadavg()[0]:.2f} ≥ {max_load}; waiting …", file=sys.stderr, flush=True)
        time.sleep(30)


def sqlite_text(value: datetime) -> str:
    """Return a time as the app writes it into SQLite."""
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def _rss_kb() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * (os.sysconf("SC_PAGE_SIZE") // 1024)


class RssSampler:
    """Samples this process's resident set every few milliseconds; keeps the peak."""

    def __init__(self) -> None:
        self.start = _rss_kb()
        self.peak = self.start
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(RSS_SAMPLE_SECONDS):
            self.peak = max(self.peak, _rss_kb())

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss_kb())


def add_common_options(parser: argparse.ArgumentParser, *, pg_default: str, max_wait: float) -> None:
    """Add the options every database benchmark takes: seed, databases, JSON output, load wait, target check."""
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--db", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--pg-url", default=os.environ.get("BENCH_PG_URL", pg_default))
    parser.add_argument("--json", type=Path, help="write every figure here")
    parser.add_argument("--wait-load", type=float, default=0.0, help="wait for a 1-minute load below this first")
    parser.add_argument("--max-wait", type=float, default=max_wait)
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")


def run_seed_and_measure(argv: list[str], *, doc: str, pg_default: str, runs: int, width: int,
                         seed: Callable[[str, str, int, int], dict[str, int]],
                         measure: Callable[[str, int], dict[str, dict[str, float]]],
                         fresh: Callable[[str, str], Any]) -> int:
    """The main of a seed-then-time benchmark: per database, a fresh one seeded, then each query's p50 and max."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=1_000_000)
    parser.add_argument("--db", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--runs", type=int, default=runs)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--pg-url", default=pg_default)
    args = parser.parse_args(argv)
    for kind in ("sqlite", "postgresql") if args.db == "both" else (args.db,):
        with fresh(kind, args.pg_url) as url:
            t0 = time.perf_counter()
            counts = seed(url, kind, args.size, args.seed)
            print(f"{kind}: seeded {counts} in {time.perf_counter() - t0:.0f} s", flush=True)
            for label, figures in measure(url, args.runs).items():
                print(f"{kind:10s} {label:{width}s} p50 {figures['p50']:8.1f} ms   max {figures['max']:8.1f} ms",
                      flush=True)
    return 0


# --- personal data, encrypted as the app stores it (growth/crypto.py) ------------------------------------

# A benchmark's own data key (32 fixed bytes): the seeding process, the apps it creates and its child processes all
# read GROWTH_DATA_KEYS, so what the seed encrypts the app can read.
BENCH_DATA_KEYS = "bench:YmVuY2gtZGF0YS1rZXktYmVuY2gtZGF0YS1rZXktMzI"
CONTACT_INDEX_COLUMNS = ("phone_index", "phone_tail_index", "name_index", "email_index")


def use_bench_keys() -> Any:
    """Give this process (and the processes it starts) the benchmark's data key; return the key ring."""
    from growth import crypto

    os.environ["GROWTH_DATA_KEYS"] = BENCH_DATA_KEYS
    ring = crypto.parse_keys(BENCH_DATA_KEYS)
    crypto.configure(ring)
    return ring


def sealed_contact(ring: Any, phone: str | None, name: str | None, email: str | None
                   ) -> tuple[tuple[str | None, str | None, str | None], tuple[str | None, ...]]:
    """Return a profile's phone, name and email as stored (encrypted), and its search hashes (CONTACT_INDEX_COLUMNS)."""
    from growth.investors.rules import search_index

    sealed = tuple(None if v is None else ring.seal(v, f"investors.{f}")
                   for f, v in (("phone", phone), ("name", name), ("email", email)))
    index = {**search_index(ring, "phone", phone), **search_index(ring, "name", name),
             **search_index(ring, "email", email)}
    return (sealed[0], sealed[1], sealed[2]), tuple(index[c] for c in CONTACT_INDEX_COLUMNS)
