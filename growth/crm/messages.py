"""Templated messages an agent sends to an investor from the CRM: what the page shows first, then the send.

The agent picks a template of the channels' library (`channels.template_library`); its channel and class
(service or marketing) come with it. Before sending, the page shows what delivery will do with the message
(`rules.send_checks`: consent, quiet hours, caps, the kill switch, reachability — the same checks
`channels.delivery` makes, and enforces, when it sends), the SMS length and the message rendered for this
investor, masked unless the agent revealed them. Sending writes a `crm_messages` row (the CRM's record,
shown in the investor's history) and the outbox row in the request's transaction, once per send form:
the form's token is unique, so a double submit sends one message. The outbox row holds the name slot
(`channels.templates.NAME_SLOT`), not the name: delivery fills it in when it sends. Services flush,
never commit.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from flask_babel import gettext as _
from jinja2 import TemplateError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from channels.adapters.port import Channel, MessageClass
from channels.models import MessageTemplate, OutboxMessage
from channels.outbox import NewMessage, enqueue, find
from channels.receipts import UNSUBSCRIBE_CHANNELS
from channels.rules import Cap, quiet_until
from channels.services import cap_usage, consent_of, unreachable_on
from channels.settings import ChannelConfig
from channels.sms import SmsLength, has_opt_out, signed_text, sms_length
from channels.template_library import TemplateDraft, content_of, usable_templates
from channels.templates import NAME_SLOT, context
from growth.audit.services import record
from growth.crm import rules
from growth.crm.models import CrmMessage, CrmTask
from growth.errors import DomainError, Forbidden, NotFound
from growth.investors.models import Investor
from growth.investors.rules import mask_name, mask_phone
from growth.timeutil import SHANGHAI

SENDER = "crm"
TOKEN = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
HISTORY = 20  # messages an investor was sent from the CRM, shown on the send page and a task's page
# Why the CRM cannot send a template to one investor at all (it is refused before anything is queued).
UNSENDABLE = {
    # Marketing goes to WeChat by mass send, to at least two followers at once: never to one person.
    "wechat_mass": "wechat_mass",
    # A WeChat service notice is a template message: a template without one has nothing to send.
    "wechat_no_template": "wechat_no_template",
}


def new_token() -> str:
    """Return a fresh send-form token (the idempotency key of one send)."""
    return secrets.token_urlsafe(24)


def addresses_of(investor: Investor) -> dict[str, str]:
    """Return the investor's address per channel that has one (sms, email, wechat)."""
    found = {"sms": investor.phone, "email": investor.email, "wechat": investor.wechat_openid}
    return {channel: address for channel, address in found.items() if address}


def unsendable(template: MessageTemplate) -> str | None:
    """Return why the CRM cannot send this template to one investor (a code of UNSENDABLE), or None."""
    if template.channel != "wechat":
        return None
    if template.message_class == "marketing":
        return "wechat_mass"
    if not template.provider_template.strip():
        return "wechat_no_template"
    return None


def investor_of(session: Session, investor_id: int) -> Investor:
    """Return an investor by id, or NotFound."""
    investor = session.get(Investor, investor_id)
    if investor is None:
        raise NotFound(_("投资人不存在"))
    return investor


def _template(session: Session, template_id: int | None) -> MessageTemplate:
    template = session.get(MessageTemplate, template_id) if template_id is not None else None
    if template is None or template.archived:
        raise DomainError(_("请选择模板库中的一个模板"), field="template_id")
    return template


@dataclass(frozen=True, slots=True)
class Choice:
    """A template in the picker, with why it cannot go to this investor (None: it can)."""

    template: MessageTemplate
    reason: str | None  # "no_address", "refused" or a code of UNSENDABLE


def choices(investor: Investor, *, session: Session) -> list[Choice]:
    """Return the library's usable templates, each with whether this investor can be reached with it."""
    addresses = addresses_of(investor)
    refused = unreachable_on(session=session, investor_id=investor.id, addresses=addresses)
    out = []
    for template in usable_templates(session=session):
        reason = unsendable(template)
        if reason is None and template.channel not in addresses:
            reason = "no_address"
        elif reason is None and template.channel in refused:
            reason = "refused"
        out.append(Choice(template, reason))
    return out


@dataclass(slots=True)
class Draft:
    """What the page shows before sending one template to one investor."""

    template: MessageTemplate
    marketing: bool
    checks: list[rules.SendCheck]
    consent: dict[str, Any] | None  # the latest statement on the channel: granted, at, source
    caps: list[tuple[Cap, int]]  # the caps the message counts against, with what the investor used of each
    quiet_hours: str | None  # "21:00-08:00", None when off
    preview: dict[str, Any] = field(default_factory=dict)  # rendered content, personal data masked unless revealed
    sms: SmsLength | None = None
    sign_name: str = ""
    error: str | None = None  # the template could not be rendered for this investor
    unsendable: str | None = None
    revealed: bool = False  # the preview shows the investor's own name (an audited reveal holds)

    @property
    def channel(self) -> str:
        """The channel the template is written for."""
        return self.template.channel

    @property
    def blocked(self) -> bool:
        """Tell whether the message would not be sent at all (delivery refuses it, or the CRM cannot send it)."""
        return self.unsendable is not None or self.error is not None or rules.blocked(self.checks)


def _variables(investor: Investor, *, masked: bool, unsubscribe_url: str) -> dict[str, Any]:
    """The preview's variables: the name as the agent may see it (masked unless revealed)."""
    name = investor.name or ""
    return context(investor_name=mask_name(name) if masked else name, masked_phone=mask_phone(investor.phone),
                   unsubscribe_url=unsubscribe_url)


def _queued_variables(investor: Investor, *, unsubscribe_url: str) -> dict[str, Any]:
    """The queued message's variables: the name as the slot delivery fills in (no name at rest)."""
    return context(investor_name=NAME_SLOT, masked_phone=mask_phone(investor.phone), unsubscribe_url=unsubscribe_url)


def compose(investor_id: int, template_id: int, *, session: Session, config: ChannelConfig, now: datetime,
            revealed: bool, preview_link: str) -> Draft:
    """Return what sending a template to an investor now would do, and the message rendered for them.

    `revealed`: the agent may see this investor's personal data now (else the preview masks the name);
    `preview_link` stands in for the investor's unsubscribe link.
    """
    investor = investor_of(session, investor_id)
    template = _template(session, template_id)
    channel, marketing = template.channel, template.message_class == "marketing"
    addresses = addresses_of(investor)
    refused = unreachable_on(session=session, investor_id=investor.id, addresses=addresses)
    consent = consent_of(session=session, investor_id=investor.id).get(channel)
    caps = cap_usage(session=session, investor_id=investor.id, channel=channel, caps=config.caps, now=now)
    draft = Draft(template=template, marketing=marketing, checks=[], consent=consent, caps=caps,
                  quiet_hours=str(config.quiet_hours) if config.quiet_hours else None,
                  sign_name=config["sms_sign_name"], unsendable=unsendable(template), revealed=revealed)
    try:
        draft.preview = content_of(TemplateDraft.of(template),
                                   _variables(investor, masked=not revealed, unsubscribe_url=preview_link))
    except (TemplateError, TypeError, ValueError, ArithmeticError) as exc:
        draft.error = str(exc)
    text = str(draft.preview.get("text", ""))
    if channel == "sms" and not draft.error:
        draft.sms = sms_length(text, draft.sign_name)
        draft.preview["signed"] = signed_text(text, draft.sign_name)
    situation = rules.SendSituation(
        marketing=marketing, channel_configured=config.provider(channel) is not None,
        channel_paused=config.paused(channel), kill_switch=config.marketing_held(), has_address=channel in addresses,
        refused=channel in refused, consent=None if consent is None else bool(consent["granted"]),
        opt_out_ok=channel != "sms" or has_opt_out(text) or bool(draft.error),
        quiet_until=quiet_until(config.quiet_hours, now, SHANGHAI),
        caps_full=tuple(str(cap) for cap, used in caps if used >= cap.limit))
    draft.checks = rules.send_checks(situation)
    return draft


def _close_task(task: CrmTask, *, agent_id: int, may_manage: bool, now: datetime) -> bool:
    """Close the task the message was sent from as done; return False when it was closed already."""
    if task.status != "open":
        return False  # closed meanwhile (a call logged in another tab): the message still goes
    if task.assignee_id not in (None, agent_id) and not may_manage:
        raise Forbidden(_("这是其他客服的任务"))
    if task.assignee_id is None:
        task.assignee_id, task.assigned_at = agent_id, now
    task.status, task.closed_at, task.closed_by, task.source_key = "done", now, agent_id, None
    return True


@dataclass(frozen=True, slots=True)
class Sent:
    """A send: the CRM's record of it, and whether this request made it (False: a repeat of the same form)."""

    message: CrmMessage
    created: bool


def send(investor_id: int, template_id: int | None, *, token: str, agent_id: int, session: Session, now: datetime,
         unsubscribe_link: Callable[[int, str], str], task_id: int | None = None, close_task: bool = False,
         may_manage: bool = False) -> Sent:
    """Queue a library template for an investor through the outbox, once per form token; record and audit it.

    Consent, quiet hours, caps and the kill switch are delivery's to apply when it sends (nothing is checked
    twice here); a template the CRM cannot send to one person (`unsendable`) is refused. With `close_task`
    the task it was sent from is closed as done (the agent's own or the pool's; another agent's needs
    `may_manage`). `unsubscribe_link(investor_id, channel)` signs the investor's one-click unsubscribe URL.
    """
    if not TOKEN.match(token or ""):
        raise DomainError(_("表单已失效，请刷新页面后再发送"), field="token")
    earlier = session.scalar(select(CrmMessage).where(CrmMessage.form_token == token))
    if earlier is not None:
        return Sent(earlier, created=False)
    investor = investor_of(session, investor_id)
    template = _template(session, template_id)
    reason = unsendable(template)
    if reason is not None:
        raise DomainError(_("该模板不能单独发送给一位投资人") if reason == "wechat_mass"
                          else _("微信服务通知须使用微信模板消息（模板 ID）"), field="template_id")
    if template.channel not in addresses_of(investor):
        raise DomainError(_("投资人在该渠道没有联系方式"), field="template_id")
    task = session.get(CrmTask, task_id) if task_id is not None else None
    if task_id is not None and (task is None or task.investor_id != investor.id):
        raise DomainError(_("任务不属于这位投资人"), field="task_id")
    channel, klass = Channel(template.channel), MessageClass(template.message_class)
    link = unsubscribe_link(investor.id, template.channel) if (
        klass == MessageClass.MARKETING and template.channel in UNSUBSCRIBE_CHANNELS) else ""
    try:
        content = content_of(TemplateDraft.of(template), _queued_variables(investor, unsubscribe_url=link))
    except (TemplateError, TypeError, ValueError, ArithmeticError):
        raise DomainError(_("模板无法渲染，请联系运营修改模板"), field="template_id") from None
    row = CrmMessage(investor_id=investor.id, agent_id=agent_id, task_id=task.id if task else None,
                     template_id=template.id, template_name=template.name, channel=template.channel,
                     message_class=template.message_class, form_token=token, created_at=now)
    try:
        with session.begin_nested():  # the unique token settles a double submit racing this one
            session.add(row)
    except IntegrityError:  # the savepoint's rollback took the row out of the session again
        earlier = session.scalar(select(CrmMessage).where(CrmMessage.form_token == token))
        if earlier is None:
            raise
        return Sent(earlier, created=False)
    closed = False
    if task is not None and close_task:  # after the token: a double submit never sees its own close as a conflict
        session.refresh(task, with_for_update=True)
        closed = _close_task(task, agent_id=agent_id, may_manage=may_manage, now=now)
    message = NewMessage(sender=SENDER, cause=f"crm-message:{row.id}", channel=channel, message_class=klass,
                         content=content, investor_id=investor.id, user_id=investor.platform_user_id)
    outbox_id = enqueue(message, session=session, now=now)
    if outbox_id is None:  # cannot happen for a new row's cause, but a key is a key
        existing = find(message.key(), session=session)
        outbox_id = existing.id if existing else None
    row.outbox_id = outbox_id
    session.flush()
    record("crm.message_sent", session=session, target_type="investor", target_id=investor.id,
           details={"crm_message": row.id, "outbox_message": outbox_id, "template": template.name,
                    "channel": template.channel, "class": template.message_class, "task": row.task_id,
                    "task_closed": closed})
    return Sent(row, created=True)


@dataclass(frozen=True, slots=True)
class SentMessage:
    """A message sent from the CRM as the investor's history shows it, with its delivery status now."""

    message: CrmMessage
    status: str | None  # the outbox row's status (channels.models.STATUS_LABELS)


def history(investor_id: int, *, session: Session, limit: int = HISTORY) -> list[SentMessage]:
    """Return the messages agents sent an investor from the CRM, newest first, with their delivery status."""
    rows = session.execute(
        select(CrmMessage, OutboxMessage.status).outerjoin(OutboxMessage, OutboxMessage.id == CrmMessage.outbox_id)
        .where(CrmMessage.investor_id == investor_id)
        .order_by(CrmMessage.created_at.desc(), CrmMessage.id.desc()).limit(limit))
    return [SentMessage(message, status) for message, status in rows]
