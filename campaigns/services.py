"""Campaign services: create and replace a definition, move it through its life cycle, read it back.

Every change is a conditional update on (status, version), so two people acting on one campaign at once
cannot both win: the second gets a 409 and sees the campaign as the first left it. Each step is kept in
`campaign_transitions` (the campaign's history) and in the audit log.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from campaigns import compliance, rules
from campaigns.definition import Definition, dump, parse
from campaigns.models import ACTION_LABELS, STATUS_LABELS, Campaign, CampaignTransition
from channels.models import ChannelSetting
from channels.services import marketing_hold_counts, set_marketing_hold
from channels.settings import load as load_channel_settings
from growth.audit.services import record
from growth.auth.models import StaffUser
from growth.errors import Conflict, Forbidden, Invalid, NotFound, Problem
from growth.timeutil import as_utc

MAX_REASON = 1_000


class ComplianceFailed(Invalid):
    """The campaign's wording breaks a compliance rule; submit and approve refuse it (422, every problem listed)."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__(problems, message=_l("活动未通过合规检查，请改正标出的问题。"))


def get(campaign_id: int, *, session: Session) -> Campaign:
    """Return a campaign; raise NotFound."""
    campaign = session.get(Campaign, campaign_id)
    if campaign is None:
        raise NotFound(_l("没有这个活动"))
    return campaign


def definition_of(campaign: Campaign) -> Definition:
    """Return a stored campaign's definition, parsed."""
    return parse(campaign.definition)


def compliance_of(campaign: Campaign) -> list[Problem]:
    """Return every compliance problem of a stored campaign."""
    return compliance.check(definition_of(campaign))


def log_step(campaign: Campaign, action: str, before: str | None, *, session: Session, actor_id: int | None,
             now: datetime, note: str | None = None, actor: str | None = None) -> None:
    """Keep a step in the campaign's history and the audit log (`actor` names a system actor: the scheduler)."""
    session.add(CampaignTransition(campaign_id=campaign.id, action=action, from_status=before,
                                   to_status=campaign.status, actor_id=actor_id, note=note,
                                   version=campaign.version, at=now))
    details: dict[str, Any] = {"name": campaign.name, "status": campaign.status}
    if before is not None and before != campaign.status:
        details["from"] = before
    if note:
        details["note"] = note
    record(f"campaign.{action}", session=session, target_type="campaign", target_id=campaign.id, details=details,
           actor_id=actor_id, actor=actor)


def create(document: object, *, session: Session, actor_id: int | None, now: datetime) -> Campaign:
    """Create a draft from a spec §2 document (refused only when it breaks the schema)."""
    definition = parse(document)
    campaign = Campaign(name=definition.name, type=definition.type, message_class=definition.class_,
                        definition=dump(definition), status="draft", version=1, created_by=actor_id,
                        created_at=now, updated_at=now)
    session.add(campaign)
    session.flush()
    log_step(campaign, "create", None, session=session, actor_id=actor_id, now=now)
    return campaign


def _conditional(campaign: Campaign, values: dict[str, Any], *, session: Session) -> None:
    """Apply a change only if nobody changed the campaign since it was read; raise Conflict otherwise."""
    result = session.execute(
        update(Campaign)
        .where(Campaign.id == campaign.id, Campaign.status == campaign.status, Campaign.version == campaign.version)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        session.expire(campaign)
        raise Conflict(_l("活动刚被别人改过，请刷新后再试。"))
    session.expire(campaign)


def replace(campaign: Campaign, document: object, *, session: Session, actor_id: int | None,
            now: datetime) -> Campaign:
    """Replace the definition; anything but a rename sends a non-draft campaign back to draft."""
    definition = parse(document)
    edited = dump(definition)
    before = campaign.status
    try:
        status = rules.after_edit(before, campaign.definition, edited)
    except rules.WrongState:
        raise Conflict(_l("已结束或已取消的活动不能修改")) from None
    values: dict[str, Any] = {"definition": edited, "name": definition.name, "type": definition.type,
                              "message_class": definition.class_, "status": status,
                              "version": campaign.version + 1, "updated_at": now}
    if status == "draft" and before != "draft":  # approval no longer holds: it must be approved again
        values.update(approved_by=None, approved_at=None, submitted_by=None, submitted_at=None, paused_from=None)
    _conditional(campaign, values, session=session)
    log_step(campaign, "edit", before, session=session, actor_id=actor_id, now=now)
    return campaign


def transition(campaign: Campaign, action: str, *, session: Session, actor_id: int | None, now: datetime,
               note: str | None = None) -> Campaign:
    """Take a life-cycle step (submit, approve, reject, pause, resume, cancel) under spec §3's rules."""
    definition = definition_of(campaign)
    try:
        status = rules.after(action, campaign.status, scheduled=definition.schedule is not None,
                             paused_from=campaign.paused_from)
    except rules.WrongState:
        raise Conflict(_l("活动当前状态为“%(status)s”，不能“%(action)s”",
                          status=STATUS_LABELS.get(campaign.status, campaign.status),
                          action=ACTION_LABELS.get(action, action))) from None
    values: dict[str, Any] = {"status": status, "updated_at": now}
    if action in ("submit", "approve"):
        problems = compliance.check(definition)
        if problems:
            raise ComplianceFailed(problems)
    if action == "submit":
        values.update(submitted_by=actor_id, submitted_at=now, rejection_reason=None)
    elif action == "approve":
        if actor_id is not None and actor_id == campaign.created_by:
            raise Forbidden(_l("不能审批自己创建的活动（四眼原则）"))
        values.update(approved_by=actor_id, approved_at=now)
    elif action == "reject":
        reason = (note or "").strip()
        if not reason:
            raise Invalid([Problem("reason", "missing", _l("请填写驳回原因"))])
        if len(reason) > MAX_REASON:
            raise Invalid([Problem("reason", "too_long", _l("驳回原因太长（最多 %(n)s 字）", n=MAX_REASON))])
        note = reason
        values.update(rejection_reason=reason, approved_by=None, approved_at=None)
    elif action == "pause":
        values["paused_from"] = campaign.status
    elif action == "resume":
        values["paused_from"] = None
    before = campaign.status
    _conditional(campaign, values, session=session)
    log_step(campaign, action, before, session=session, actor_id=actor_id, now=now, note=note)
    return campaign


ACTIONS = ("submit", "approve", "reject", "pause", "resume", "cancel")  # what staff do; start/finish are the runner's


KILL_SWITCH_NOTE = "kill switch"  # the note of the pauses the kill switch makes (a reason follows it)


@dataclass(frozen=True, slots=True)
class KillSwitchOutcome:
    """What the kill switch did: its state now, the campaigns it paused, the messages it held or released."""

    on: bool
    paused_campaigns: list[int]
    messages: int


def kill_switch(on: bool, *, session: Session, actor_id: int | None, now: datetime,
                reason: str | None = None) -> KillSwitchOutcome:
    """Spec §3: on pauses every active, scheduled or running marketing campaign and holds every queued or
    deferred marketing message; off releases the held messages (the campaigns stay paused)."""
    paused: list[int] = []
    reason = (reason or "").strip()[:MAX_REASON] or None
    if on:
        note = KILL_SWITCH_NOTE if reason is None else f"{KILL_SWITCH_NOTE}: {reason}"
        running = session.scalars(select(Campaign).where(Campaign.message_class == "marketing",
                                                         Campaign.status.in_(rules.PAUSABLE))
                                  .order_by(Campaign.id)).all()
        for campaign in running:
            try:
                transition(campaign, "pause", session=session, actor_id=actor_id, now=now, note=note)
            except Conflict:  # changed under us (finished, cancelled): nothing left to pause
                continue
            paused.append(campaign.id)
    messages = set_marketing_hold(on, session=session, now=now, by=actor_id, reason=reason)
    return KillSwitchOutcome(on, paused, messages)


@dataclass(frozen=True, slots=True)
class KillSwitchState:
    """The kill switch as its page shows it: on or off, since when and by whom, and what it holds or would."""

    on: bool
    changed_at: datetime | None
    changed_by: int | None
    live_campaigns: int  # marketing campaigns active, scheduled or running (switching on pauses them)
    paused_by_switch: int  # marketing campaigns the switch paused that are still paused
    held_messages: int  # marketing messages it holds
    waiting_messages: int  # marketing messages queued or deferred (switching on holds them)


def kill_switch_state(*, session: Session, environment: Mapping[str, str]) -> KillSwitchState:
    """Return the kill switch's state and what it affects."""
    t = CampaignTransition
    marketing = Campaign.message_class == "marketing"
    live = session.scalar(select(func.count()).where(marketing, Campaign.status.in_(rules.PAUSABLE))) or 0
    latest = select(t.campaign_id, func.max(t.id).label("id")).group_by(t.campaign_id).subquery()
    by_switch = session.scalar(
        select(func.count()).select_from(Campaign)
        .join(latest, latest.c.campaign_id == Campaign.id).join(t, t.id == latest.c.id)
        .where(marketing, Campaign.status == "paused", t.action == "pause", t.note.startswith(KILL_SWITCH_NOTE))
    ) or 0
    held, waiting = marketing_hold_counts(session=session)
    override = session.get(ChannelSetting, "marketing_hold")
    return KillSwitchState(
        on=load_channel_settings(session=session, environment=environment).marketing_held(),
        changed_at=override.updated_at if override is not None else None,
        changed_by=override.updated_by if override is not None else None,
        live_campaigns=live, paused_by_switch=by_switch, held_messages=held, waiting_messages=waiting,
    )


def listing(*, session: Session, status: str | None = None, type_: str | None = None, limit: int = 50,
            offset: int = 0) -> tuple[list[Campaign], int]:
    """Return a page of campaigns, newest first, and how many match."""
    query = select(Campaign)
    if status:
        query = query.where(Campaign.status == status)
    if type_:
        query = query.where(Campaign.type == type_)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.scalars(query.order_by(Campaign.id.desc()).limit(limit).offset(offset)).all()
    return list(rows), total


def history(campaign: Campaign, *, session: Session) -> Sequence[CampaignTransition]:
    """Return a campaign's transitions, oldest first."""
    return session.scalars(select(CampaignTransition).where(CampaignTransition.campaign_id == campaign.id)
                           .order_by(CampaignTransition.id)).all()


def as_json(campaign: Campaign, *, session: Session, staff: dict[int, str] | None = None) -> dict[str, Any]:
    """Return a campaign as the API shows it: the definition plus id, status, authorship and compliance."""
    if staff is None:
        staff = staff_emails([campaign], session=session)

    def stamp(value: datetime | None) -> str | None:
        return None if value is None else as_utc(value).isoformat()

    return {
        **campaign.definition,
        "id": campaign.id,
        "status": campaign.status,
        "version": campaign.version,
        "created_by": staff.get(campaign.created_by or 0),
        "approved_by": staff.get(campaign.approved_by or 0),
        "submitted_at": stamp(campaign.submitted_at),
        "approved_at": stamp(campaign.approved_at),
        "rejection_reason": campaign.rejection_reason,
        "created_at": stamp(campaign.created_at),
        "updated_at": stamp(campaign.updated_at),
        "compliance": [p.as_json() for p in compliance_of(campaign)],
    }


def staff_emails(campaigns: Sequence[Campaign], *, session: Session) -> dict[int, str]:
    """Return the e-mail of every staff member who created or approved one of the campaigns."""
    ids = {i for c in campaigns for i in (c.created_by, c.approved_by) if i is not None}
    if not ids:
        return {}
    rows = session.execute(select(StaffUser.id, StaffUser.email).where(StaffUser.id.in_(ids)))
    return {staff_id: email for staff_id, email in rows}
