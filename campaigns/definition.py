"""The campaign definition of spec §2: one schema for the JSON API, the YAML export/import and the editor.

`parse(document)` validates a plain JSON-like document and returns a `Definition` (money in fen, rates
in basis points) or raises `DefinitionInvalid` listing every problem with its path (`rewards[0].amount`),
a stable code and a message in the reader's language. `dump(definition)` gives the document back in
the spec's form (money as `"50.00"`, rates as `"0.0100"`), so what is exported imports unchanged.

The schema refuses only what breaks it (unknown fields, types, operators, shapes); wording rules (banned
phrases, risk warnings, opt-out text, unknown template variables) are `campaigns.compliance`'s, because
a draft may hold them and only submission refuses them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date, datetime
from typing import Annotated, Any, Literal, Self

from apscheduler.triggers.cron import CronTrigger
from flask_babel import LazyString
from flask_babel import lazy_gettext as _l
from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    StrictBool,
    StrictInt,
    StrictStr,
    ValidationError,
    WithJsonSchema,
    model_validator,
)
from pydantic_core import PydanticCustomError

from growth.crm.models import OUTCOME_LABELS, OUTCOMES
from growth.errors import Invalid, Problem
from growth.investors.models import MILESTONE_LABELS, MILESTONES
from growth.money import (
    MONEY_OR_ZERO_PATTERN,
    MONEY_PATTERN,
    RATE_PATTERN,
    MoneyFormatError,
    bp_to_api,
    fen_to_api,
    parse_rate,
    parse_yuan,
)
from growth.rewards.models import KIND_LABELS
from growth.timeutil import SHANGHAI

# The value lists of §2, each once, with the labels pages show.
CAMPAIGN_TYPE_LABELS = {
    "new_user": _l("新手礼包"),
    "first_investment_nudge": _l("首投促进"),
    "rate_boost": _l("加息活动"),
    "referral": _l("邀请有礼"),
    "cashback": _l("投资返现"),
    "maturity_reinvest": _l("到期复投"),
    "reactivation": _l("沉睡唤醒"),
    "broadcast": _l("公告"),
}
CAMPAIGN_TYPES = tuple(CAMPAIGN_TYPE_LABELS)
CLASS_LABELS = {"marketing": _l("营销"), "service": _l("服务通知")}
# The milestones (their labels are the investors package's), then the investment and referral triggers.
TRIGGER_LABELS = {
    **MILESTONE_LABELS,
    "investment_created": _l("每笔投资"),
    "investment_matured": _l("投资到期"),
    "investment_redeemed": _l("提前赎回"),
    "referral_confirmed": _l("邀请确认"),
    # Beyond spec §2's list (whose values stay as they are): an agent logged a CRM call with one of the
    # outcomes in `conditions.outcomes` (growth.crm's OUTCOME_LABELS); the member is the investor called.
    "crm_call": _l("客服通话结果"),
}
TRIGGERS = tuple(TRIGGER_LABELS)
# Triggers that carry an investment, so `conditions` (amount, term, products) can apply to it.
INVESTMENT_TRIGGERS = frozenset({"first_investment", "repeat_investment", "investment_created",
                                 "investment_matured", "investment_redeemed"})
CALL_OUTCOME_LABELS = OUTCOME_LABELS  # the CRM's outcome codes, with its labels
CALL_OUTCOMES = OUTCOMES
REWARD_KIND_LABELS = KIND_LABELS  # the ledger's kinds, with its labels
REWARD_KINDS = tuple(REWARD_KIND_LABELS)
MESSAGE_CHANNELS = ("sms", "email", "wechat")
MILESTONE_NAMES = MILESTONES

MAX_NAME = 100
MAX_TEXT = 2_000
MAX_HTML = 200_000
MAX_LIST = 200
MAX_DAYS = 3_650
MAX_DELAY_MINUTES = 60 * 24 * 30
MAX_TASK_NOTE = 500
MAX_TASK_DUE_HOURS = 720


class DefinitionInvalid(Invalid):
    """A campaign document that breaks the schema; `problems` lists every broken rule with its path."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__(problems, message=_l("活动定义有误，请改正标出的项。"))


# ---------------------------------------------------------------- value types (fen and basis points inside)

def _yuan(value: object) -> int:
    try:
        return parse_yuan(value)
    except MoneyFormatError as exc:
        raise PydanticCustomError("invalid_money", "must be a yuan string such as \"50.00\" ({reason})",
                                  {"reason": str(exc)}) from None


def _yuan_or_zero(value: object) -> int:
    return 0 if value in ("0", "0.0", "0.00") else _yuan(value)


def _rate(value: object) -> int:
    try:
        return parse_rate(value)
    except MoneyFormatError as exc:
        raise PydanticCustomError("invalid_rate", "must be a fraction string such as \"0.0100\" ({reason})",
                                  {"reason": str(exc)}) from None


# Fen and basis points inside; their JSON Schema (the API description's) is the spec's string, as parsed.
Money = Annotated[int, BeforeValidator(_yuan), PlainSerializer(fen_to_api, return_type=str), WithJsonSchema(
    {"type": "string", "pattern": MONEY_PATTERN, "examples": ["50.00"],
     "description": "Yuan as a decimal string, greater than 0, at most 2 decimal places."})]
MoneyOrZero = Annotated[int, BeforeValidator(_yuan_or_zero), PlainSerializer(fen_to_api, return_type=str),
                        WithJsonSchema({"type": "string", "pattern": MONEY_OR_ZERO_PATTERN, "examples": ["0.00"],
                                        "description": "Yuan as a decimal string, 0 or more."})]
Rate = Annotated[int, BeforeValidator(_rate), PlainSerializer(bp_to_api, return_type=str), WithJsonSchema(
    {"type": "string", "pattern": RATE_PATTERN, "examples": ["0.0100"],
     "description": 'A fraction as a decimal string: "0.0100" is 1.00 %.'})]
Days = Annotated[StrictInt, Field(ge=1, le=MAX_DAYS)]
DaysOrZero = Annotated[StrictInt, Field(ge=0, le=MAX_DAYS)]
Count = Annotated[StrictInt, Field(ge=0)]
Code = Annotated[StrictStr, Field(min_length=1, max_length=200)]


def _refuse(code: str, message: str, **ctx: Any) -> PydanticCustomError:
    return PydanticCustomError(code, message, ctx or None)


class _Strict(BaseModel):
    """Unknown fields are refused everywhere; values are immutable once parsed."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


# ---------------------------------------------------------------- trigger, schedule, window, entry

class InvestmentConditions(_Strict):
    """A trigger's conditions: on its investment (investment triggers), or the call's outcome (`crm_call`)."""

    min_amount: Money | None = None
    min_term_days: Days | None = None
    products: Annotated[list[Code], Field(min_length=1, max_length=MAX_LIST)] | None = None
    # `crm_call` only, and required there: the outcomes that fire it (growth.crm OUTCOMES).
    outcomes: Annotated[list[Literal[CALL_OUTCOMES]],  # type: ignore[valid-type]
                        Field(min_length=1, max_length=len(CALL_OUTCOMES))] | None = None

    @property
    def on_investment(self) -> bool:
        """Tell whether any condition looks at an investment."""
        return self.min_amount is not None or self.min_term_days is not None or self.products is not None


class Trigger(_Strict):
    on: Literal[TRIGGERS]  # type: ignore[valid-type]
    conditions: InvestmentConditions | None = None
    delay_minutes: Annotated[StrictInt, Field(ge=0, le=MAX_DELAY_MINUTES)] | None = None

    @model_validator(mode="after")
    def _conditions_fit_the_trigger(self) -> Self:
        c = self.conditions
        if c is not None and (c.on_investment if self.on == "crm_call" else self.on not in INVESTMENT_TRIGGERS):
            raise _refuse("conditions_not_allowed", "conditions apply only to investment triggers")
        if c is not None and c.outcomes is not None and self.on != "crm_call":
            raise _refuse("outcomes_not_allowed", "outcomes apply only to the crm_call trigger")
        if self.on == "crm_call" and (c is None or not c.outcomes):
            raise _refuse("outcomes_missing", "a crm_call trigger lists the call outcomes that fire it")
        if c is not None and c.outcomes is not None and len(set(c.outcomes)) != len(c.outcomes):
            raise _refuse("duplicate_outcome", "each outcome once")
        return self


class Schedule(_Strict):
    at: AwareDatetime | None = None
    cron: Annotated[StrictStr, Field(min_length=9, max_length=100)] | None = None

    @model_validator(mode="after")
    def _one_of_at_or_cron(self) -> Self:
        if (self.at is None) == (self.cron is None):
            raise _refuse("at_or_cron", "give exactly one of at or cron")
        if self.cron is not None:
            try:
                cron_trigger(self.cron)
            except ValueError as exc:
                raise _refuse("invalid_cron", "not a cron expression ({reason})", reason=str(exc)) from None
        return self


_WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _crontab_weekdays(field: str) -> str:
    """Return a crontab day-of-week field in APScheduler's words (crontab counts from Sunday = 0 or 7;
    APScheduler 3 from Monday = 0, so numbers are expanded and named)."""
    if field == "*" or any(c.isalpha() for c in field):
        return field
    days: set[int] = set()
    for token in field.split(","):
        span, _, step_text = token.partition("/")
        step = int(step_text) if step_text else 1
        if span == "*":
            low, high = 0, 6
        elif "-" in span:
            low_text, high_text = span.split("-", 1)
            low, high = int(low_text), int(high_text)
        else:
            low = high = int(span)
        if not (0 <= low <= 7 and 0 <= high <= 7 and low <= high and step >= 1):
            raise ValueError(f"bad day of week {token!r}")
        days.update(range(low, high + 1, step))
    return ",".join(dict.fromkeys(_WEEKDAYS[d] for d in sorted(days)))


def cron_trigger(expr: str, *, start: datetime | None = None, end: datetime | None = None) -> CronTrigger:
    """Return the APScheduler trigger of a standard crontab expression in Asia/Shanghai, within [start, end]."""
    fields = expr.split()
    if len(fields) != 5:
        raise ValueError(f"{len(fields)} fields, a crontab has 5")
    minute, hour, day, month, day_of_week = fields
    return CronTrigger(minute=minute, hour=hour, day=day, month=month, day_of_week=_crontab_weekdays(day_of_week),
                       timezone=SHANGHAI, start_date=start, end_date=end)


class Window(_Strict):
    start: AwareDatetime | None = None
    end: AwareDatetime | None = None

    @model_validator(mode="after")
    def _start_before_end(self) -> Self:
        if self.start is not None and self.end is not None and self.start >= self.end:
            raise _refuse("window_order", "the window must start before it ends")
        return self


class Entry(_Strict):
    once: Literal[True] | None = None
    every_days: Days | None = None

    @model_validator(mode="after")
    def _one_rule(self) -> Self:
        if (self.once is None) == (self.every_days is None):
            raise _refuse("once_or_every_days", "give exactly one of once: true or every_days")
        return self


# ---------------------------------------------------------------- audience conditions (spec §2)

class ChannelCondition(_Strict):
    field: Literal["channel"]
    op: Literal["in", "not_in"]
    value: Annotated[list[Code], Field(min_length=1, max_length=MAX_LIST)]


class RegisteredAtCondition(_Strict):
    field: Literal["registered_at"]
    op: Literal["between"]
    value: tuple[date, date]

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.value[0] > self.value[1]:
            raise _refuse("range_order", "the first date must not be after the second")
        return self


class _Range(_Strict):
    """`gte`/`lte` take one value, `between` a pair [low, high]."""

    op: str
    value: Any

    @model_validator(mode="after")
    def _shape(self) -> Self:
        pair = isinstance(self.value, tuple)
        if pair != (self.op == "between"):
            raise _refuse("value_shape", "between takes [low, high]; gte and lte take one value")
        if pair and self.value[0] > self.value[1]:
            raise _refuse("range_order", "low must not be above high")
        return self


class RegisteredDaysAgoCondition(_Range):
    field: Literal["registered_days_ago"]
    op: Literal["between"]
    value: tuple[DaysOrZero, DaysOrZero]


class CountCondition(_Range):
    field: Literal["investment_count"]
    op: Literal["gte", "lte", "between"]
    value: Count | tuple[Count, Count]


class MoneyCondition(_Range):
    field: Literal["holdings", "investment_total"]
    op: Literal["gte", "lte", "between"]
    value: MoneyOrZero | tuple[MoneyOrZero, MoneyOrZero]


class MilestoneCondition(_Strict):
    field: Literal["milestone"]
    op: Literal["reached", "not_reached"]
    value: Literal[MILESTONE_NAMES]  # type: ignore[valid-type]
    within_days: Days | None = None


class MaturityCondition(_Strict):
    field: Literal["maturity_within_days"]
    op: Literal["lte"]
    value: DaysOrZero


class InactiveCondition(_Strict):
    field: Literal["inactive_days"]
    op: Literal["gte"]
    value: DaysOrZero


class ConsentCondition(_Strict):
    field: Literal["consent"]
    op: Literal["has"]
    value: Literal[MESSAGE_CHANNELS]  # type: ignore[valid-type]


class TagCondition(_Strict):
    field: Literal["tag"]
    op: Literal["has"]
    value: Annotated[StrictStr, Field(min_length=1, max_length=50)]


Condition = Annotated[
    ChannelCondition | RegisteredAtCondition | RegisteredDaysAgoCondition | CountCondition | MoneyCondition
    | MilestoneCondition | MaturityCondition | InactiveCondition | ConsentCondition | TagCondition,
    Field(discriminator="field"),
]
AUDIENCE_FIELDS = ("channel", "registered_at", "registered_days_ago", "milestone", "investment_count",
                   "holdings", "investment_total", "maturity_within_days", "inactive_days", "consent", "tag")


class Audience(_Strict):
    all: Annotated[list[Condition], Field(max_length=50)] = []


# ---------------------------------------------------------------- rewards (spec §2; costs are growth.rewards')

class _Reward(_Strict):
    to: Literal["referrer", "referee"] | None = None


class CashReward(_Reward):
    kind: Literal["cash"]
    amount: Money


class VoucherReward(_Reward):
    kind: Literal["voucher"]
    amount: Money
    min_investment: Money | None = None
    min_term_days: Days | None = None
    valid_days: Days


class RateBoostReward(_Reward):
    kind: Literal["rate_boost"]
    annual_rate: Rate
    max_days: Days
    min_investment: Money | None = None
    # Not in spec §2's list: the largest investment the boost applies to, which bounds its cost (a budget
    # with max_amount needs it unless an investment trigger's investment bounds it; see `budget_problems`).
    max_investment: Money | None = None
    min_term_days: Days | None = None
    valid_days: Days


class ExperienceFundsReward(_Reward):
    kind: Literal["experience_funds"]
    amount: Money
    annual_rate: Rate
    days: Days
    valid_days: Days


class CashbackReward(_Reward):
    kind: Literal["cashback"]
    rate: Rate
    hold_days: DaysOrZero


Reward = Annotated[CashReward | VoucherReward | RateBoostReward | ExperienceFundsReward | CashbackReward,
                   Field(discriminator="kind")]


class Budget(_Strict):
    max_grants: Annotated[StrictInt, Field(ge=1)] | None = None
    max_amount: Money | None = None
    per_investor: Annotated[StrictInt, Field(ge=1)] | None = None


# ---------------------------------------------------------------- messages

Text = Annotated[StrictStr, Field(min_length=1, max_length=MAX_TEXT)]
Params = Annotated[dict[Annotated[StrictStr, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_.]{0,63}$")], Text],
                   Field(max_length=30)]


class _Message(_Strict):
    fallback: StrictBool | None = None  # true: sent only when the messages before it cannot reach the investor


class SmsMessage(_Message):
    channel: Literal["sms"]
    text: Text
    template_code: Annotated[StrictStr, Field(min_length=1, max_length=64)] | None = None
    params: Params | None = None


class EmailMessage(_Message):
    channel: Literal["email"]
    subject: Annotated[StrictStr, Field(min_length=1, max_length=200)]
    text: Text
    html: Annotated[StrictStr, Field(min_length=1, max_length=MAX_HTML)] | None = None


class WechatMessage(_Message):
    channel: Literal["wechat"]
    kind: Literal["template", "mass"]
    template_id: Annotated[StrictStr, Field(min_length=1, max_length=128)] | None = None
    data: Params | None = None
    url: Annotated[StrictStr, Field(min_length=1, max_length=1000)] | None = None
    text: Text | None = None

    @model_validator(mode="after")
    def _kind_fields(self) -> Self:
        if self.kind == "template" and (self.template_id is None or not self.data):
            raise _refuse("template_fields", "a template message needs template_id and data")
        if self.kind == "mass" and self.text is None:
            raise _refuse("mass_text", "a mass message needs text")
        return self


Message = Annotated[SmsMessage | EmailMessage | WechatMessage, Field(discriminator="channel")]


# ---------------------------------------------------------------- the document

class CrmTaskStep(_Strict):
    """Beyond spec §2: a follow-up task in the CRM for each treated member the campaign fulfilled.

    `note` tells the agent what to do (shown on the task); the task is due `due_hours` after fulfilment
    and goes to the pool (the investor's owner first), once per member.
    """

    note: Annotated[StrictStr, Field(min_length=1, max_length=MAX_TASK_NOTE)]
    due_hours: Annotated[StrictInt, Field(ge=1, le=MAX_TASK_DUE_HOURS)] = 24

    @model_validator(mode="after")
    def _note_not_blank(self) -> Self:
        if not self.note.strip():
            raise _refuse("blank_task_note", "the task note is blank")
        return self


class Definition(_Strict):
    """A campaign as spec §2 defines it (money in fen, rates in basis points)."""

    name: Annotated[StrictStr, Field(min_length=1, max_length=MAX_NAME)]
    type: Literal[CAMPAIGN_TYPES]  # type: ignore[valid-type]
    class_: Literal["marketing", "service"] = Field("marketing", alias="class")
    trigger: Trigger | None = None
    schedule: Schedule | None = None
    audience: Audience = Audience()
    window: Window | None = None
    entry: Entry = Entry(once=True)
    holdout_percent: Annotated[StrictInt, Field(ge=0, le=50)] = 0
    rewards: Annotated[list[Reward], Field(max_length=10)] = []
    budget: Budget = Budget()
    messages: Annotated[list[Message], Field(max_length=3)] = []
    crm_task: CrmTaskStep | None = None

    @model_validator(mode="after")
    def _whole(self) -> Self:
        if not self.name.strip():
            raise _refuse("blank_name", "the name is blank")
        if (self.trigger is None) == (self.schedule is None):
            raise _refuse("trigger_or_schedule", "give exactly one of trigger or schedule")
        open_ended = self.window is None or self.window.end is None
        if self.schedule is not None and self.schedule.cron is not None and open_ended:
            raise _refuse("cron_needs_end", "a cron schedule needs window.end")
        channels = [m.channel for m in self.messages]
        if len(set(channels)) != len(channels):
            raise _refuse("duplicate_channel", "one message per channel")
        referral = self.type == "referral"
        for reward in self.rewards:
            if referral and reward.to is None:
                raise _refuse("reward_to_missing", "each reward of a referral campaign says to: referrer or referee")
            if not referral and reward.to is not None:
                raise _refuse("reward_to_not_allowed", "only referral campaigns give rewards to a referrer or referee")
        return self

    @property
    def marketing(self) -> bool:
        """Tell whether consent, quiet hours, caps and the compliance rules for marketing apply."""
        return self.class_ == "marketing"


# ---------------------------------------------------------------- parsing, dumping, errors

def N_(message: str) -> str:  # Babel's default keyword: the id is extracted, translated later
    """Mark a message id for extraction; it is translated when a problem is built."""
    return message


_MESSAGES: dict[str, str] = {
    "missing": N_("必填"),
    "unknown_field": N_("不认识的字段"),
    "unknown_operator": N_("不支持的运算符，可用：%(expected)s"),
    "invalid_choice": N_("取值无效，可用：%(expected)s"),
    "unknown_kind": N_("不认识的“%(tag)s”，可用：%(expected)s"),
    "invalid_type": N_("类型不对：%(detail)s"),
    "invalid_value": N_("取值无效：%(detail)s"),
    "too_small": N_("不能小于 %(limit)s"),
    "too_large": N_("不能大于 %(limit)s"),
    "too_short": N_("太短（至少 %(limit)s）"),
    "too_long": N_("太长（最多 %(limit)s）"),
    "invalid_money": N_("金额应为“50.00”这样的元字符串（最多两位小数，大于 0）"),
    "invalid_rate": N_("利率应为“0.0100”这样的小数字符串（最多四位小数，介于 0 与 1 之间）"),
    "invalid_datetime": N_("时间应为带时区的 RFC 3339 格式，如“2026-12-01T00:00:00+08:00”"),
    "invalid_date": N_("日期应为 YYYY-MM-DD"),
    "conditions_not_allowed": N_("条件只适用于投资类触发"),
    "outcomes_not_allowed": N_("通话结果条件只适用于“客服通话结果”触发"),
    "outcomes_missing": N_("“客服通话结果”触发须选择至少一种通话结果"),
    "duplicate_outcome": N_("每种通话结果只能选一次"),
    "blank_task_note": N_("跟进任务说明不能为空"),
    "at_or_cron": N_("at 与 cron 须且只能填一个"),
    "invalid_cron": N_("cron 表达式无效：%(reason)s"),
    "window_order": N_("活动开始时间须早于结束时间"),
    "once_or_every_days": N_("once: true 与 every_days 须且只能填一个"),
    "range_order": N_("区间下限不能大于上限"),
    "value_shape": N_("between 需要 [下限, 上限]，gte/lte 只需一个值"),
    "template_fields": N_("微信模板消息需要 template_id 与 data"),
    "mass_text": N_("微信群发消息需要 text"),
    "blank_name": N_("活动名称不能为空"),
    "trigger_or_schedule": N_("trigger（事件触发）与 schedule（定时）须且只能填一个"),
    "cron_needs_end": N_("cron 定时活动须设置 window.end（结束时间）"),
    "duplicate_channel": N_("每个渠道只能有一条消息"),
    "reward_to_missing": N_("邀请活动的每项奖励须注明 to：referrer（邀请人）或 referee（被邀请人）"),
    "reward_to_not_allowed": N_("只有邀请活动的奖励可以指定 to"),
    "not_an_object": N_("活动定义须是一个 JSON 对象"),
    "max_investment_missing": N_("预算设了金额上限时，加息券须设投资上限（或用投资类触发，由触发的投资限定）"),
    "investment_range": N_("投资上限不能低于起投金额"),
}
_PLACEHOLDER = re.compile(r"%\((\w+)\)s")
_TYPE_ERRORS = frozenset({"string_type", "int_type", "bool_type", "list_type", "dict_type", "model_type",
                          "tuple_type", "int_parsing", "int_from_float", "model_attributes_type", "is_instance_of",
                          "dataclass_type", "bool_parsing", "float_type"})
_UNIONS = {"rewards": REWARD_KINDS, "messages": MESSAGE_CHANNELS, "all": AUDIENCE_FIELDS}


def _path(loc: tuple[int | str, ...]) -> str:
    """Return a pydantic location as a document path (`rewards[0].amount`), without union tags."""
    out = ""
    parts = list(loc)
    for i, part in enumerate(parts):
        if isinstance(part, int):
            out += f"[{part}]"
            continue
        previous = parts[i - 1] if i else None
        if isinstance(previous, int) and i >= 2 and part in _UNIONS.get(str(parts[i - 2]), ()):
            continue  # the discriminated union's tag (`voucher` in rewards.0.voucher.amount)
        if part in ("function-after[_shape(), ...]",) or part.startswith(("function-", "tagged-union[")):
            continue
        out += ("." if out else "") + part
    return out


def _problem(error: Mapping[str, Any]) -> Problem:
    kind, ctx, loc = error["type"], dict(error.get("ctx") or {}), tuple(error["loc"])
    path = _path(loc)
    if kind == "missing":
        code = "missing"
    elif kind == "extra_forbidden":
        code = "unknown_field"
    elif kind in ("union_tag_invalid", "union_tag_not_found"):
        code = "unknown_kind"
        ctx.setdefault("tag", ctx.get("tag", ""))
        ctx["expected"] = ctx.get("expected_tags", "")
    elif kind == "literal_error":
        code = "unknown_operator" if loc and loc[-1] == "op" else "invalid_choice"
    elif kind in _TYPE_ERRORS:
        code, ctx = "invalid_type", {"detail": error["msg"]}
    elif kind in ("greater_than_equal", "greater_than"):
        code, ctx = "too_small", {"limit": ctx.get("ge", ctx.get("gt"))}
    elif kind in ("less_than_equal", "less_than"):
        code, ctx = "too_large", {"limit": ctx.get("le", ctx.get("lt"))}
    elif kind in ("too_short", "string_too_short"):
        code, ctx = "too_short", {"limit": ctx.get("min_length")}
    elif kind in ("too_long", "string_too_long"):
        code, ctx = "too_long", {"limit": ctx.get("max_length")}
    elif kind.startswith("timezone_") or kind.startswith("datetime_"):
        code = "invalid_datetime"
    elif kind.startswith("date_"):
        code = "invalid_date"
    elif kind in _MESSAGES:
        code = kind
    else:
        code, ctx = "invalid_value", {"detail": error["msg"]}
    return Problem(path, code, _message(code, ctx))


def _message(code: str, ctx: Mapping[str, Any]) -> LazyString:
    """Return the code's message with its placeholders filled (a placeholder pydantic left out stays empty)."""
    msgid = _MESSAGES[code]
    values = {name: str(ctx.get(name, "")) for name in _PLACEHOLDER.findall(msgid)}
    return _l(msgid, **values)


def parse(document: object) -> Definition:
    """Validate a campaign document; raise `DefinitionInvalid` with every problem found."""
    if not isinstance(document, Mapping):
        raise DefinitionInvalid([Problem("", "not_an_object", _message("not_an_object", {}))])
    try:
        return Definition.model_validate(dict(document))
    except ValidationError as exc:
        problems = [_problem(e) for e in exc.errors(include_url=False)]
        raise DefinitionInvalid(problems) from None


def dump(definition: Definition) -> dict[str, Any]:
    """Return the definition as the spec's JSON document (unset optional parts left out)."""
    return definition.model_dump(mode="json", by_alias=True, exclude_none=True)


def budget_problems(definition: Definition) -> list[Problem]:
    """Return the rewards the budget could not grant at run time (each at the path of the field to fill).

    `max_amount` counts a rate boost at its maximum cost, which only a bound on the principal makes finite:
    the triggering investment of an investment trigger, else the reward's `max_investment`. Without one
    every member would be out of budget (spec §2: a grant that could break a limit is not made), so the
    editor warns at the field; submit does not refuse it (spec §3 names the codes that do).
    """
    problems: list[Problem] = []
    bounded = definition.trigger is not None and definition.trigger.on in INVESTMENT_TRIGGERS
    for i, reward in enumerate(definition.rewards):
        if not isinstance(reward, RateBoostReward):
            continue
        at = f"rewards[{i}].max_investment"
        if reward.max_investment is None and definition.budget.max_amount is not None and not bounded:
            problems.append(Problem(at, "max_investment_missing", _message("max_investment_missing", {})))
        if reward.max_investment is not None and reward.min_investment is not None \
                and reward.min_investment > reward.max_investment:
            problems.append(Problem(at, "investment_range", _message("investment_range", {})))
    return problems


def window_contains(definition: Definition, at: datetime) -> bool:
    """Tell whether a moment lies inside the campaign's window (no window: always)."""
    window = definition.window
    if window is None:
        return True
    return (window.start is None or at >= window.start) and (window.end is None or at <= window.end)
