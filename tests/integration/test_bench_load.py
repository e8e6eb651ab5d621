"""The load test keeps working: a short open-loop run on the embedded default stores and processes every event."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(120)
def test_a_short_load_run_answers_every_request_and_processes_every_event(tmp_path):
    out = tmp_path / "load.json"
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "load.py"), "--db", "sqlite", "--rate", "50", "--seconds", "3",
         "--warmup", "0", "--json", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=110, check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (run,) = json.loads(out.read_text())["runs"]
    assert run["requests"] == run["ok"] == 150 and run["errors"] == {}
    assert run["stored"] == run["expected"] == 150
    assert run["processor_lag_s"] is not None  # the worker child processed every event
    assert 0 < run["latency_ms"]["p50"] <= run["latency_ms"]["p99"] <= run["latency_ms"]["max"]
    assert run["cpu"]["serve"] > 0
