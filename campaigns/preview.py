"""Campaign preview (spec §3): who it would reach, on which channels, how long its SMS is, what it may cost.

`audience` counts every member before holdout and consent; `holdout` those the stable hash keeps out;
`messages` per channel only what would be sent now — to a treated member with an address on the channel
that no provider refused, and for marketing the member's consent — following the fallback chains (a
message marked `fallback` is tried only when the one before it cannot reach the member). Quiet hours and caps are
decided when sending, so they are not counted here. The audience is streamed in chunks (never the whole
list in memory); samples are rendered on the made-up sample investor, so no real person's data shows.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from campaigns import compliance, segments
from campaigns.definition import Definition, EmailMessage, Message, SmsMessage, WechatMessage
from channels.models import ConsentState, Unreachable
from channels.services import contact_digest
from channels.sms import sms_length
from channels.templates import render, sample_context
from growth.crm import services as crm
from growth.investors.models import Investor

ADDRESS_COLUMNS = {"sms": Investor.phone, "email": Investor.email, "wechat": Investor.wechat_openid}


@dataclass
class Preview:
    """What a campaign would do if it ran now."""

    audience: int = 0
    holdout: int = 0
    messages: Counter[str] = field(default_factory=Counter)
    sms_parts: int = 0
    compliance: list[Any] = field(default_factory=list)
    samples: list[dict[str, Any]] = field(default_factory=list)
    crm_tasks: int | None = None  # with a `crm_task` step: treated members who may be called (beyond spec §3)
    recent_calls: int | None = None  # a `crm_call` trigger: calls of the last RECENT days that it would have taken

    def as_json(self) -> dict[str, Any]:
        """Return the preview in the spec's shape (estimated_cost is added by the caller), and our extras."""
        out = {"audience": self.audience, "holdout": self.holdout,
               "messages": {m: self.messages.get(m, 0) for m in sorted(self.messages)},
               "sms_parts": self.sms_parts, "compliance": [p.as_json() for p in self.compliance],
               "samples": self.samples}
        if self.crm_tasks is not None:
            out["crm_tasks"] = self.crm_tasks
        if self.recent_calls is not None:
            out["recent_calls"] = self.recent_calls
        return out


def _reachability(session: Session, ids: list[int], channels: Iterable[str],
                  marketing: bool) -> dict[int, set[str]]:
    """Return, per investor, the channels a message could go out on now."""
    names = sorted(channels)
    rows = session.execute(select(Investor.id, *(ADDRESS_COLUMNS[c] for c in names)).where(Investor.id.in_(ids)))
    consent: set[tuple[int, str]] = set()
    if marketing:
        consent = {(i, c) for i, c in session.execute(
            select(ConsentState.investor_id, ConsentState.channel)
            .where(ConsentState.investor_id.in_(ids), ConsentState.granted.is_(True)))}
    refused = {(i, c): d for i, c, d in session.execute(
        select(Unreachable.investor_id, Unreachable.channel, Unreachable.contact_digest)
        .where(Unreachable.investor_id.in_(ids)))}
    reach: dict[int, set[str]] = {}
    for investor_id, *values in rows:
        addresses = dict(zip(names, values, strict=True))
        ok = set()
        for channel, address in addresses.items():
            if not address:
                continue
            if refused.get((investor_id, channel)) == contact_digest(address):
                continue
            if marketing and (investor_id, channel) not in consent:
                continue
            ok.add(channel)
        reach[investor_id] = ok
    return reach


def chains(messages: Iterable[Message]) -> list[list[Message]]:
    """Group the messages into fallback chains: a `fallback` message is tried when the one before cannot reach."""
    groups: list[list[Message]] = []
    for message in messages:
        if message.fallback and groups:
            groups[-1].append(message)
        else:
            groups.append([message])
    return groups


def sent_channels(messages: Iterable[Message], reachable: set[str]) -> list[str]:
    """Return the channels a member's messages go out on: in each chain, the first one that can reach them."""
    sent: list[str] = []
    for chain in chains(messages):
        first = next((m.channel for m in chain if m.channel in reachable), None)
        if first is not None:
            sent.append(first)
    return sent


def _sample(message: Message, campaign_name: str, sign_name: str) -> dict[str, Any]:
    context = sample_context(campaign_name)
    try:
        if isinstance(message, SmsMessage):
            text = render(message.text, context)
            return {"channel": "sms", "text": f"【{sign_name}】{text}" if sign_name else text,
                    "params": {k: render(v, context) for k, v in (message.params or {}).items()}}
        if isinstance(message, EmailMessage):
            return {"channel": "email", "subject": render(message.subject, context),
                    "text": render(message.text, context),
                    "html": render(message.html, context, html=True) if message.html else None}
        assert isinstance(message, WechatMessage)
        return {"channel": "wechat", "kind": message.kind,
                "data": {k: render(v, context) for k, v in (message.data or {}).items()},
                "text": render(message.text, context) if message.text else None}
    except Exception as exc:  # an unrenderable template is shown as such; compliance says why
        return {"channel": message.channel, "error": str(exc)}


RECENT = timedelta(days=7)


def _recent_calls(definition: Definition, outcomes: list[str], *, session: Session, now: datetime) -> int:
    """Count the calls of the last RECENT days a `crm_call` trigger would have taken (its outcomes, its audience)."""
    called = crm.called_since(outcomes, now - RECENT, session=session)
    if not called or not definition.audience.all:
        return len(called)
    inside = set(session.scalars(select(Investor.id).where(segments.where(definition.audience, now=now),
                                                           Investor.id.in_(sorted(set(called))))))
    return sum(1 for investor_id in called if investor_id in inside)


def preview(definition: Definition, *, campaign_id: int, session: Session, now: datetime,
            sign_name: str = "", chunk: int = segments.CHUNK) -> Preview:
    """Return what the campaign would do if it ran now."""
    result = Preview(compliance=compliance.check(definition))
    channels = {m.channel for m in definition.messages}
    if definition.crm_task is not None:
        result.crm_tasks = 0
    for members in segments.stream(definition.audience, session=session, now=now, chunk=chunk):
        result.audience += len(members)
        treated = [m for m in members if not segments.in_holdout(campaign_id, m.user_id, definition.holdout_percent)]
        result.holdout += len(members) - len(treated)
        if result.crm_tasks is not None:
            refused = crm.do_not_contact_among([m.investor_id for m in treated], session=session)
            result.crm_tasks += sum(1 for m in treated if m.investor_id not in refused)
        if not channels or not treated:
            continue
        reach = _reachability(session, [m.investor_id for m in treated], channels, definition.marketing)
        for m in treated:
            result.messages.update(sent_channels(definition.messages, reach.get(m.investor_id, set())))
    trigger = definition.trigger
    if trigger is not None and trigger.on == "crm_call" and trigger.conditions is not None:
        result.recent_calls = _recent_calls(definition, trigger.conditions.outcomes or [], session=session, now=now)
    for channel in channels:
        result.messages.setdefault(channel, 0)
    for message in definition.messages:
        result.samples.append(_sample(message, definition.name, sign_name))
        if isinstance(message, SmsMessage):
            try:
                text = render(message.text, sample_context(definition.name))
            except Exception:  # an unrenderable text (compliance lists it) is measured as written
                text = message.text
            result.sms_parts = sms_length(text, sign_name).segments
    return result
