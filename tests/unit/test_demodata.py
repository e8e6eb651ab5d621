"""Demo data: channels, staff, products and the generated platform events."""

from __future__ import annotations

import re
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

import pytest

from growth.acquisition.models import CHANNEL_KINDS
from growth.demodata import (
    DEMO_CHANNELS,
    DEMO_PRODUCTS,
    DEMO_STAFF,
    generate_events,
)
from growth.investors.rules import referral_code_for

NOW = datetime(2026, 11, 30, 4, 0, 0, tzinfo=UTC)
MONEY = re.compile(r"^[0-9]+\.[0-9]{2}$")
RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")
PHONE = re.compile(r"^\+861[3-9][0-9]{9}$")
RATE = re.compile(r"^0\.[0-9]{4}$")
DATA_KEYS = {
    "user.registered": (set(), {"channel_code", "click_id", "referral_code", "device_id", "ip"}),
    "user.kyc_verified": (set(), set()),
    "user.card_bound": (set(), set()),
    "funds.deposited": ({"deposit_id", "amount"}, set()),
    "investment.created": ({"investment_id", "amount", "product"}, {"reward_ids"}),
    "investment.redeemed": ({"investment_id", "amount"}, set()),
    "investment.matured": ({"investment_id", "amount", "interest"}, set()),
    "funds.withdrawn": ({"withdrawal_id", "amount"}, set()),
    "user.consent_changed": ({"channel", "granted"}, set()),
}
MILESTONES = ("user.registered", "user.kyc_verified", "user.card_bound", "funds.deposited",
              "investment.created")


@pytest.fixture(scope="module")
def events() -> list[dict]:
    return generate_events(seed=7, investors=2000, now=NOW)


def at(event: dict) -> datetime:
    return datetime.fromisoformat(event["occurred_at"])


def fen(text: str) -> int:
    return int(Decimal(text) * 100)


def by_user(events: list[dict]) -> dict[str, list[dict]]:
    users: dict[str, list[dict]] = defaultdict(list)
    for event in events:
        users[event["user"]["id"]].append(event)
    return users


def source_of(registration: dict) -> str:
    data = registration["data"]
    return data.get("channel_code") or ("referral" if "referral_code" in data else "organic")


def check_money(value: object, *, may_be_zero: bool = False) -> None:
    assert isinstance(value, str) and MONEY.match(value), value
    assert Decimal(value) >= 0 if may_be_zero else Decimal(value) > 0, value


def test_the_same_seed_gives_the_same_events_and_another_seed_different_ones() -> None:
    first = generate_events(seed=42, investors=300, now=NOW)
    assert first == generate_events(seed=42, investors=300, now=NOW)
    assert first != generate_events(seed=43, investors=300, now=NOW)


def test_every_event_follows_the_event_contract(events: list[dict]) -> None:
    for event in events:
        assert set(event) == {"id", "type", "occurred_at", "user", "data"}
        assert re.match(r"^evt_demo_[0-9]+$", event["id"])
        assert event["type"] in DATA_KEYS
        assert RFC3339.match(event["occurred_at"]), event["occurred_at"]
        assert event["occurred_at"].endswith("+08:00")
        assert at(event) <= NOW

        user = event["user"]
        assert re.match(r"^u_[0-9]+$", user["id"])
        assert set(user) <= {"id", "phone", "name", "email", "wechat_openid"}
        assert PHONE.match(user["phone"]), user["phone"]
        assert re.match(r"^[\u4e00-\u9fff]{2,4}$", user["name"]), user["name"]
        if "email" in user:
            assert re.match(r"^[^@\s]+@[^@\s]+\.[a-z]+$", user["email"])

        data = event["data"]
        required, optional = DATA_KEYS[event["type"]]
        assert required <= set(data) <= required | optional, (event["type"], data)
        for key in ("amount",):
            if key in data:
                check_money(data[key])
        if "interest" in data:
            check_money(data["interest"], may_be_zero=True)
        if event["type"] == "investment.created":
            product = data["product"]
            assert set(product) == {"id", "name", "term_days", "annual_rate"}
            assert isinstance(product["term_days"], int) and product["term_days"] > 0
            assert RATE.match(product["annual_rate"]) and Decimal(product["annual_rate"]) > 0
            assert 100 <= Decimal(data["amount"]) <= 200_000
        if event["type"] == "user.consent_changed":
            assert data["channel"] in {"sms", "email", "wechat"}
            assert isinstance(data["granted"], bool)


def test_event_ids_are_unique_and_events_come_sorted_by_time(events: list[dict]) -> None:
    assert len({e["id"] for e in events}) == len(events)
    times = [at(e) for e in events]
    assert times == sorted(times)
    assert times[0] > NOW - timedelta(days=90)


def test_each_investor_registers_once_with_a_distinct_phone(events: list[dict]) -> None:
    registrations = [e for e in events if e["type"] == "user.registered"]
    assert len(registrations) == 2000
    assert len({e["user"]["id"] for e in registrations}) == 2000
    assert len({e["user"]["phone"] for e in registrations}) == 2000
    assert all(e["user"]["id"] in {r["user"]["id"] for r in registrations} for e in events)


def test_the_funnel_drops_off_roughly_as_intended(events: list[dict]) -> None:
    reached: dict[str, set[str]] = defaultdict(set)
    investments: dict[str, set[str]] = defaultdict(set)
    for event in events:
        reached[event["type"]].add(event["user"]["id"])
        if event["type"] == "investment.created":
            investments[event["user"]["id"]].add(event["data"]["investment_id"])
    total = len(reached["user.registered"])
    share = {step: len(reached[step]) / total for step in MILESTONES}
    repeat = sum(1 for ids in investments.values() if len(ids) >= 2) / total

    assert 0.62 <= share["user.kyc_verified"] <= 0.78
    assert 0.56 <= share["user.card_bound"] <= 0.72
    assert 0.43 <= share["funds.deposited"] <= 0.57
    assert 0.35 <= share["investment.created"] <= 0.49
    assert 0.10 <= repeat <= 0.21
    assert share["user.kyc_verified"] > share["user.card_bound"] > share["funds.deposited"]
    assert share["funds.deposited"] > share["investment.created"] > repeat


def test_vertical_portals_and_referrals_convert_better_than_qq_groups(events: list[dict]) -> None:
    invested = {e["user"]["id"] for e in events if e["type"] == "investment.created"}
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for event in events:
        if event["type"] == "user.registered":
            key = source_of(event)
            counts[key][0] += 1
            counts[key][1] += event["user"]["id"] in invested
    rate = {key: won / total for key, (total, won) in counts.items()}

    assert set(counts) == {c.code for c in DEMO_CHANNELS} | {"organic"}
    assert rate["wdzj"] > rate["baidu_sem"] > rate["qq_group"]
    assert rate["referral"] > rate["qq_group"] + 0.15
    assert 0.04 <= counts["organic"][0] / 2000 <= 0.12


def test_registrations_mostly_carry_a_channel_and_some_a_referral_code(events: list[dict]) -> None:
    registrations = [e for e in events if e["type"] == "user.registered"]
    with_channel = sum(1 for e in registrations if "channel_code" in e["data"])
    referred = [e for e in registrations if "referral_code" in e["data"]]
    assert with_channel / len(registrations) >= 0.8
    assert 0.05 <= len(referred) / len(registrations) <= 0.2
    assert all(e["data"].get("channel_code", "referral") == "referral" for e in referred)


def test_referral_codes_refer_to_investors_who_registered_earlier(events: list[dict]) -> None:
    registered_at: dict[str, datetime] = {}
    owner_of_code: dict[str, str] = {}
    referred = 0
    for event in events:
        if event["type"] != "user.registered":
            continue
        code = event["data"].get("referral_code")
        if code is not None:
            referrer = owner_of_code.get(code)
            assert referrer is not None, f"{code} is not the code of an earlier investor"
            assert registered_at[referrer] < at(event)
            assert referrer != event["user"]["id"]
            referred += 1
        registered_at[event["user"]["id"]] = at(event)
        owner_of_code[referral_code_for(event["user"]["id"])] = event["user"]["id"]
    assert referred > 0


def test_milestones_of_each_investor_happen_in_funnel_order(events: list[dict]) -> None:
    for user_events in by_user(events).values():
        first: dict[str, datetime] = {}
        for event in user_events:
            first.setdefault(event["type"], at(event))
        reached = [first[step] for step in MILESTONES if step in first]
        assert reached == sorted(reached)
        assert len(reached) == len([step for step in MILESTONES if step in first])
        steps_reached = [step in first for step in MILESTONES]
        assert steps_reached == sorted(steps_reached, reverse=True), "a milestone was skipped"
        assert all(at(e) >= first["user.registered"] for e in user_events)


def test_investments_mature_only_after_their_term_with_interest_at_the_product_rate(
        events: list[dict]) -> None:
    created = {e["data"]["investment_id"]: e for e in events if e["type"] == "investment.created"}
    matured = [e for e in events if e["type"] == "investment.matured"]
    redeemed = [e for e in events if e["type"] == "investment.redeemed"]
    assert matured and redeemed
    assert len(redeemed) < len(matured) / 5

    for event in matured:
        investment = created[event["data"]["investment_id"]]
        product = investment["data"]["product"]
        assert at(event) >= at(investment) + timedelta(days=product["term_days"])
        assert event["data"]["amount"] == investment["data"]["amount"]
        principal = Decimal(investment["data"]["amount"])
        expected = (principal * Decimal(product["annual_rate"]) * product["term_days"] / 365).quantize(
            Decimal("0.01"), rounding=ROUND_HALF_UP)
        assert Decimal(event["data"]["interest"]) == expected
        assert event["user"]["id"] == investment["user"]["id"]
    for event in redeemed:
        investment = created[event["data"]["investment_id"]]
        term = investment["data"]["product"]["term_days"]
        assert at(investment) < at(event) < at(investment) + timedelta(days=term)
        assert event["data"]["amount"] == investment["data"]["amount"]

    ended = [e["data"]["investment_id"] for e in matured + redeemed]
    assert len(ended) == len(set(ended))
    due = [i for i, e in created.items()
           if at(e) + timedelta(days=e["data"]["product"]["term_days"], hours=25) < NOW]
    assert set(due) <= set(ended), "an investment due well before now has not come back"


def test_investment_amounts_are_realistic_and_skewed_small(events: list[dict]) -> None:
    amounts = sorted(Decimal(e["data"]["amount"]) for e in events if e["type"] == "investment.created")
    median = amounts[len(amounts) // 2]
    assert 1_000 <= median <= 10_000
    assert amounts[-1] > 5 * median
    newbie = [Decimal(e["data"]["amount"]) for e in events if e["type"] == "investment.created"
              and e["data"]["product"]["name"] == "新手标"]
    assert newbie and max(newbie) <= 10_000


def test_no_investor_spends_or_withdraws_more_than_their_balance(events: list[dict]) -> None:
    for user_events in by_user(events).values():
        balance = 0
        for event in user_events:
            data = event["data"]
            if event["type"] == "funds.deposited":
                balance += fen(data["amount"])
            elif event["type"] == "investment.matured":
                balance += fen(data["amount"]) + fen(data["interest"])
            elif event["type"] == "investment.redeemed":
                balance += fen(data["amount"])
            elif event["type"] in ("investment.created", "funds.withdrawn"):
                balance -= fen(data["amount"])
            assert balance >= 0, event


def test_withdrawals_and_consent_changes_appear_now_and_then(events: list[dict]) -> None:
    types = [e["type"] for e in events]
    assert types.count("funds.withdrawn") > 50
    assert 20 <= types.count("user.consent_changed") <= 300


def test_only_the_given_channel_codes_are_used() -> None:
    events = generate_events(seed=3, investors=400, now=NOW, days=30, channel_codes=["baidu_sem", "wdzj"])
    codes = {e["data"].get("channel_code") for e in events if e["type"] == "user.registered"}
    assert codes <= {"baidu_sem", "wdzj", None}
    assert all(at(e) > NOW - timedelta(days=31) for e in events if e["type"] == "user.registered")


def test_no_investors_give_no_events_and_bad_arguments_are_refused() -> None:
    assert generate_events(seed=1, investors=0, now=NOW) == []
    with pytest.raises(ValueError):
        generate_events(seed=1, investors=-1, now=NOW)
    with pytest.raises(ValueError):
        generate_events(seed=1, investors=10, now=NOW, days=0)


def test_two_thousand_investors_are_generated_in_under_two_seconds() -> None:
    # CPU time of this process: the generator is pure computation, and the wall clock also counts the other
    # test workers sharing the cores (3 on 2 in `make test`).
    started = time.process_time()
    generate_events(seed=11, investors=2000, now=NOW)
    assert time.process_time() - started < 2.0


def test_demo_channels_are_the_twelve_planned_ones_with_allowed_kinds() -> None:
    names = {c.code: (c.name, c.kind) for c in DEMO_CHANNELS}
    assert names == {
        "baidu_sem": ("百度SEM", "sem"), "so360": ("360搜索", "sem"), "seo": ("SEO优化", "seo"),
        "wdzj": ("网贷之家", "vertical"), "wdty": ("网贷天眼", "vertical"),
        "wechat_mp": ("微信公众号", "wechat"), "weibo": ("微博", "weibo"), "qq_group": ("QQ群", "qq_group"),
        "tieba": ("论坛/贴吧", "forum"), "offline_event": ("线下活动", "offline"),
        "partner_travel": ("合作渠道-旅游", "partner"), "referral": ("邀请好友", "referral"),
    }
    assert all(c.kind in CHANNEL_KINDS for c in DEMO_CHANNELS)
    assert all(c.cost_per_day_fen >= 0 and c.landing_url.startswith("https://") for c in DEMO_CHANNELS)


def test_demo_staff_has_every_role_two_agents_for_the_team_view_and_long_passwords() -> None:
    assert sorted(s.role for s in DEMO_STAFF) == ["admin", "agent", "agent", "analyst", "approver", "marketer"]
    assert len({s.email for s in DEMO_STAFF}) == len(DEMO_STAFF)
    for staff in DEMO_STAFF:
        assert re.fullmatch(rf"{staff.role}2?@demo\.growth\.local", staff.email)
        assert len(staff.password) >= 12
        assert re.match(r"^[\u4e00-\u9fff]{2,4}$", staff.name)


def test_demo_products_include_the_newbie_product_and_the_regular_terms() -> None:
    by_name = {p["name"]: p for p in DEMO_PRODUCTS}
    assert by_name["新手标"]["term_days"] == 7 and by_name["新手标"]["annual_rate"] == "0.1200"
    assert [by_name[n]["term_days"] for n in ("月月盈", "季季丰", "半年享", "年年红")] == [30, 90, 180, 365]
    for product in DEMO_PRODUCTS:
        assert set(product) == {"id", "name", "term_days", "annual_rate"}
        assert RATE.match(product["annual_rate"]) and 0.05 <= float(product["annual_rate"]) <= 0.15
