"""The template library: reusable message wordings, checked before they are saved, previewed with a sample investor.

A template is refused before saving when it names a variable outside the fixed set (spec §2,
`unknown_variable`), when a marketing SMS carries no opt-out phrase (`sms_opt_out_missing`) or when a
marketing WeChat message uses a template message (`wechat_template_marketing`: marketing goes by mass
send). Templates are archived, never deleted: campaigns may have copied their wording.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from flask_babel import lazy_gettext as _l
from jinja2 import TemplateError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from channels.models import CLASS_LABELS, MessageTemplate
from channels.sms import SmsLength, has_opt_out, sms_length
from channels.templates import NAME_TRANSFORMED, name_transformed, render, sample_context, unknown_variables
from growth.audit.services import record
from growth.errors import Conflict, DomainError, NotFound

# People write templates for the channels that reach a person; the platform webhook has no wording.
TEMPLATE_CHANNELS = ("sms", "email", "wechat")
MAX_NAME = 100
MAX_SUBJECT = 200
MAX_BODY = 10_000
MAX_HTML = 200_000
MAX_PROVIDER_TEMPLATE = 64
MAX_PARAMS = 30
_PARAM_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]{0,63}$")


@dataclass(frozen=True, slots=True)
class Problem:
    """One reason a template cannot be saved: the field, a stable code, and a message for people."""

    field: str
    code: str
    message: Any


@dataclass(frozen=True, slots=True)
class TemplateDraft:
    """A template as submitted (not yet saved)."""

    name: str
    channel: str
    message_class: str
    body: str = ""
    subject: str = ""
    html: str = ""
    provider_template: str = ""
    params: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, template: MessageTemplate) -> TemplateDraft:
        """Return a saved template as a draft (to edit or preview it)."""
        return cls(template.name, template.channel, template.message_class, template.body, template.subject,
                   template.html, template.provider_template, dict(template.params or {}))


class TemplateInvalid(DomainError):
    """A template that breaks a rule; `problems` lists every one."""

    status = 422

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__(_l("模板未保存，请改正标出的问题。"))
        self.problems = problems


def parse_params(text: str) -> tuple[dict[str, str], list[Problem]]:
    """Parse provider parameters written one a line as `name = {{ expression }}`; return them and any problem."""
    params: dict[str, str] = {}
    problems: list[Problem] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        name, sep, value = line.partition("=")
        name = name.strip()
        if not sep or not _PARAM_NAME.match(name):
            problems.append(Problem("params", "invalid_params",
                                    _l("第 %(n)d 行应写作“参数名 = 内容”，参数名由字母、数字和下划线组成", n=number)))
            continue
        if name in params:
            problems.append(Problem("params", "invalid_params", _l("参数 %(name)s 重复", name=name)))
            continue
        params[name] = value.strip()
    if len(params) > MAX_PARAMS:
        problems.append(Problem("params", "invalid_params", _l("参数最多 %(n)d 个", n=MAX_PARAMS)))
    return params, problems


def format_params(params: Mapping[str, str]) -> str:
    """Write parameters back one a line, as the form shows them."""
    return "\n".join(f"{name} = {value}" for name, value in params.items())


def _unknown(field_name: str, text: str) -> list[Problem]:
    names = unknown_variables(text)
    if not names:
        return []
    return [Problem(field_name, "unknown_variable",
                    _l("未知变量：%(names)s。可用的变量：investor.name、investor.masked_phone、reward.amount、"
                       "reward.expires_on、reward.kind_label、campaign.name、unsubscribe_url", names="、".join(names)))]


def _too_long(field_name: str, text: str, most: int) -> list[Problem]:
    if len(text) <= most:
        return []
    return [Problem(field_name, "too_long", _l("最多 %(n)s 个字符", n=f"{most:,}"))]


def check(draft: TemplateDraft) -> list[Problem]:
    """Return every rule the draft breaks (empty when it may be saved)."""
    problems: list[Problem] = []
    if not draft.name.strip():
        problems.append(Problem("name", "required", _l("请填写模板名称")))
    problems += _too_long("name", draft.name, MAX_NAME)
    if draft.channel not in TEMPLATE_CHANNELS:
        problems.append(Problem("channel", "invalid", _l("渠道须为微信、短信或邮件")))
    if draft.message_class not in CLASS_LABELS:
        problems.append(Problem("message_class", "invalid", _l("类别须为服务通知或营销")))
    wechat_template = draft.channel == "wechat" and bool(draft.provider_template.strip())
    if not draft.body.strip() and not wechat_template:
        problems.append(Problem("body", "required", _l("请填写正文")))
    if draft.channel == "email" and not draft.subject.strip():
        problems.append(Problem("subject", "required", _l("邮件须有主题")))
    if wechat_template and not draft.params:
        problems.append(Problem("params", "required", _l("微信模板消息须填写模板数据（每行“字段名 = 内容”）")))
    problems += _too_long("subject", draft.subject, MAX_SUBJECT)
    problems += _too_long("body", draft.body, MAX_BODY)
    problems += _too_long("html", draft.html, MAX_HTML)
    problems += _too_long("provider_template", draft.provider_template, MAX_PROVIDER_TEMPLATE)
    for field_name, text in (("subject", draft.subject), ("body", draft.body), ("html", draft.html)):
        problems += _unknown(field_name, text)
        if name_transformed(text):  # the name is filled in at send time: only printed as it is
            problems.append(Problem(field_name, "name_transformed", NAME_TRANSFORMED))
    for name, value in draft.params.items():
        for problem in _unknown("params", value):
            problems.append(Problem("params", problem.code, _l("参数 %(name)s：%(message)s", name=name,
                                                               message=problem.message)))
        if name_transformed(value):
            problems.append(Problem("params", "name_transformed", _l("参数 %(name)s：%(message)s", name=name,
                                                                     message=NAME_TRANSFORMED)))
    if draft.message_class == "marketing" and draft.channel == "sms" and draft.body.strip() \
            and not has_opt_out(draft.body):
        problems.append(Problem("body", "sms_opt_out_missing",
                                _l("营销短信须含退订方式，如“回T退订”或“拒收请回复R”（运营商要求）")))
    if draft.message_class == "marketing" and wechat_template:
        problems.append(Problem("provider_template", "wechat_template_marketing",
                                _l("微信模板消息只能用于服务通知；营销内容请留空模板 ID，改用群发")))
    return problems


@dataclass(slots=True)
class Preview:
    """A template rendered with the sample investor: its parts, the SMS length, and any rendering error."""

    text: str = ""
    subject: str = ""
    html: str = ""
    params: dict[str, str] = field(default_factory=dict)
    sms: SmsLength | None = None
    sign_name: str = ""
    error: str | None = None


def preview(draft: TemplateDraft, *, sign_name: str = "") -> Preview:
    """Render a draft with the sample investor (no real person's data); SMS length counts the signature."""
    out = Preview(sign_name=sign_name)
    context = sample_context()
    try:
        out.text = render(draft.body, context)
        out.subject = render(draft.subject, context)
        out.html = render(draft.html, context, html=True) if draft.html else ""
        out.params = {name: render(value, context) for name, value in draft.params.items()}
    except (TemplateError, TypeError, ValueError, ArithmeticError) as exc:
        out.error = str(exc)
        return out
    if draft.channel == "sms":
        out.sms = sms_length(out.text, sign_name)
    return out


def content_of(draft: TemplateDraft, variables: Mapping[str, Any]) -> dict[str, Any]:
    """Return a template rendered with `variables` as an outbox message's content (raise on a template error).

    SMS: the text, and the provider's template code and parameters when it has them; email: subject, text
    and HTML; WeChat: a template message (template id and data) when it names one, else a mass-send text.
    """
    if draft.channel == "sms":
        content: dict[str, Any] = {"text": render(draft.body, variables)}
        if draft.provider_template.strip():
            content["template_code"] = draft.provider_template.strip()
            content["params"] = {name: render(value, variables) for name, value in draft.params.items()}
        return content
    if draft.channel == "email":
        content = {"subject": render(draft.subject, variables), "text": render(draft.body, variables)}
        if draft.html.strip():
            content["html"] = render(draft.html, variables, html=True)
        return content
    if draft.channel == "wechat":
        if draft.provider_template.strip():
            return {"wechat_kind": "template", "template_id": draft.provider_template.strip(),
                    "data": {name: render(value, variables) for name, value in draft.params.items()}}
        return {"wechat_kind": "mass", "text": render(draft.body, variables)}
    raise ValueError(f"no message content for channel {draft.channel!r}")


def usable_templates(*, session: Session) -> list[MessageTemplate]:
    """Return the templates people may send now (not archived), by channel and name."""
    return list(session.scalars(select(MessageTemplate).where(
        MessageTemplate.archived.is_(False), MessageTemplate.channel.in_(TEMPLATE_CHANNELS))
        .order_by(MessageTemplate.channel, MessageTemplate.name)))


def get_template(template_id: int, *, session: Session) -> MessageTemplate:
    """Return a template by id."""
    template = session.get(MessageTemplate, template_id)
    if template is None:
        raise NotFound(_l("没有这个模板"))
    return template


def _name_taken(name: str, *, session: Session, except_id: int | None = None) -> bool:
    query = select(MessageTemplate.id).where(MessageTemplate.name == name)
    if except_id is not None:
        query = query.where(MessageTemplate.id != except_id)
    return session.scalar(query) is not None


def _duplicate(name: str) -> Conflict:
    return Conflict(_l("已有同名模板“%(name)s”，请换一个名称", name=name), field="name")


def _values(draft: TemplateDraft) -> dict[str, Any]:
    return {"name": draft.name.strip(), "channel": draft.channel, "message_class": draft.message_class,
            "subject": draft.subject, "body": draft.body, "html": draft.html,
            "provider_template": draft.provider_template.strip(), "params": dict(draft.params)}


def create_template(draft: TemplateDraft, *, session: Session, now: datetime, by: int | None = None) -> MessageTemplate:
    """Save a new template after checking it (`TemplateInvalid`, or `Conflict` for a name in use)."""
    problems = check(draft)
    if problems:
        raise TemplateInvalid(problems)
    values = _values(draft)
    if _name_taken(values["name"], session=session):
        raise _duplicate(values["name"])
    template = MessageTemplate(**values, archived=False, updated_by=by, updated_at=now)
    try:
        with session.begin_nested():  # the unique name settles a race between two people saving at once
            session.add(template)
    except IntegrityError:
        raise _duplicate(values["name"]) from None
    record("message_template.created", session=session, target_type="message_template", target_id=template.id,
           details={"name": template.name, "channel": template.channel, "class": template.message_class})
    return template


def update_template(template: MessageTemplate, draft: TemplateDraft, *, session: Session, now: datetime,
                    by: int | None = None) -> MessageTemplate:
    """Change a template after checking it; the audit entry lists the fields that changed."""
    problems = check(draft)
    if problems:
        raise TemplateInvalid(problems)
    values = _values(draft)
    if _name_taken(values["name"], session=session, except_id=template.id):
        raise _duplicate(values["name"])
    changed = {key: [getattr(template, key), value] for key, value in values.items()
               if getattr(template, key) != value}
    if not changed:
        return template
    for key, value in values.items():
        setattr(template, key, value)
    template.updated_by, template.updated_at = by, now
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError:
        raise _duplicate(values["name"]) from None
    # Wording can be long: the audit keeps the short fields' values and only names the long ones.
    short = {"name", "channel", "message_class", "provider_template"}
    details = {"name": template.name,
               "changes": {k: v for k, v in changed.items() if k in short},
               "fields": sorted(k for k in changed if k not in short)}
    record("message_template.updated", session=session, target_type="message_template", target_id=template.id,
           details=details)
    return template


def set_archived(template: MessageTemplate, archived: bool, *, session: Session, now: datetime,
                 by: int | None = None) -> None:
    """Archive a template (hidden from new use, kept for history) or bring it back."""
    if template.archived == archived:
        return
    template.archived, template.updated_by, template.updated_at = archived, by, now
    session.flush()
    record("message_template.archived" if archived else "message_template.restored", session=session,
           target_type="message_template", target_id=template.id, details={"name": template.name})
