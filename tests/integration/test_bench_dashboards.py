"""The dashboards benchmark keeps working: a small log is seeded, the processor agrees, every figure is reported."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(600)
@pytest.mark.parametrize("db", ["sqlite", "postgresql"])
def test_a_small_dashboards_benchmark_run_agrees_with_the_processor_and_the_naive_scan_and_reports_every_figure(
        tmp_path, db):
    out = tmp_path / "dashboards.json"
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "dashboards.py"), "--size", "2000", "--runs", "3",
                           "--db", db, "--check-processor", "--json", str(out)], cwd=ROOT, capture_output=True,
                          text=True, timeout=580, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (result,) = json.loads(out.read_text())["results"]
    counts = result["counts"]
    assert counts["investors"] == 2000
    assert 8 * 2000 <= counts["platform_events"] <= 12 * 2000  # ≈10 events per investor
    assert counts["investments"] > 2000 and counts["clicks"] > 0 and counts["rewards"] > 0
    assert counts["campaign_members"] > 0
    # The derived tables the bench wrote are what the real processor makes of the same events.
    processor = result["processor"]
    assert processor["processed"] == counts["platform_events"]
    assert processor["rows"]["investors"] == 2000
    assert processor["different"] == {"investors": 0, "investments": 0, "funds_movements": 0}
    assert {c["mode"] for c in result["cases"]} == {"live", "rollup"}  # before and after the rollup is built
    assert result["rollup_seconds"] > 0 and "daily cohort rollup built in" in done.stdout
    for mode in ("live", "rollup"):
        cases = {c["label"]: c for c in result["cases"] if c["mode"] == mode}
        for days in ("30 days", "90 days"):
            for group in ("none", "channel", "week", "campaign", "referral"):
                case = cases[f"funnel group_by={group}, {days}"]
                assert case["n"] == 3, case
                # Campaign entries are not in the event log: the naive scan checks that grouping's total.
                assert ("total only" in case["note"]) == (group == "campaign")
            assert cases[f"channel economics, {days}"]["n"] == 3
        for case in cases.values():
            assert case["mismatches"] == []
            assert 0 < case["p50"] <= case["max"] and case["naive_p50"] > 0
            assert f"| {mode} | {case['label']} |" in done.stdout
