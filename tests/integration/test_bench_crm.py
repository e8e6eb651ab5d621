"""The CRM benchmark keeps working: a tiny book is seeded, every kind of request answers and is timed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(300)
@pytest.mark.parametrize("db", ["sqlite", "postgresql"])
def test_a_tiny_crm_benchmark_run_seeds_the_book_and_times_every_kind_of_request(tmp_path, db):
    out = tmp_path / "crm.json"
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "crm.py"), "--size", "1000", "--requests", "12",
                           "--db", db, "--json", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=280,
                          check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (result,) = json.loads(out.read_text())["results"]
    assert result["counts"]["investors"] == 1000 and result["counts"]["crm_tasks"] >= 20 * 50
    summary = result["summary"]
    assert {"search: platform id", "search: full phone", "search: last 4 digits", "search: name",
            "search: referral code", "worklist: an agent's tasks", "investor page"} <= set(summary)
    assert all(s["n"] == 12 and 0 < s["p50"] <= s["p95"] <= s["max"] for s in summary.values())
    assert "| search: name |" in done.stdout
