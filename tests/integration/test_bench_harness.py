"""The benchmark harness keeps working: a tiny run through real servers completes and reports figures."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(300)
@pytest.mark.parametrize("db", ["sqlite", "postgresql"])
def test_a_tiny_benchmark_run_reports_every_figure(tmp_path, db):
    out = tmp_path / "bench.json"
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "ingest.py"), "--events", "2000", "--runs", "1", "--db", db,
         "--json", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=280, check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    summary = {row["measure"]: row for row in json.loads(out.read_text())["summary"] if row["db"] == db}
    measured = [name for name, row in summary.items() if row["median"] and row["median"] > 0]
    assert any(name.startswith("raw ceiling") for name in measured)
    assert any(name.startswith("API ingest (serve") for name in measured)
    assert any(name.startswith("processor alone") for name in measured)
    assert any(name.startswith("live:") for name in measured)
