"""The campaign page's runs and results, the list's calendar of upcoming runs, and the kill-switch page."""

from __future__ import annotations

import copy
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import time_machine
from flask import Flask
from sqlalchemy import select

from campaigns.fulfilment import fulfil_due
from campaigns.models import Campaign, CampaignMember
from campaigns.runner import select_chunk, task_campaign_run
from channels.models import OutboxMessage
from growth.audit.models import AuditEntry
from growth.db import get_db
from growth.investors.models import Investment
from growth.timeutil import SHANGHAI
from tests.factories import make_investor, make_message
from tests.functional.test_campaign_pages import DOC, make_campaign, signed_in, text

NOW = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai
RUN_AT = NOW + timedelta(hours=1)
TILE = r'data-tile="(\w+)">\s*<div class="small text-muted">[^<]*</div><div class="fs-5 text-nowrap">([^<]*)<'
COUNT = r'data-count="(\w+)">\s*<div class="small text-muted">[^<]*</div><div class="fs-4">(\d+)<'
CJK = re.compile(r"[\u3000-\u303f\u4e00-\u9fff\uff00-\uffef]")


@pytest.fixture
def app_config() -> dict[str, Any]:
    return {"IDLE_TIMEOUT": timedelta(days=1)}  # the tests move the clock on by hours between requests


@pytest.fixture(autouse=True)
def clock():  # type: ignore[no-untyped-def]
    """Freeze the clock at NOW for the whole test (sign-in included); `clock.move_to` moves it on."""
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


def card(html: str, card_id: str) -> str:
    """Return the HTML of one card of a page, up to the next card."""
    start = html.index(f'id="{card_id}"')
    end = html.find('class="card', start)
    return html[start:] if end == -1 else html[start:end]


def scheduled(app: Flask, *, at: datetime = RUN_AT, **changes: Any) -> tuple[int, Any]:
    """Create and approve a one-shot campaign at `at`; return its id and a marketer's client."""
    client, author = signed_in(app, "marketer")
    _a, approver = signed_in(app, "approver")
    doc = copy.deepcopy(DOC)
    # A cash reward: a rate boost without an investment has no maximum cost for the amount limit to hold.
    doc.update(schedule={"at": at.isoformat()}, audience={}, rewards=[{"kind": "cash", "amount": "5.00"}], **changes)
    return make_campaign(app, author, doc, status="scheduled", approver_id=approver), client


def run_and_select(app: Flask, campaign_id: int, at: datetime) -> None:
    """Record the run due at `at` (as the scheduler's job would) and select its audience to the end."""
    with get_db(app).session_scope(write=True) as s:
        task_campaign_run(s, at, campaign_id)
    while True:
        with get_db(app).session_scope(write=True) as s:
            if not select_chunk(session=s, now=at, chunk=3):
                return


def fulfil_all(app: Flask, at: datetime) -> None:
    while True:
        with get_db(app).session_scope(write=True) as s:
            if not fulfil_due(session=s, app=app, now=at):
                return


def investors(app: Flask, n: int) -> list[int]:
    with get_db(app).session_scope(write=True) as s:
        return [make_investor(s, registered_at=NOW - timedelta(days=20 + i)).id for i in range(n)]


def members(app: Flask, campaign_id: int) -> list[CampaignMember]:
    with get_db(app).session_scope() as s:
        rows = list(s.scalars(select(CampaignMember).where(CampaignMember.campaign_id == campaign_id)))
        s.expunge_all()
        return rows


# --- the campaign page: schedule --------------------------------------------------------------------------


def test_a_cron_campaign_lists_its_next_runs_in_shanghai_time_and_explains_missed_runs(app):
    campaign_id, client = scheduled(app, at=RUN_AT)
    with get_db(app).session_scope(write=True) as s:
        campaign = s.get(Campaign, campaign_id)
        assert campaign is not None
        document = dict(campaign.definition, schedule={"cron": "30 9 * * 1"},
                        window={"end": (NOW + timedelta(days=60)).isoformat()})
        campaign.definition = document
    runs = card(text(client.get(f"/campaigns/{campaign_id}")), "campaign-runs")
    mondays = []
    day = NOW.astimezone(SHANGHAI).date()
    while len(mondays) < 5:
        day += timedelta(days=1)
        if day.weekday() == 0:  # crontab's 1 is Monday
            mondays.append(f"{day.isoformat()} 09:30")
    shown = re.findall(r"\d{4}-\d\d-\d\d \d\d:\d\d", runs.split('id="next-runs"', 1)[1].split("</dd>", 1)[0])
    assert shown == mondays
    assert "补跑一次" in runs.split('id="misfire-policy"', 1)[1]
    assert 'id="no-runs"' in runs and 'id="no-budget"' in runs
    assert 'data-in-progress="false"' in runs


def test_a_trigger_campaign_has_no_schedule_and_no_runs_but_says_how_it_runs(app):
    client, author = signed_in(app, "marketer")
    doc = dict(copy.deepcopy(DOC), trigger={"on": "first_investment"})
    del doc["schedule"]
    campaign_id = make_campaign(app, author, doc)
    runs = card(text(client.get(f"/campaigns/{campaign_id}")), "campaign-runs")
    assert "事件触发" in runs
    assert 'id="next-runs"' not in runs and 'id="misfire-policy"' not in runs and 'id="run-list"' not in runs


# --- the campaign page: a run, its progress and its results ----------------------------------------------


def test_a_run_shows_its_progress_while_members_wait_and_the_results_once_they_are_fulfilled(app, clock):
    ids = investors(app, 8)
    # The masked phone is rendered by fulfilment (a run the database cannot build waits for it): members wait.
    masked = {"channel": "sms", "text": "{{ investor.masked_phone }}，加息券已到账。投资有风险，理财需谨慎。回T退订"}
    campaign_id, client = scheduled(app, holdout_percent=50, messages=[masked])
    run_and_select(app, campaign_id, RUN_AT)
    entered = members(app, campaign_id)
    assert len(entered) == len(ids)
    held = [m for m in entered if m.holdout]
    treated = [m for m in entered if not m.holdout]
    assert held and treated  # 8 investors at 50 %: both sides have someone

    clock.move_to(RUN_AT)
    page = text(client.get(f"/campaigns/{campaign_id}"))
    polled = client.get(f"/campaigns/{campaign_id}/progress").get_json()
    runs = card(page, "campaign-runs")
    assert 'data-in-progress="true"' in runs
    assert f"已处理 {len(held)} / 选中 {len(ids)} 人" in runs  # holdout members are decided at selection
    assert polled["in_progress"] is True and polled["waiting"] == len(treated)
    assert [(r["selected"], r["fulfilled"]) for r in polled["runs"]] == [(len(ids), len(held))]

    fulfil_all(app, RUN_AT + timedelta(minutes=1))
    with get_db(app).session_scope(write=True) as s:  # one investor on each side invests after entering
        for n, m in enumerate((treated[0], held[0])):
            s.add(Investment(investment_id=f"inv_{n}", investor_id=m.investor_id, amount_fen=(n + 1) * 100_000,
                             term_days=30, started_at=RUN_AT + timedelta(hours=2)))
    clock.move_to(RUN_AT + timedelta(hours=3))
    page = text(client.get(f"/campaigns/{campaign_id}"))
    polled = client.get(f"/campaigns/{campaign_id}/progress").get_json()
    assert polled["in_progress"] is False and polled["fulfilled"] == len(ids)
    runs = card(page, "campaign-runs")
    assert 'data-in-progress="false"' in runs and f"已处理 {len(ids)} / 选中 {len(ids)} 人" in runs
    assert 'data-budget="grants"' in runs and 'id="burn-chart"' in runs
    results = card(page, "campaign-results")
    tiles = dict(re.findall(TILE, results))
    assert tiles["members"] == str(len(ids)) and tiles["holdout"] == str(len(held))
    assert tiles["granted"] == str(len(treated))
    with get_db(app).session_scope() as s:
        made = s.scalars(select(OutboxMessage.status).where(OutboxMessage.campaign_id == campaign_id,
                                                            OutboxMessage.channel == "sms")).all()
    assert tiles["messages"] == f"0 / {len(made)}" and len(made) == len(treated)
    assert re.search(r'data-cell="treated-investors">1<', results)
    assert re.search(r'data-cell="holdout-investors">1<', results)
    assert 'id="conversion-chart"' in results and 'id="messages-chart"' in results
    expected = round(100 * (1 / len(treated) - 1 / len(held)), 1)
    assert f"{expected:+.1f} 个百分点" in results


def test_the_results_and_runs_read_in_english(app, clock):
    investors(app, 4)
    campaign_id, client = scheduled(app, holdout_percent=50, name="Rate week")
    run_and_select(app, campaign_id, RUN_AT)
    fulfil_all(app, RUN_AT)
    client.get("/lang/en")
    clock.move_to(RUN_AT + timedelta(minutes=5))
    page = text(client.get(f"/campaigns/{campaign_id}"))
    for card_id in ("campaign-runs", "campaign-results"):
        part = re.sub(r'data-figure="[^"]*"', "", card(page, card_id))
        assert CJK.findall(part) == [], card_id
    assert "Lift" in page


def test_the_progress_of_an_unknown_campaign_is_404(app):
    client, _id = signed_in(app, "analyst")
    assert client.get("/campaigns/987654/progress").status_code == 404


# --- the list's calendar -----------------------------------------------------------------------------------


def test_the_list_shows_upcoming_runs_by_shanghai_day_and_leaves_out_drafts(app):
    late = datetime(2026, 12, 4, 16, 30, tzinfo=UTC)  # 00:30 on the 5th in Shanghai
    first, _c = scheduled(app, at=late, name="Midnight run")
    cron, _c = scheduled(app, at=RUN_AT, name="Daily run")
    with get_db(app).session_scope(write=True) as s:
        campaign = s.get(Campaign, cron)
        assert campaign is not None
        campaign.definition = dict(campaign.definition, schedule={"cron": "0 9 * * *"},
                                   window={"end": datetime(2026, 12, 3, 12, 0, tzinfo=UTC).isoformat()})
    client, author = signed_in(app, "analyst")
    make_campaign(app, author, dict(copy.deepcopy(DOC), name="Draft run"))
    calendar = card(text(client.get("/campaigns")), "run-calendar")
    days = re.findall(r'data-day="([\d-]+)"', calendar)
    # 10:00 on the 1st has passed 09:00; the cron runs on the 2nd and 3rd (its window ends at 20:00 on the 3rd).
    assert days == ["2026-12-02", "2026-12-03", "2026-12-05"]
    fifth = calendar.split('data-day="2026-12-05"', 1)[1]
    assert "00:30" in fifth and "Midnight run" in fifth
    assert calendar.count("Daily run") == 2 and "Draft run" not in calendar


def test_the_calendar_is_an_empty_state_without_scheduled_campaigns(app):
    client, _id = signed_in(app, "agent")
    calendar = card(text(client.get("/campaigns")), "run-calendar")
    assert "未来 30 天没有定时执行的活动" in calendar


# --- the kill switch page ------------------------------------------------------------------------------------


def test_only_holders_of_the_kill_switch_see_it_on_the_list_and_may_open_it(app):
    marketer, _m = signed_in(app, "marketer")
    assert 'id="kill-switch-link"' not in text(marketer.get("/campaigns"))
    assert marketer.get("/campaigns/kill-switch").status_code == 403
    approver, _a = signed_in(app, "approver")
    assert 'id="kill-switch-link"' in text(approver.get("/campaigns"))
    page = text(approver.get("/campaigns/kill-switch"))
    assert 'data-on="false"' in page and 'id="kill-switch-on"' in page


def test_switching_on_asks_a_reason_pauses_marketing_campaigns_holds_messages_and_is_audited(app):
    campaign_id, _client = scheduled(app)
    with get_db(app).session_scope(write=True) as s:
        queued = make_message(s).id
        service = make_message(s, message_class="service").id
    approver, approver_id = signed_in(app, "approver")
    page = text(approver.get("/campaigns/kill-switch"))
    counts = dict(re.findall(COUNT, page))
    assert counts == {"live": "1", "paused": "0", "held": "0", "waiting": "1"}

    refused = approver.post("/campaigns/kill-switch", data={"on": "true", "reason": "  "})
    assert refused.status_code == 422
    with get_db(app).session_scope() as s:
        assert s.get(Campaign, campaign_id).status == "scheduled"  # type: ignore[union-attr]

    response = approver.post("/campaigns/kill-switch", data={"on": "true", "reason": "短信文案写错了"})
    assert response.status_code == 302
    with get_db(app).session_scope() as s:
        assert s.get(Campaign, campaign_id).status == "paused"  # type: ignore[union-attr]
        assert s.get(OutboxMessage, queued).hold_reason == "kill_switch"  # type: ignore[union-attr]
        assert s.get(OutboxMessage, service).status == "queued"  # type: ignore[union-attr]
        entry = s.scalars(select(AuditEntry).where(AuditEntry.action == "kill_switch.on")).one()
        assert entry.actor_id == approver_id and entry.details["reason"] == "短信文案写错了"
    page = text(approver.get("/campaigns/kill-switch"))
    counts = dict(re.findall(COUNT, page))
    assert counts == {"live": "0", "paused": "1", "held": "1", "waiting": "1"}
    assert 'data-on="true"' in page and 'id="kill-switch-off"' in page
    assert 'id="kill-switch-banner"' in text(approver.get("/campaigns"))

    approver.post("/campaigns/kill-switch", data={"on": "false", "reason": "已改正"})
    with get_db(app).session_scope() as s:
        assert s.get(Campaign, campaign_id).status == "paused"  # type: ignore[union-attr]
        assert s.scalars(select(AuditEntry.details).where(AuditEntry.action == "kill_switch.off")).one()["reason"] \
            == "已改正"
    assert 'data-on="false"' in text(approver.get("/campaigns/kill-switch"))


def test_the_kill_switch_page_reads_in_english(app):
    approver, _a = signed_in(app, "approver")
    approver.get("/lang/en")
    page = text(approver.get("/campaigns/kill-switch"))
    main = page.split("<main", 1)[1].split("</main>", 1)[0]
    assert CJK.findall(main) == []
    assert "Marketing kill switch" in main
