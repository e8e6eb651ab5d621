"""THE grant: idempotent by key, within its budget (count, amount, per investor), webhook in the same transaction."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from channels.models import OutboxMessage
from growth.db import get_db
from growth.errors import Conflict
from growth.rewards.models import Reward, RewardBudget, RewardEntry
from growth.rewards.rules import BudgetExhausted, InvalidTerms, Terms
from growth.rewards.services import budget_for, grant, revoke
from tests.integration.rewards.helpers import T0, VOUCHER, give, register


def _counts(app):  # type: ignore[no-untyped-def]
    with get_db(app).session_scope() as s:
        return {m.__name__: s.scalar(select(func.count()).select_from(m)) for m in (Reward, RewardEntry, OutboxMessage)}


def test_a_grant_writes_the_reward_its_entry_and_the_granted_webhook_in_one_transaction(app, client):
    ids = register(app, client, "u1")
    with get_db(app).session_scope(write=True) as s:
        budget = budget_for("campaign", "7", session=s, now=T0, max_grants=10)
        reward = grant(session=s, key="c7|u1|registered", investor_id=ids["u1"], kind="voucher", terms=VOUCHER,
                       budget=budget, campaign_id=7, actor="campaign", now=T0)
        # Before the commit, in the same transaction: the webhook row is there already.
        webhook = s.scalars(select(OutboxMessage)).one()
        assert webhook.channel == "webhook" and webhook.user_id == "u1" and webhook.campaign_id == 7
        body = webhook.content["data"]
        assert body["type"] == "reward.granted"
        assert body["data"] == {
            "id": f"rw_{reward.id}", "kind": "voucher", "status": "granted", "amount": "50.00",
            "conditions": {"min_investment": "5000.00", "min_term_days": 30},
            "granted_at": "2026-09-01T02:00:00+00:00", "expires_at": "2026-10-01T16:00:00+00:00",
            "campaign_id": 7, "user_id": "u1", "valid_days": 30, "cost": "0.00",
        }
        s.rollback()  # the caller's transaction decides: nothing of it stays
    assert _counts(app) == {"Reward": 0, "RewardEntry": 0, "OutboxMessage": 0}


def test_a_repeated_key_returns_the_first_grant_with_no_second_budget_use_or_webhook(app, client):
    ids = register(app, client, "u1")
    first = give(app, ids["u1"], key="k1", owner=("campaign", "1"), max_grants=5)
    again = give(app, ids["u1"], key="k1", owner=("campaign", "1"))
    assert again == first
    with get_db(app).session_scope() as s:
        assert s.scalars(select(RewardBudget)).one().used_grants == 1
    assert _counts(app) == {"Reward": 1, "RewardEntry": 1, "OutboxMessage": 1}


@pytest.mark.parametrize(("limits", "limit"), [
    ({"max_grants": 1}, "max_grants"), ({"max_amount_fen": 9999}, "max_amount"), ({"per_investor": 1}, "per_investor"),
])
def test_a_grant_that_would_break_a_limit_raises_which_one_and_writes_nothing(app, client, limits, limit):
    ids = register(app, client, "u1")
    give(app, ids["u1"], key="first", owner=("campaign", "1"), **limits)
    before = _counts(app)
    with pytest.raises(BudgetExhausted) as refused:
        give(app, ids["u1"], key="second", owner=("campaign", "1"))
    assert refused.value.limit == limit
    assert _counts(app) == before
    with get_db(app).session_scope() as s:
        budget = s.scalars(select(RewardBudget)).one()
        assert (budget.used_grants, budget.used_amount_fen) == (1, 5000)


def test_the_per_investor_limit_counts_each_investor_apart(app, client):
    ids = register(app, client, "u1", "u2")
    give(app, ids["u1"], key="a", owner=("referral", "program"), per_investor=1)
    give(app, ids["u2"], key="b", owner=("referral", "program"))
    with pytest.raises(BudgetExhausted):
        give(app, ids["u2"], key="c", owner=("referral", "program"))


def test_cash_is_paid_at_grant_and_costs_its_amount(app, client):
    ids = register(app, client, "u1")
    rid = give(app, ids["u1"], "cash", Terms(amount_fen=888), key="cash")
    with get_db(app).session_scope() as s:
        reward = s.get(Reward, rid)
        assert (reward.status, reward.cost_fen, reward.settled_at) == ("paid", 888, T0)
        kinds = sorted(e.kind for e in s.scalars(select(RewardEntry)))
    assert kinds == ["granted", "paid"]


def test_a_rate_boost_without_an_investment_cap_cannot_use_an_amount_budget(app, client):
    ids = register(app, client, "u1")
    terms = Terms(annual_rate_bp=100, max_days=30, valid_days=30)
    with pytest.raises(InvalidTerms):
        give(app, ids["u1"], "rate_boost", terms, key="rb", owner=("campaign", "2"), max_amount_fen=100_000)
    assert give(app, ids["u1"], "rate_boost", terms, key="rb", owner=("campaign", "3"), max_grants=5)
    capped = Terms(annual_rate_bp=100, max_days=30, valid_days=30, max_investment_fen=1_000_000)
    rid = give(app, ids["u1"], "rate_boost", capped, key="rb2", owner=("campaign", "2"))
    with get_db(app).session_scope() as s:
        assert s.get(Reward, rid).budget_fen == 822


def test_revoking_a_granted_reward_books_an_entry_and_the_revoked_webhook_once(app, client):
    ids = register(app, client, "u1")
    rid = give(app, ids["u1"], key="v")
    with get_db(app).session_scope(write=True) as s:
        reward = revoke(rid, session=s, reason="误发", actor="admin@example.com", now=T0)
        assert reward.status == "revoked"
    with get_db(app).session_scope(write=True) as s, pytest.raises(Conflict):
        revoke(rid, session=s, reason="again", actor="admin@example.com", now=T0)
    with get_db(app).session_scope() as s:
        types = sorted(m.content["data"]["type"] for m in s.scalars(select(OutboxMessage)))
        assert types == ["reward.granted", "reward.revoked"]
        entry = s.scalars(select(RewardEntry).where(RewardEntry.kind == "revoked")).one()
        assert (entry.actor, entry.note, entry.source) == ("admin@example.com", "误发", "staff")
