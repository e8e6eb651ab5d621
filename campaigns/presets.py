"""Sensible starting documents for each campaign type: what the type picker opens the editor with.

Each preset is a complete spec §2 document that parses and passes the compliance check as it stands, so
a marketer only adjusts it. Times are relative to `now` (the window opens on today's business date and
lasts 30 days), so a preset is never already over when it is picked.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, time, timedelta
from typing import Any

from flask_babel import lazy_gettext as _l

from campaigns.definition import CAMPAIGN_TYPE_LABELS, CAMPAIGN_TYPES
from growth.timeutil import SHANGHAI, local_date

# One line per type, shown on the type picker's cards.
TYPE_DESCRIPTIONS = {
    "new_user": _l("新用户注册即送体验金和投资红包，并发欢迎短信"),
    "first_investment_nudge": _l("每天提醒注册 3–30 天仍未首投的用户，送首投红包"),
    "rate_boost": _l("限时加息：在选定产品上投资即享额外年化收益"),
    "referral": _l("邀请确认后，邀请人和被邀请人各得奖励"),
    "cashback": _l("投资满额返现，持有期满后发放，提前赎回收回"),
    "maturity_reinvest": _l("投资到期前 7 天提醒复投，送复投红包"),
    "reactivation": _l("唤醒 90 天以上未活跃的投资人"),
    "broadcast": _l("一次性向选定人群发送公告"),
}

RISK = "投资有风险，理财需谨慎。"
OPT_OUT = "回T退订"
WINDOW_DAYS = 30


def _window(now: datetime, days: int = WINDOW_DAYS) -> dict[str, str]:
    first = local_date(now)
    start = datetime.combine(first, time(0, 0), tzinfo=SHANGHAI)
    end = datetime.combine(first + timedelta(days=days - 1), time(23, 59, 59), tzinfo=SHANGHAI)
    return {"start": start.isoformat(), "end": end.isoformat()}


def _sms(text: str) -> dict[str, Any]:
    return {"channel": "sms", "text": text, "params": {"name": "{{ investor.name }}"}}


def _new_user(now: datetime) -> dict[str, Any]:
    return {
        "name": "新手礼包", "type": "new_user", "class": "marketing",
        "trigger": {"on": "registered"},
        "window": _window(now), "entry": {"once": True}, "holdout_percent": 10,
        "rewards": [
            {"kind": "experience_funds", "amount": "5000.00", "annual_rate": "0.0800", "days": 3, "valid_days": 7},
            {"kind": "voucher", "amount": "20.00", "min_investment": "1000.00", "min_term_days": 30,
             "valid_days": 30},
            {"kind": "voucher", "amount": "50.00", "min_investment": "5000.00", "min_term_days": 30,
             "valid_days": 30},
        ],
        "budget": {"max_grants": 3000, "max_amount": "50000.00", "per_investor": 3},
        "messages": [_sms("{{ investor.name }}您好，欢迎加入！5000元体验金和投资红包已到账，请在有效期内使用。"
                          f"{RISK}{OPT_OUT}")],
    }


def _first_investment_nudge(now: datetime) -> dict[str, Any]:
    return {
        "name": "首投促进", "type": "first_investment_nudge", "class": "marketing",
        "schedule": {"cron": "0 10 * * *"},
        "audience": {"all": [{"field": "registered_days_ago", "op": "between", "value": [3, 30]},
                             {"field": "milestone", "op": "not_reached", "value": "first_investment"}]},
        "window": _window(now), "entry": {"once": True}, "holdout_percent": 10,
        "rewards": [{"kind": "voucher", "amount": "30.00", "min_investment": "1000.00", "min_term_days": 30,
                     "valid_days": 14}],
        "budget": {"max_grants": 2000, "max_amount": "60000.00", "per_investor": 1},
        "messages": [_sms("{{ investor.name }}您好，{{ reward.amount }}元首投红包已到账，14天内有效。"
                          f"{RISK}{OPT_OUT}")],
    }


def _rate_boost(now: datetime) -> dict[str, Any]:
    return {
        "name": "限时加息", "type": "rate_boost", "class": "marketing",
        "trigger": {"on": "investment_created", "conditions": {"min_amount": "1000.00", "products": ["P_30D"]}},
        "window": _window(now, 7), "entry": {"every_days": 1}, "holdout_percent": 0,
        "rewards": [{"kind": "rate_boost", "annual_rate": "0.0100", "max_days": 30, "valid_days": 1}],
        "budget": {"max_grants": 1000, "max_amount": "20000.00"},
        "messages": [_sms("{{ investor.name }}您好，您的投资已享受加息1.00%，最长30天。" f"{RISK}{OPT_OUT}")],
    }


def _referral(now: datetime) -> dict[str, Any]:
    return {
        "name": "邀请有礼", "type": "referral", "class": "marketing",
        "trigger": {"on": "referral_confirmed"},
        "window": _window(now), "entry": {"every_days": 1}, "holdout_percent": 0,
        "rewards": [{"kind": "cash", "amount": "50.00", "to": "referrer"},
                    {"kind": "voucher", "amount": "30.00", "min_investment": "1000.00", "min_term_days": 30,
                     "valid_days": 30, "to": "referee"}],
        "budget": {"max_grants": 2000, "max_amount": "80000.00"},
        "messages": [_sms("{{ investor.name }}您好，邀请奖励{{ reward.amount }}元已到账，感谢推荐。"
                          f"{RISK}{OPT_OUT}")],
    }


def _cashback(now: datetime) -> dict[str, Any]:
    return {
        "name": "投资返现", "type": "cashback", "class": "marketing",
        "trigger": {"on": "investment_created", "conditions": {"min_amount": "10000.00", "min_term_days": 90}},
        "window": _window(now), "entry": {"once": True}, "holdout_percent": 10,
        "rewards": [{"kind": "cashback", "rate": "0.0050", "hold_days": 30}],
        "budget": {"max_grants": 1000, "max_amount": "100000.00", "per_investor": 1},
        "messages": [_sms("{{ investor.name }}您好，您的投资可获{{ reward.amount }}元返现，持有满30天后发放。"
                          f"{RISK}{OPT_OUT}")],
    }


def _maturity_reinvest(now: datetime) -> dict[str, Any]:
    # A reinvestment offer with a reward is marketing (consent, quiet hours, opt-out), not an account notice.
    return {
        "name": "到期复投", "type": "maturity_reinvest", "class": "marketing",
        "schedule": {"cron": "0 10 * * *"},
        "audience": {"all": [{"field": "maturity_within_days", "op": "lte", "value": 7}]},
        "window": _window(now), "entry": {"every_days": 30}, "holdout_percent": 10,
        "rewards": [{"kind": "voucher", "amount": "50.00", "min_investment": "10000.00", "min_term_days": 90,
                     "valid_days": 14}],
        "budget": {"max_grants": 2000, "max_amount": "100000.00", "per_investor": 1},
        "messages": [_sms("{{ investor.name }}您好，您有投资将在7天内到期，复投可用{{ reward.amount }}元红包。"
                          f"{RISK}{OPT_OUT}")],
    }


def _reactivation(now: datetime) -> dict[str, Any]:
    return {
        "name": "沉睡唤醒", "type": "reactivation", "class": "marketing",
        "schedule": {"cron": "0 10 * * 1"},
        "audience": {"all": [{"field": "inactive_days", "op": "gte", "value": 90},
                             {"field": "consent", "op": "has", "value": "sms"}]},
        "window": _window(now), "entry": {"every_days": 90}, "holdout_percent": 10,
        "rewards": [{"kind": "voucher", "amount": "20.00", "min_investment": "1000.00", "valid_days": 14}],
        "budget": {"max_grants": 5000, "max_amount": "100000.00", "per_investor": 1},
        "messages": [_sms("{{ investor.name }}您好，好久不见！{{ reward.amount }}元红包已放入您的账户。"
                          f"{RISK}{OPT_OUT}")],
    }


def _broadcast(now: datetime) -> dict[str, Any]:
    tomorrow = local_date(now) + timedelta(days=1)
    return {
        "name": "平台公告", "type": "broadcast", "class": "marketing",
        "schedule": {"at": datetime.combine(tomorrow, time(10, 0), tzinfo=SHANGHAI).isoformat()},
        "audience": {"all": [{"field": "consent", "op": "has", "value": "sms"}]},
        "entry": {"once": True}, "holdout_percent": 0,
        "messages": [_sms("{{ investor.name }}您好，平台将于本周六凌晨进行系统维护，届时暂停服务2小时。" f"{OPT_OUT}")],
    }


_BUILDERS: dict[str, Callable[[datetime], dict[str, Any]]] = {
    "new_user": _new_user,
    "first_investment_nudge": _first_investment_nudge,
    "rate_boost": _rate_boost,
    "referral": _referral,
    "cashback": _cashback,
    "maturity_reinvest": _maturity_reinvest,
    "reactivation": _reactivation,
    "broadcast": _broadcast,
}


def preset(type_: str, *, now: datetime) -> dict[str, Any]:
    """Return the starting document of a campaign type (KeyError for an unknown type)."""
    return _BUILDERS[type_](now)


def cards() -> list[dict[str, Any]]:
    """Return the type picker's cards: type, label, one-line and one-line description, in the spec's order."""
    return [{"type": t, "label": CAMPAIGN_TYPE_LABELS[t], "description": TYPE_DESCRIPTIONS[t]}
            for t in CAMPAIGN_TYPES]
