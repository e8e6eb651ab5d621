"""The product's own processes a test starts (`growth worker`, gunicorn): a log per process, all stopped at the end."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from growth.config import TestConfig

ROOT = Path(__file__).resolve().parents[1]


def product_env(**values: str) -> dict[str, str]:
    """Return this environment without the test run's GROWTH_* variables, plus `values`.

    The product's processes get the tests' data key (unless `values` names one): the test reads what they
    encrypt, and they read what the test's own app wrote.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("GROWTH_")}
    env.update(PYTHONUNBUFFERED="1", GROWTH_DATA_KEYS=TestConfig.DATA_KEYS)
    env.update(values)
    return env


def stop_all(procs: list[subprocess.Popen[bytes]], timeout: float = 30.0) -> None:
    """SIGTERM every process still running, then wait for each; kill the ones that outstay `timeout`."""
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


class Processes:
    """Processes of one test, started with `python -m …` in `instance`, each writing its own log there."""

    def __init__(self, env: dict[str, str], instance: Path) -> None:
        self.env = env
        self.instance = instance
        self.procs: list[subprocess.Popen[bytes]] = []
        self.logs: list[Path] = []
        self.note = ""  # what the test saw last, shown with the logs when it times out

    def spawn(self, name: str, args: list[str]) -> subprocess.Popen[bytes]:
        """Start `python -m args…` with its output in `<instance>/<name>.log`."""
        log = self.instance / f"{name}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen([sys.executable, "-m", *args], env=self.env, cwd=ROOT, stdout=out,
                                    stderr=subprocess.STDOUT)
        self.procs.append(proc)
        self.logs.append(log)
        return proc

    def output(self) -> str:
        """Return the last lines each process wrote, and the test's note (for a failure's message)."""
        tails = "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}" for p in self.logs if p.exists())
        return f"{self.note}\n{tails}"

    def stop(self, timeout: float = 30.0) -> None:
        """Stop every process this test started (see `stop_all`)."""
        stop_all(self.procs, timeout)
