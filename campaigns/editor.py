"""What the campaign editor and the campaign page need beside the schema: the editor's catalogue of fields,
the live check (schema, compliance, message previews), the audience alone, and a definition in words.

The editor keeps the whole spec §2 document as JSON in one hidden field; its sections edit that document,
and the server reads it with `campaigns.definition.parse` only — there is no second form model to drift.
Problems carry the document path (`rewards[0].amount`) so the page can put each next to its field.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from campaigns import compliance
from campaigns.definition import (
    AUDIENCE_FIELDS,
    CALL_OUTCOME_LABELS,
    CAMPAIGN_TYPE_LABELS,
    CLASS_LABELS,
    INVESTMENT_TRIGGERS,
    MILESTONE_NAMES,
    REWARD_KIND_LABELS,
    TRIGGER_LABELS,
    Audience,
    CashbackReward,
    CashReward,
    ChannelCondition,
    Condition,
    ConsentCondition,
    CountCondition,
    Definition,
    DefinitionInvalid,
    ExperienceFundsReward,
    InactiveCondition,
    MaturityCondition,
    MilestoneCondition,
    MoneyCondition,
    RateBoostReward,
    RegisteredAtCondition,
    RegisteredDaysAgoCondition,
    Reward,
    SmsMessage,
    TagCondition,
    VoucherReward,
    WechatMessage,
    budget_problems,
    parse,
)
from channels.sms import sms_length
from channels.templates import VARIABLES, render, sample_context
from growth.errors import Problem
from growth.money import format_rate, format_yuan
from growth.timeutil import SHANGHAI, as_utc

FIELD_LABELS = {
    "channel": _l("获客渠道"),
    "registered_at": _l("注册日期"),
    "registered_days_ago": _l("注册天数"),
    "milestone": _l("里程碑"),
    "investment_count": _l("投资笔数"),
    "holdings": _l("在投金额"),
    "investment_total": _l("累计投资"),
    "maturity_within_days": _l("投资到期天数"),
    "inactive_days": _l("未活跃天数"),
    "consent": _l("已同意接收"),
    "tag": _l("标签"),
}
OPERATOR_LABELS = {
    "in": _l("属于"), "not_in": _l("不属于"), "between": _l("介于"), "gte": _l("不少于"), "lte": _l("不超过"),
    "reached": _l("已达成"), "not_reached": _l("未达成"), "has": _l("有"),
}
# Per audience field: its operators and the kind of value input that fits it (the editor's JS builds it).
FIELD_INPUTS: dict[str, tuple[tuple[str, ...], str]] = {
    "channel": (("in", "not_in"), "codes"),
    "registered_at": (("between",), "dates"),
    "registered_days_ago": (("between",), "days"),
    "milestone": (("reached", "not_reached"), "milestone"),
    "investment_count": (("gte", "lte", "between"), "count"),
    "holdings": (("gte", "lte", "between"), "money"),
    "investment_total": (("gte", "lte", "between"), "money"),
    "maturity_within_days": (("lte",), "days"),
    "inactive_days": (("gte",), "days"),
    "consent": (("has",), "channel"),
    "tag": (("has",), "text"),
}
REWARD_FIELD_LABELS = {
    "amount": _l("金额（元）"),
    "min_investment": _l("起投金额（元）"),
    "max_investment": _l("投资上限（元）"),
    "min_term_days": _l("最短期限（天）"),
    "valid_days": _l("有效天数"),
    "annual_rate": _l("加息年化（%）"),
    "max_days": _l("最多计息天数"),
    "days": _l("计息天数"),
    "rate": _l("返现比例（%）"),
    "hold_days": _l("持有天数"),
}
# Per reward kind: its fields in form order, each (name, input kind, required).
REWARD_FIELDS: dict[str, tuple[tuple[str, str, bool], ...]] = {
    "cash": (("amount", "money", True),),
    "voucher": (("amount", "money", True), ("min_investment", "money", False), ("min_term_days", "int", False),
                ("valid_days", "int", True)),
    "rate_boost": (("annual_rate", "rate", True), ("max_days", "int", True), ("min_investment", "money", False),
                   ("max_investment", "money", False), ("min_term_days", "int", False), ("valid_days", "int", True)),
    "experience_funds": (("amount", "money", True), ("annual_rate", "rate", True), ("days", "int", True),
                         ("valid_days", "int", True)),
    "cashback": (("rate", "rate", True), ("hold_days", "int", True)),
}
CHANNEL_LABELS = {"sms": _l("短信"), "email": _l("邮件"), "wechat": _l("微信")}
TO_LABELS = {"referrer": _l("邀请人"), "referee": _l("被邀请人")}
MILESTONE_LABELS = {name: TRIGGER_LABELS[name] for name in MILESTONE_NAMES}
PSEUDO_CHANNELS = {"organic": _l("自然流量"), "referral": _l("邀请")}


def _labels(mapping: Mapping[str, Any]) -> dict[str, str]:
    return {key: str(value) for key, value in mapping.items()}


def catalogue(*, acquisition_channels: Mapping[str, str]) -> dict[str, Any]:
    """Return everything the editor's JS needs to build its inputs, with labels in the reader's language."""
    channels = dict(acquisition_channels)
    channels.update(_labels(PSEUDO_CHANNELS))
    return {
        "types": _labels(CAMPAIGN_TYPE_LABELS),
        "classes": _labels(CLASS_LABELS),
        "triggers": _labels(TRIGGER_LABELS),
        "investment_triggers": sorted(INVESTMENT_TRIGGERS),
        "call_outcomes": _labels(CALL_OUTCOME_LABELS),
        "fields": {name: {"label": str(FIELD_LABELS[name]), "ops": list(FIELD_INPUTS[name][0]),
                          "input": FIELD_INPUTS[name][1]} for name in AUDIENCE_FIELDS},
        "operators": _labels(OPERATOR_LABELS),
        "milestones": _labels(MILESTONE_LABELS),
        "acquisition_channels": channels,
        "message_channels": _labels(CHANNEL_LABELS),
        "reward_kinds": _labels(REWARD_KIND_LABELS),
        "reward_fields": {kind: [{"name": n, "input": i, "required": r, "label": str(REWARD_FIELD_LABELS[n])}
                                 for n, i, r in fields] for kind, fields in REWARD_FIELDS.items()},
        "reward_to": _labels(TO_LABELS),
        "variables": sorted(VARIABLES),
    }


# ---------------------------------------------------------------- the live check


@dataclass
class Check:
    """The editor's live check of a document: schema problems, compliance problems and message previews."""

    errors: list[Problem] = field(default_factory=list)
    compliance: list[Problem] = field(default_factory=list)
    previews: list[dict[str, Any]] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        """Return the check as the editor's endpoint answers it."""
        return {"errors": [p.as_json() for p in self.errors], "compliance": [p.as_json() for p in self.compliance],
                "previews": self.previews}


def _render(template: str, context: Mapping[str, Any], *, html: bool = False) -> tuple[str | None, str | None]:
    try:
        return render(template, context, html=html), None
    except Exception as exc:  # a preview shows any template failure (syntax, sandbox, unknown variable)
        return None, str(exc)


def preview(definition: Definition, *, sign_name: str = "") -> list[dict[str, Any]]:
    """Return every message rendered on the sample investor, with an SMS's length and parts."""
    context = sample_context(definition.name)
    out: list[dict[str, Any]] = []
    for message in definition.messages:
        item: dict[str, Any] = {"channel": message.channel, "fields": {}, "errors": {}}
        texts: dict[str, str] = {}
        if isinstance(message, SmsMessage):
            texts["text"] = message.text
            texts.update({f"params.{k}": v for k, v in (message.params or {}).items()})
        elif isinstance(message, WechatMessage):
            texts.update({f"data.{k}": v for k, v in (message.data or {}).items()})
            if message.text is not None:
                texts["text"] = message.text
        else:
            texts.update(subject=message.subject, text=message.text)
            if message.html is not None:
                texts["html"] = message.html
        for name, template in texts.items():
            rendered, error = _render(template, context, html=name == "html")
            if error is None:
                item["fields"][name] = rendered
            else:
                item["errors"][name] = error
        if isinstance(message, SmsMessage):
            length = sms_length(item["fields"].get("text", message.text), sign_name)
            item["sms"] = {"units": length.units, "segments": length.segments, "encoding": str(length.encoding),
                           "sign_name": sign_name}
        out.append(item)
    return out


def check(document: object, *, sign_name: str = "") -> Check:
    """Check a document as the editor holds it: the schema first, then (if it parses) compliance and previews."""
    try:
        definition = parse(document)
    except DefinitionInvalid as exc:
        return Check(errors=list(exc.problems))
    # The budget's warnings (a rate boost it could never grant …) sit beside the wording's problems, at their
    # fields; unlike those, spec §3 does not let them refuse a submit: at run time such members are out of budget.
    return Check(compliance=compliance.check(definition) + budget_problems(definition)
                 + compliance.name_problems(definition),
                 previews=preview(definition, sign_name=sign_name))


# A campaign that is valid but for its audience: the audience's problems come back with their own paths.
_HOST = {"name": "audience", "type": "broadcast", "schedule": {"at": "2026-01-01T00:00:00+08:00"}}


def parse_audience(audience: object) -> Audience:
    """Return an audience document parsed (`{"all": [...]}`); raise DefinitionInvalid with `audience…` paths."""
    definition = parse({**_HOST, "audience": audience})
    return definition.audience


# ---------------------------------------------------------------- a definition in words


def _local(value: datetime | None) -> str:
    return "" if value is None else as_utc(value).astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M")


def _money(fen: int) -> str:
    return format_yuan(fen)


def condition_words(condition: Condition) -> str:
    """Return one audience condition as a sentence for people."""
    label = str(FIELD_LABELS[condition.field])
    op = str(OPERATOR_LABELS[condition.op])
    match condition:
        case ChannelCondition():
            return f"{label} {op} {', '.join(condition.value)}"
        case RegisteredAtCondition():
            return f"{label} {op} {condition.value[0].isoformat()} – {condition.value[1].isoformat()}"
        case RegisteredDaysAgoCondition():
            return _("注册 %(low)s–%(high)s 天", low=condition.value[0], high=condition.value[1])
        case MilestoneCondition():
            text = f"{label} {op} {MILESTONE_LABELS[condition.value]}"
            if condition.within_days is not None:
                text += _("（注册后 %(n)s 天内）", n=condition.within_days)
            return text
        case CountCondition():
            value = condition.value
            shown = f"{value[0]} – {value[1]}" if isinstance(value, tuple) else str(value)
            return f"{label} {op} {shown}"
        case MoneyCondition():
            value = condition.value
            shown = f"{_money(value[0])} – {_money(value[1])}" if isinstance(value, tuple) else _money(value)
            return f"{label} {op} {shown}"
        case MaturityCondition():
            return _("有投资在 %(n)s 天内到期", n=condition.value)
        case InactiveCondition():
            return _("已 %(n)s 天以上未活跃", n=condition.value)
        case ConsentCondition():
            return _("已同意接收%(channel)s营销消息", channel=CHANNEL_LABELS[condition.value])
        case TagCondition():
            return _("有标签“%(tag)s”", tag=condition.value)
    return f"{label} {op}"


def reward_words(reward: Reward) -> str:
    """Return one reward as a sentence for people (¥ and %)."""
    kind = str(REWARD_KIND_LABELS[reward.kind])
    parts: list[str] = []
    match reward:
        case CashReward():
            parts.append(_money(reward.amount))
        case VoucherReward():
            parts.append(_money(reward.amount))
            if reward.min_investment is not None:
                parts.append(_("满 %(amount)s 可用", amount=_money(reward.min_investment)))
            if reward.min_term_days is not None:
                parts.append(_("期限 ≥ %(n)s 天", n=reward.min_term_days))
            parts.append(_("%(n)s 天内有效", n=reward.valid_days))
        case RateBoostReward():
            parts.append(_("年化 +%(rate)s，最多 %(n)s 天", rate=format_rate(reward.annual_rate), n=reward.max_days))
            if reward.min_investment is not None:
                parts.append(_("满 %(amount)s 可用", amount=_money(reward.min_investment)))
            if reward.max_investment is not None:
                parts.append(_("最多按 %(amount)s 计息", amount=_money(reward.max_investment)))
            if reward.min_term_days is not None:
                parts.append(_("期限 ≥ %(n)s 天", n=reward.min_term_days))
            parts.append(_("%(n)s 天内有效", n=reward.valid_days))
        case ExperienceFundsReward():
            parts.append(_("%(amount)s，年化 %(rate)s，计息 %(n)s 天", amount=_money(reward.amount),
                           rate=format_rate(reward.annual_rate), n=reward.days))
            parts.append(_("%(n)s 天内有效", n=reward.valid_days))
        case CashbackReward():
            parts.append(_("返投资额的 %(rate)s，持有 %(n)s 天后发放", rate=format_rate(reward.rate),
                           n=reward.hold_days))
    text = _("%(kind)s：%(details)s", kind=kind, details=_("，").join(parts))
    if reward.to is not None:
        text = f"{TO_LABELS[reward.to]} · {text}"
    return text


def when_words(definition: Definition) -> str:
    """Return the trigger or the schedule as a sentence for people."""
    if definition.trigger is not None:
        trigger = definition.trigger
        text = _("事件触发：%(on)s", on=TRIGGER_LABELS[trigger.on])
        conditions = trigger.conditions
        if conditions is not None:
            extra = []
            if conditions.min_amount is not None:
                extra.append(_("投资额 ≥ %(amount)s", amount=_money(conditions.min_amount)))
            if conditions.min_term_days is not None:
                extra.append(_("期限 ≥ %(n)s 天", n=conditions.min_term_days))
            if conditions.products:
                extra.append(_("产品：%(products)s", products=", ".join(conditions.products)))
            if conditions.outcomes:
                extra.append(_("通话结果：%(outcomes)s", outcomes=_("、").join(
                    str(CALL_OUTCOME_LABELS[o]) for o in conditions.outcomes)))
            text = _("%(text)s（%(extra)s）", text=text, extra=_("，").join(extra))
        if trigger.delay_minutes:
            text += _("，延迟 %(n)s 分钟", n=trigger.delay_minutes)
        return text
    schedule = definition.schedule
    if schedule is not None and schedule.at is not None:
        return _("定时一次：%(at)s（北京时间）", at=_local(schedule.at))
    if schedule is not None and schedule.cron is not None:
        return _("周期执行：cron “%(cron)s”（北京时间）", cron=schedule.cron)
    return "—"


def window_words(definition: Definition) -> str:
    """Return the window as a sentence for people."""
    window = definition.window
    if window is None or (window.start is None and window.end is None):
        return _("不限（批准后开始，直到暂停、取消或预算用完）")
    start = _local(window.start) if window.start else _("批准后")
    end = _local(window.end) if window.end else _("不限")
    return f"{start} – {end}"


def entry_words(definition: Definition) -> str:
    """Return the entry rule as a sentence for people."""
    if definition.entry.every_days is not None:
        return _("每人每 %(n)s 天最多一次", n=definition.entry.every_days)
    return _("每人仅一次")


def crm_task_words(definition: Definition) -> str | None:
    """Return the CRM follow-up task the campaign asks for as a sentence for people (None: no task)."""
    step = definition.crm_task
    if step is None:
        return None
    return _("为每位收到奖励或消息的成员创建客服跟进任务（%(n)s 小时内完成）：%(note)s", n=step.due_hours,
             note=step.note)


def budget_words(definition: Definition) -> list[str]:
    """Return the budget's limits as sentences for people (empty: no limit)."""
    budget = definition.budget
    out = []
    if budget.max_grants is not None:
        out.append(_("最多发放 %(n)s 次", n=f"{budget.max_grants:,}"))
    if budget.max_amount is not None:
        out.append(_("总额不超过 %(amount)s", amount=_money(budget.max_amount)))
    if budget.per_investor is not None:
        out.append(_("每人最多 %(n)s 次", n=budget.per_investor))
    return out
