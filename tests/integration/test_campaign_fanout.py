"""A run fulfilled by the database as it selects writes exactly what the fulfilment worker writes, row for row."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from campaigns import fanout
from campaigns.definition import parse
from campaigns.models import CampaignMember
from channels.models import OutboxMessage
from growth.db import get_db
from growth.investors.models import Investor
from growth.rewards.models import Reward, RewardEntry
from tests.campaign_runs import run_to_end, scheduled_campaign
from tests.factories import make_investor

NOW = datetime(2026, 12, 3, 4, 0, tzinfo=UTC)  # 12:00 in Shanghai
SMS = {"channel": "sms", "text": "{{ investor.name }}您好，{{ reward.amount }}元{{ reward.kind_label }}已到账，"
                                 "{{ reward.expires_on }}前有效，{{ campaign.name }}。回T退订",
       "template_code": "SMS_100", "params": {"name": "{{ investor.name }}", "amount": "{{ reward.amount }}"}}
DOCUMENT = {
    "name": "唤醒礼", "type": "reactivation", "class": "marketing", "schedule": {"at": "2026-12-03T10:00:00+08:00"},
    "holdout_percent": 20,
    "rewards": [{"kind": "voucher", "amount": "20.00", "min_investment": "1000.00", "valid_days": 30},
                {"kind": "cash", "amount": "5.00"}],
    "budget": {"max_grants": 30, "per_investor": 1},
    "messages": [SMS],
}


def _campaign(app, document: dict[str, Any]) -> int:  # type: ignore[no-untyped-def]
    return scheduled_campaign(app, document, NOW)


def _run(app, cid: int) -> None:  # type: ignore[no-untyped-def]
    run_to_end(app, cid, NOW, chunk=17, limit=13)


def _written(app, cid: int) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """Everything a campaign's run wrote, with its own ids (campaign, members, rewards) replaced by positions."""
    with get_db(app).session_scope() as s:
        members = s.scalars(select(CampaignMember).where(CampaignMember.campaign_id == cid)
                            .order_by(CampaignMember.investor_id)).all()
        member_of = {m.id: m.investor_id for m in members}
        rewards = s.scalars(select(Reward).where(Reward.campaign_id == cid).order_by(Reward.investor_id, Reward.kind))
        reward_of: dict[int, tuple[int, str]] = {}
        plain_rewards = []
        for r in rewards:
            reward_of[r.id] = (r.investor_id, r.kind)
            _campaign_part, _cid, _member, member_id, item = r.key.split(":")
            row = {c.key: getattr(r, c.key) for c in Reward.__table__.c if c.key not in ("id", "campaign_id",
                                                                                        "budget_id", "key")}
            assert row.pop("cause").startswith("run:")  # each campaign's own run
            plain_rewards.append((member_of[int(member_id)], item, row))
        entries = sorted((reward_of[e.reward_id], e.kind, e.source, e.at, e.amount_fen, e.actor)
                         for e in s.scalars(select(RewardEntry).where(RewardEntry.reward_id.in_(reward_of))))
        messages = []
        for o in s.scalars(select(OutboxMessage).where(OutboxMessage.campaign_id == cid)):
            content = dict(o.content)
            if o.channel == "webhook":
                body = dict(content["data"]["data"])
                who = reward_of[int(body.pop("id").removeprefix("rw_"))]
                body.pop("campaign_id")
                content = {"type": content["data"]["type"], "data": body}
                assert o.key == f"c{cid}|-|webhook|{o.cause}"
            else:
                who = (o.investor_id, "sms")
                assert o.key == f"c{cid}|{o.investor_id}|sms|{o.cause}"
            messages.append((who, o.sender, o.user_id, o.channel, o.message_class, o.status, o.due_at, o.fallback,
                             content))
    return {"members": [(m.investor_id, m.holdout, m.status, m.rewards_granted, m.fulfilled_at, m.entered_at)
                        for m in members],
            "rewards": plain_rewards, "entries": entries, "messages": sorted(messages, key=repr)}


def test_the_database_writes_a_runs_members_rewards_and_messages_exactly_as_fulfilment_does(app, monkeypatch):
    with get_db(app).session_scope(write=True) as s:
        for n in range(60):  # one without a name: the template says "" for it, as Jinja does
            make_investor(s, registered_at=NOW - timedelta(days=10), name=None if n == 7 else f"投资人{n}")
    assert fanout.in_sql(parse(DOCUMENT))
    by_database = _campaign(app, DOCUMENT)
    _run(app, by_database)
    with monkeypatch.context() as patched:
        patched.setattr(fanout, "in_sql", lambda _definition: False)
        by_worker = _campaign(app, {**DOCUMENT, "name": "唤醒礼"})
        _run(app, by_worker)
    # The same holdout for both would need the same campaign id; compare who is where instead.
    sql, worker = _written(app, by_database), _written(app, by_worker)
    statuses = {status for _i, _h, status, *_ in sql["members"]}
    assert statuses == {"done", "holdout", "budget_exhausted"}  # the example covers every outcome
    assert len(sql["members"]) == len(worker["members"]) == 60
    sql_side = {i: (h, status, granted, at) for i, h, status, granted, at, _e in sql["members"]}
    for investor_id, holdout, status, granted, at, _e in worker["members"]:
        if sql_side[investor_id][0] == holdout and (status == "budget_exhausted") == (
                sql_side[investor_id][1] == "budget_exhausted"):
            assert sql_side[investor_id] == (holdout, status, granted, at)
    same = {i for i, h, status, *_ in worker["members"] if (h, status) == sql_side[i][:2] and status == "done"}
    assert len(same) >= 10

    def only(written: dict[str, Any]) -> dict[str, Any]:
        return {"rewards": [r for r in written["rewards"] if r[0] in same],
                "entries": [e for e in written["entries"] if e[0][0] in same],
                "messages": [m for m in written["messages"] if m[0][0] in same or m[2] in users]}

    with get_db(app).session_scope() as s:
        users = set(s.scalars(select(Investor.platform_user_id).where(Investor.id.in_(same))))
    assert only(sql) == only(worker)
    assert only(sql)["messages"] and only(sql)["rewards"]


@pytest.mark.parametrize("text", ["{{ investor.masked_phone }}您好。回T退订", "{{ investor.name | upper }}。回T退订",
                                  "{% if true %}您好{% endif %}。回T退订"])
def test_a_message_the_database_cannot_build_leaves_the_members_to_fulfilment(text):
    assert not fanout.in_sql(parse({**DOCUMENT, "messages": [{**SMS, "text": text}]}))
