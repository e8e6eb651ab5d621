"""`growth campaigns export` and `import`: YAML round trips the spec document; a broken file creates nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import Result
from sqlalchemy import func, select

from campaigns import services
from campaigns.models import Campaign
from growth.cli import cli
from growth.db import get_db
from growth.timeutil import utcnow
from tests.factories import make_user
from tests.functional.test_campaigns_api import DOC

HAND_WRITTEN = """\
- name: 到期复投提醒
  type: maturity_reinvest
  class: service
  trigger: {on: investment_matured, conditions: {min_amount: 1000.00}}
  window: {start: 2026-12-01T00:00:00+08:00, end: 2026-12-31T23:59:59+08:00}
  audience:
    all:
      - {field: registered_at, op: between, value: [2026-01-01, 2026-11-30]}
  rewards:
    - {kind: rate_boost, annual_rate: 0.0050, max_days: 30, valid_days: 3}
  messages:
    - {channel: sms, text: "{{ investor.name }}您好，您的投资已到期，复投可用加息券。投资有风险。"}
"""


@pytest.fixture
def run(app):  # type: ignore[no-untyped-def]
    runner = app.test_cli_runner()

    def _run(*args: str) -> Result:
        return runner.invoke(cli, list(args))

    return _run


def _count(app) -> int:  # type: ignore[no-untyped-def]
    with get_db(app).session_scope() as s:
        return s.scalar(select(func.count()).select_from(Campaign)) or 0


def test_an_export_imports_back_as_drafts_with_the_same_definitions(app, run, tmp_path: Path):
    with get_db(app).session_scope(write=True) as s:
        ids = [services.create({**DOC, "name": f"活动{i}"}, session=s, actor_id=None, now=utcnow()).id
               for i in range(2)]
    exported = run("campaigns", "export", *map(str, ids))
    assert exported.exit_code == 0, exported.output
    path = tmp_path / "campaigns.yaml"
    path.write_text(exported.output, encoding="utf-8")
    imported = run("campaigns", "import", str(path))
    assert imported.exit_code == 0, imported.output
    assert "created 2 draft(s)" in imported.output
    with get_db(app).session_scope() as s:
        rows = s.scalars(select(Campaign).order_by(Campaign.id)).all()
        assert [r.definition for r in rows[2:]] == [r.definition for r in rows[:2]]
        assert {r.status for r in rows[2:]} == {"draft"}


def test_a_hand_written_file_means_what_it_says_money_rates_and_times_included(app, run, tmp_path: Path):
    with get_db(app).session_scope(write=True) as s:
        marketer = make_user(s, role="marketer")
    path = tmp_path / "hand.yaml"
    path.write_text(HAND_WRITTEN, encoding="utf-8")
    result = run("campaigns", "import", str(path), "--as", marketer.email.upper())
    assert result.exit_code == 0, result.output
    with get_db(app).session_scope() as s:
        campaign = s.scalars(select(Campaign)).one()
        assert campaign.created_by == marketer.id
        assert campaign.definition["trigger"]["conditions"] == {"min_amount": "1000.00"}
        assert campaign.definition["rewards"][0]["annual_rate"] == "0.0050"
        assert campaign.definition["window"]["start"] == "2026-12-01T00:00:00+08:00"
        assert campaign.definition["audience"]["all"][0]["value"] == ["2026-01-01", "2026-11-30"]


def test_one_broken_campaign_refuses_the_whole_file_listing_each_problem(app, run, tmp_path: Path):
    path = tmp_path / "broken.yaml"
    path.write_text(HAND_WRITTEN + "- {name: 坏的, type: lottery, trigger: {on: registered}}\n", encoding="utf-8")
    result = run("campaigns", "import", str(path))
    assert result.exit_code != 0
    assert "[1].type: invalid_choice" in result.output
    assert "Traceback" not in result.output
    assert _count(app) == 0


@pytest.mark.parametrize("content", ["{not: [yaml", "42", "[]"])
def test_a_file_that_is_not_a_list_of_campaigns_is_refused_cleanly(app, run, tmp_path: Path, content: str):
    path = tmp_path / "bad.yaml"
    path.write_text(content, encoding="utf-8")
    result = run("campaigns", "import", str(path))
    assert result.exit_code != 0 and "malformed" in result.output and "Traceback" not in result.output
    assert _count(app) == 0


def test_exporting_an_unknown_id_says_which(run):
    result = run("campaigns", "export", "424242")
    assert result.exit_code != 0 and "424242" in result.output


def test_importing_as_an_unknown_staff_member_is_refused(run, tmp_path: Path):
    path = tmp_path / "hand.yaml"
    path.write_text(HAND_WRITTEN, encoding="utf-8")
    result = run("campaigns", "import", str(path), "--as", "nobody@example.com")
    assert result.exit_code != 0 and "nobody@example.com" in result.output
