"""The fan-out benchmark keeps working: a small run seeds, runs, checks every row and measures the ceiling."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(300)
@pytest.mark.parametrize("db", ["sqlite", "postgresql"])
def test_a_small_fanout_benchmark_run_checks_its_rows_and_reports_every_figure(tmp_path, db):
    out = tmp_path / "fanout.json"
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "fanout.py"), "--size", "1000", "--db", db,
                           "--json", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=280, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (result,) = json.loads(out.read_text())["results"]
    counts = result["counts"]
    treated = counts["members"] - counts["holdout"]
    assert counts["members"] == 1000 and 0 < counts["holdout"] < 1000
    assert counts["rewards"] == counts["sms"] == counts["webhooks"] == counts["budget grants"] == treated
    assert counts["holdout given anything"] == 0
    assert result["seconds"]["run"] > 0 and all(v > 0 for v in result["ceiling_seconds"].values())
    assert 0 < result["rss_peak_mb"] < 500
