"""CRM rules, pure: settings, when each follow-up rule fires as of `now`, SLA states, round-robin assignment."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

from flask_babel import lazy_gettext as _l

from growth.errors import DomainError
from growth.money import MoneyFormatError, fen_to_api, parse_yuan
from growth.overrides import SettingsError
from growth.timeutil import SHANGHAI, local_date

__all__ = ["SettingsError"]


@dataclass(frozen=True, slots=True)
class CrmSettings:
    """The follow-up rules' thresholds and the agents' cap (defaults from issue 11)."""

    no_kyc_days: int = 1  # registered, no KYC after this many days
    no_deposit_days: int = 2  # KYC, no deposit after …
    no_investment_days: int = 3  # deposited, never invested after …
    maturing_days: int = 7  # an investment maturing within … (a re-invest call)
    large_amount_fen: int = 5_000_000  # a redemption or withdrawal of at least this (a retention call)
    dormant_days: int = 60  # no activity for … with nothing held any more
    lookback_days: int = 30  # stalls and money events older than this are history, not work
    due_hours: int = 24  # a new task is due this long after it is made
    open_task_cap: int = 50  # open tasks an agent holds at most (assignment stops there)

    def as_text(self) -> dict[str, str]:
        """Return the settings as the strings they are stored and edited as."""
        return {
            "no_kyc_days": str(self.no_kyc_days),
            "no_deposit_days": str(self.no_deposit_days),
            "no_investment_days": str(self.no_investment_days),
            "maturing_days": str(self.maturing_days),
            "large_amount": fen_to_api(self.large_amount_fen),
            "dormant_days": str(self.dormant_days),
            "lookback_days": str(self.lookback_days),
            "due_hours": str(self.due_hours),
            "open_task_cap": str(self.open_task_cap),
        }


SETTING_KEYS = tuple(CrmSettings().as_text())
SETTING_LABELS = {
    "no_kyc_days": _l("注册后未实名：天数"),
    "no_deposit_days": _l("实名后未充值：天数"),
    "no_investment_days": _l("充值后未投资：天数"),
    "maturing_days": _l("投资到期前：天数"),
    "large_amount": _l("大额赎回/提现金额（元）"),
    "dormant_days": _l("沉睡客户：无活动天数"),
    "lookback_days": _l("只看最近多少天内的停滞与资金变动"),
    "due_hours": _l("新任务处理时限（小时）"),
    "open_task_cap": _l("每位客服最多未完成任务数"),
}
_INT_LIMITS = {
    "no_kyc_days": (1, 365), "no_deposit_days": (1, 365), "no_investment_days": (1, 365), "maturing_days": (1, 90),
    "dormant_days": (7, 3650), "lookback_days": (1, 3650), "due_hours": (1, 720), "open_task_cap": (1, 10_000),
}


def parse_settings(values: Mapping[str, str], *, base: CrmSettings | None = None) -> CrmSettings:
    """Return settings from their text values (missing keys keep `base`'s); raise SettingsError on a bad one."""
    changes: dict[str, Any] = {}
    for key, raw in values.items():
        text = (raw or "").strip()
        if key == "large_amount":
            try:
                changes["large_amount_fen"] = parse_yuan(text)
            except MoneyFormatError:
                raise SettingsError(key, _l("请填写大于 0 的金额，最多两位小数，例如 50000.00")) from None
        elif key in _INT_LIMITS:
            low, high = _INT_LIMITS[key]
            if not text.isdigit() or not low <= int(text) <= high:
                raise SettingsError(key, _l("请填写 %(low)d 到 %(high)d 之间的整数", low=low, high=high))
            changes[key] = int(text)
        else:
            raise SettingsError(key, _l("未知的设置项"))
    return replace(base or CrmSettings(), **changes)


@dataclass(frozen=True, slots=True)
class Cutoffs:
    """The instants and dates the follow-up rules compare milestones with, as of one `now`."""

    no_kyc_before: datetime
    no_deposit_before: datetime
    no_investment_before: datetime
    since: datetime  # the lookback window's start
    maturing_from: date  # Shanghai business dates, inclusive
    maturing_to: date
    dormant_before: datetime
    dormant_since: datetime  # quiet since before this: an old spell, history rather than work
    large_amount_fen: int
    due_at: datetime


def cutoffs(settings: CrmSettings, now: datetime) -> Cutoffs:
    """Return when each rule fires as of `now`: a milestone at or before its cutoff (and after `since`) is a stall."""
    today = local_date(now)
    return Cutoffs(
        no_kyc_before=now - timedelta(days=settings.no_kyc_days),
        no_deposit_before=now - timedelta(days=settings.no_deposit_days),
        no_investment_before=now - timedelta(days=settings.no_investment_days),
        since=now - timedelta(days=settings.lookback_days),
        maturing_from=today,
        maturing_to=today + timedelta(days=settings.maturing_days),
        dormant_before=now - timedelta(days=settings.dormant_days),
        dormant_since=now - timedelta(days=settings.dormant_days + settings.lookback_days),
        large_amount_fen=settings.large_amount_fen,
        due_at=now + timedelta(hours=settings.due_hours),
    )


# An open task past its due time by more than this is "breached" (the SLA badge), not just "overdue".
BREACH_AFTER = timedelta(days=1)


def sla_state(due_at: datetime, now: datetime) -> str:
    """Return an open task's SLA state: due (not yet), overdue (past due), breached (overdue by more than a day)."""
    if now <= due_at:
        return "due"
    return "breached" if now - due_at > BREACH_AFTER else "overdue"


@dataclass(slots=True)
class Assignment:
    """What `assign` decided: task id → agent, and the investors who got a new owner."""

    tasks: dict[int, int] = field(default_factory=dict)
    new_owners: dict[int, int] = field(default_factory=dict)


def assign(tasks: Sequence[tuple[int, int]], *, agents: Sequence[int], load: Mapping[int, int],
           owners: Mapping[int, int], cap: int, last_agent: int | None) -> Assignment:
    """Assign (task id, investor id) pairs: an investor's owner keeps them, the rest round-robin, under the cap.

    `agents` are the active agents' ids, `load` their open tasks, `owners` investor → owning agent.
    A task whose owner is at the cap waits in the pool (the owner keeps the investor); so does any
    task when every agent is at the cap. The rotation starts after `last_agent`, the last one given a task.
    """
    order = sorted(agents)
    held = {agent: load.get(agent, 0) for agent in order}
    owner_of = {investor: agent for investor, agent in owners.items() if agent in held}
    out = Assignment()
    start = next((i + 1 for i, agent in enumerate(order) if last_agent is not None and agent >= last_agent), 0)
    if start and order[start - 1] != last_agent:
        start -= 1  # the last agent is gone: begin with the next id after theirs
    turn = start
    for task_id, investor_id in tasks:
        owner = owner_of.get(investor_id)
        if owner is not None:
            if held[owner] < cap:
                out.tasks[task_id] = owner
                held[owner] += 1
            continue
        for step in range(len(order)):
            agent = order[(turn + step) % len(order)]
            if held[agent] < cap:
                out.tasks[task_id] = agent
                held[agent] += 1
                owner_of[investor_id] = out.new_owners[investor_id] = agent
                turn = (turn + step + 1) % len(order)
                break
    return out


def follow_up_at(text: str) -> datetime | None:
    """Read a Beijing-time datetime-local value ("2026-12-05T10:00") as aware UTC; raise DomainError when bad."""
    text = text.strip()
    if not text:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise DomainError(_l("请填写有效的日期和时间"), field="next_follow_up") from None
    if value.tzinfo is not None:
        raise DomainError(_l("请填写有效的日期和时间"), field="next_follow_up")
    return value.replace(tzinfo=SHANGHAI).astimezone(UTC)


# --- a templated message: what delivery will do with it, shown before sending -------------------------------


@dataclass(frozen=True, slots=True)
class SendSituation:
    """What delivery looks at when it sends a message to one investor on one channel, as it stands now."""

    marketing: bool
    channel_configured: bool = True
    channel_paused: bool = False
    kill_switch: bool = False
    has_address: bool = True
    refused: bool = False  # a provider refused the investor's current address for good
    consent: bool | None = None  # the latest statement on the channel: granted, withdrawn, or None (never stated)
    opt_out_ok: bool = True  # a marketing SMS carries an opt-out phrase
    quiet_until: datetime | None = None  # the end of the quiet period holding now (None: not quiet, or off)
    caps_full: tuple[str, ...] = ()  # caps the investor has used up in their current period ("sms:1/day")


@dataclass(frozen=True, slots=True)
class SendCheck:
    """One thing delivery would do with the message: `block` (it is not sent) or `hold` (it waits), with why."""

    code: str  # one of models.SEND_CHECK_LABELS
    effect: str  # "block" or "hold"
    until: datetime | None = None  # hold: when it is released (quiet hours)
    caps: tuple[str, ...] = ()  # cap: which


def send_checks(s: SendSituation) -> list[SendCheck]:
    """Return what delivery would do with the message if it were sent now, in delivery's order of checks.

    The same order and rules as `channels.delivery` applies at send time (where they are enforced); this
    only shows them before sending. Service messages skip consent, quiet hours, caps and the kill switch.
    """
    out: list[SendCheck] = []
    if s.channel_paused:
        out.append(SendCheck("paused", "hold"))
    if s.marketing and s.kill_switch:
        out.append(SendCheck("kill_switch", "hold"))
    if not s.channel_configured:
        out.append(SendCheck("channel_off", "block"))
    if s.marketing and s.quiet_until is not None:
        out.append(SendCheck("quiet_hours", "hold", until=s.quiet_until))
    if not s.has_address:
        out.append(SendCheck("no_address", "block"))
    elif s.refused:
        out.append(SendCheck("refused", "block"))
    if s.marketing and not s.consent:
        out.append(SendCheck("no_consent" if s.consent is None else "consent_withdrawn", "block"))
    if s.marketing and not s.opt_out_ok:
        out.append(SendCheck("sms_opt_out_missing", "block"))
    if s.marketing and s.caps_full:
        out.append(SendCheck("cap", "block", caps=s.caps_full))
    return out


def blocked(checks: Sequence[SendCheck]) -> bool:
    """Tell whether delivery would not send the message at all (as opposed to sending it later)."""
    return any(c.effect == "block" for c in checks)
