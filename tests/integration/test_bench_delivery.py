"""The delivery benchmark keeps working: a CI-size run through a real worker and the fake provider reports figures."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(300)
@pytest.mark.parametrize("db", ["sqlite", "postgresql"])
def test_a_short_delivery_benchmark_run_reports_every_figure(tmp_path, db):
    out = tmp_path / "bench.json"
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "delivery.py"), "--short", "--runs", "1", "--db", db,
         "--json", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=280, check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads(out.read_text())
    summary = {row["measure"]: row for row in report["summary"] if row["db"] == db}
    measured = [name for name, row in summary.items() if row["median"] and row["median"] > 0]
    assert any(name.startswith("enqueue ceiling") for name in measured)
    assert any(name.startswith("enqueue_many") and "RSS" in name for name in measured)
    assert any(name.startswith("send ceiling") for name in measured)
    assert any(name.startswith("one worker: start") for name in measured)
    (result,) = report["results"]
    # Every message was sent, and the fake provider saw each one exactly once (the harness checks it too).
    assert result["statuses"] == {"sent": report["send"]}
    assert (result["fake"]["requests"], result["fake"]["distinct"], result["fake"]["duplicates"]) == (
        report["send"], report["send"], 0)
