"""Message pages for staff (delivery log, health, settings, template library) and the messages API (spec §5)."""

from __future__ import annotations

import base64
import binascii
import re
from datetime import date, datetime
from typing import Any

from flask import Blueprint, Response, current_app, flash, jsonify, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user

from channels import queries, services
from channels import template_library as library
from channels.adapters.wechat import MASS_SENDS_PER_MONTH, mass_sends_left
from channels.models import (
    CHANNEL_LABELS,
    CLASS_LABELS,
    HOLD_LABELS,
    MESSAGE_CHANNELS,
    REASON_LABELS,
    RETRYABLE,
    STATUS_LABELS,
    STATUSES,
    OutboxMessage,
)
from channels.queries import MessageFilter
from channels.recipients import directory_of
from channels.settings import SETTINGS, mask_secret
from channels.settings import load as load_settings
from growth.audit.services import record
from growth.auth.permissions import Permission, require, role_has
from growth.db import mark_rollback, request_session, short_write
from growth.errors import DomainError, NotFound
from growth.exports import csv_response
from growth.inputs import ID_MAX, page_arg
from growth.timeutil import SHANGHAI, as_utc, utcnow

bp = Blueprint("channels", __name__)
api = Blueprint("channels_api", __name__, url_prefix="/api/v1")

PER_PAGE = 50
API_DEFAULT_LIMIT = 50
API_MAX_LIMIT = 500
MAX_RETRY_IDS = 500

SOURCE_LABELS = {"override": _l("页面覆盖"), "environment": _l("环境变量"), "default": _l("默认")}
STATUS_STYLES = {
    "queued": "secondary", "deferred": "warning", "sending": "info", "sent": "primary", "delivered": "success",
    "failed": "danger", "dead": "danger", "skipped_no_consent": "light", "capped": "warning", "unreachable": "dark",
}
# Channels whose messages a person reads (the platform webhook carries no personal wording).
PEOPLE_CHANNELS = ("wechat", "sms", "email")
SETTING_CHOICES: dict[str, list[tuple[str, Any]]] = {
    "sms_provider": [("console", _l("控制台（只记录，不真正发送）")), ("aliyun", _l("阿里云短信")),
                     ("tencent", _l("腾讯云短信"))],
}
for _channel in MESSAGE_CHANNELS:
    SETTING_CHOICES[f"{_channel}_paused"] = [("false", _l("否（正常发送）")), ("true", _l("是（暂停，消息暂缓）"))]


@bp.app_template_filter("message_status")
def message_status(status: str) -> str:
    """Return a message status's label (the code itself when unknown)."""
    label = STATUS_LABELS.get(status)
    return status if label is None else str(label)


def _may_see_pii() -> bool:
    return role_has(current_user.role, Permission.INVESTORS_PII)


def _error_text(text: str | None, code: str | None = None) -> str | None:
    """Return a message's error as this reader may see it: our own reasons in the reader's language, a
    provider's text with contact data hidden without investors.pii."""
    if code in REASON_LABELS:
        return str(REASON_LABELS[code])
    return text if _may_see_pii() else queries.redact_contacts(text)


def _environment() -> dict[str, str]:
    return current_app.config.get("CHANNEL_ENV") or {}


def _local(value: datetime | None, fmt: str = "%Y-%m-%d %H:%M:%S") -> str:
    return "" if value is None else as_utc(value).astimezone(SHANGHAI).strftime(fmt)


# --- the delivery log -------------------------------------------------------------------------------


def _read_filters(args: Any) -> tuple[MessageFilter, list[str]]:
    """Return the log's filters from the query string, and a message for each one that was refused (and dropped)."""
    errors: list[str] = []
    raw_campaign = (args.get("campaign_id") or "").strip()
    campaign_id = None
    if raw_campaign:
        if raw_campaign.isascii() and raw_campaign.isdigit() and int(raw_campaign) <= ID_MAX:
            campaign_id = int(raw_campaign)
        else:
            errors.append(_("活动 ID 须为正整数，已忽略。"))
    channel = args.get("channel") or None
    if channel not in CHANNEL_LABELS:
        channel = None
    status = args.get("status") or None
    if status not in STATUS_LABELS:
        status = None
    user_id = (args.get("user_id") or "").strip()[:200] or None
    days: dict[str, date | None] = {}
    for name in ("start", "end"):
        raw = (args.get(name) or "").strip()
        days[name] = None
        if raw:
            try:
                days[name] = date.fromisoformat(raw)
            except ValueError:
                errors.append(_("日期须写作 YYYY-MM-DD，已忽略：%(value)s", value=raw[:20]))
    start, end = days["start"], days["end"]
    if start and end and start > end:
        errors.append(_("开始日期晚于结束日期，已忽略日期范围。"))
        start = end = None
    return MessageFilter(campaign_id, channel, status, user_id, start, end), errors


@bp.route("/messages")
@require(Permission.MESSAGES_VIEW)
def index():  # type: ignore[no-untyped-def]
    filters, errors = _read_filters(request.args)
    page = page_arg()
    session = request_session()
    rows, total = queries.list_messages(filters, session=session, page=page, per_page=PER_PAGE)
    may_retry = role_has(current_user.role, Permission.MESSAGES_MANAGE)
    retryable = queries.count_retryable(filters, RETRYABLE, session=session) if may_retry and total else 0
    return render_template(
        "channels/index.html", rows=rows, total=total, page=page, per_page=PER_PAGE, filters=filters,
        filter_args=filters.as_args(), filter_errors=errors, channels=CHANNEL_LABELS, statuses=STATUS_LABELS,
        classes=CLASS_LABELS, holds=HOLD_LABELS, styles=STATUS_STYLES, retryable_statuses=RETRYABLE,
        retryable=retryable, may_retry=may_retry, error_text=_error_text,
    )


@bp.route("/messages/retry", methods=["POST"])
@require(Permission.MESSAGES_MANAGE)
def retry():  # type: ignore[no-untyped-def]
    filters, _errors = _read_filters(request.form)
    args: dict[str, Any] = dict(filters.as_args())
    back = url_for("channels.index", **args)
    session = request_session()
    if request.form.get("scope") == "all":
        count = services.retry_messages(session=session, now=utcnow(), filters=filters)
    else:
        ids = [int(v) for v in request.form.getlist("ids") if v.isascii() and v.isdigit() and int(v) <= ID_MAX]
        if not ids:
            flash(_("请先勾选要重试的消息。"), "warning")
            return redirect(back)
        if len(ids) > MAX_RETRY_IDS:
            flash(_("一次最多勾选 %(n)d 条；更多请用“重试全部符合条件的消息”。", n=MAX_RETRY_IDS), "warning")
            return redirect(back)
        count = services.retry_messages(session=session, now=utcnow(), ids=ids)
    if count:
        flash(_("已重新排队 %(n)s 条消息，将很快再次发送。", n=f"{count:,}"), "success")
    else:
        flash(_("没有可重试的消息（只有失败、重试用尽、超出频次、无法触达和未获同意的消息可以重试）。"), "warning")
    return redirect(back)


EXPORT_HEADER = ("id", "created_at", "campaign_id", "user_id", "channel", "class", "status", "status_label",
                 "attempts", "recipient", "provider", "error_code", "error", "sent_at", "delivered_at")
EXPORT_LIMIT = 100_000


@bp.route("/messages/export.csv")
@require(Permission.MESSAGES_VIEW)
def export():  # type: ignore[no-untyped-def]
    filters, _errors = _read_filters(request.args)
    session = request_session()
    rows: list[list[object]] = [list(EXPORT_HEADER)]
    m: OutboxMessage
    for m in session.scalars(queries.iter_messages(filters).limit(EXPORT_LIMIT)):
        rows.append([m.id, _local(m.created_at), m.campaign_id or "", m.user_id or "", m.channel, m.message_class,
                     m.status, message_status(m.status), m.attempts, m.recipient_masked or "", m.provider or "",
                     m.error_code or "", _error_text(m.error, m.error_code) or "", _local(m.sent_at),
                     _local(m.delivered_at)])
    with short_write() as audit:  # the list is read in the request's read transaction; the audit row is short
        record("messages.exported", session=audit, target_type="outbox_messages",
               details={"rows": len(rows) - 1, "filters": filters.as_args()})
    return csv_response(rows, "messages.csv")


@bp.route("/messages/<int:message_id>")
@require(Permission.MESSAGES_VIEW)
def detail(message_id: int):  # type: ignore[no-untyped-def]
    session = request_session()
    message = session.get(OutboxMessage, message_id)
    if message is None:
        raise _not_found()
    related = queries.related_messages(message, session=session)
    # Only a reader who may see personal data sees the body, with the investor's name where its slot is.
    content = queries.shown_content(message, session=session, directory=directory_of(current_app)) \
        if _may_see_pii() else {}
    investor_url = None
    if message.investor_id is not None and "investors.detail" in current_app.view_functions \
            and role_has(current_user.role, Permission.INVESTORS_VIEW):
        investor_url = url_for("investors.detail", investor_id=message.investor_id)
    return render_template(
        "channels/detail.html", m=message, related=related, content=content, show_content=_may_see_pii(),
        channels=CHANNEL_LABELS, classes=CLASS_LABELS, holds=HOLD_LABELS, styles=STATUS_STYLES,
        retryable=message.status in RETRYABLE, may_retry=role_has(current_user.role, Permission.MESSAGES_MANAGE),
        error_text=_error_text, investor_url=investor_url, params=_content_params(content),
    )


def _content_params(content: dict[str, Any]) -> list[tuple[str, str]]:
    params = content.get("params") or content.get("data") or {}
    if not isinstance(params, dict):
        return []
    out = []
    for key, value in params.items():
        if isinstance(value, dict):  # WeChat template data: {"value": "...", "color": ...}
            value = value.get("value", "")
        out.append((str(key), str(value)))
    return out


def _not_found() -> DomainError:
    return NotFound(_("没有这条消息。"))


@bp.route("/messages/<int:message_id>/retry", methods=["POST"])
@require(Permission.MESSAGES_MANAGE)
def retry_one(message_id: int):  # type: ignore[no-untyped-def]
    count = services.retry_messages(session=request_session(), now=utcnow(), ids=[message_id])
    if count:
        flash(_("已重新排队，将很快再次发送。"), "success")
    else:
        flash(_("这条消息当前的状态不能重试。"), "warning")
    return redirect(url_for("channels.detail", message_id=message_id))


# --- channel health ---------------------------------------------------------------------------------


def _age_text(seconds: float) -> str:
    minutes = int(seconds // 60)
    if minutes < 1:
        return _("不到 1 分钟")
    if minutes < 120:
        return _("%(n)d 分钟", n=minutes)
    hours = minutes // 60
    if hours < 48:
        return _("%(n)d 小时", n=hours)
    return _("%(n)d 天", n=hours // 24)


@bp.route("/messages/health")
@require(Permission.MESSAGES_VIEW)
def health():  # type: ignore[no-untyped-def]
    session = request_session()
    now = utcnow()
    config = load_settings(session=session, environment=_environment())
    numbers = queries.channel_health(session=session, now=now)
    jobs = queries.mass_jobs_this_month(session=session, now=now)
    quota = mass_sends_left([as_utc(j.sent_at) for j in jobs], now)
    cards = []
    for channel in MESSAGE_CHANNELS:
        h = numbers[channel]
        age = h.oldest_waiting_age(now)
        cards.append({
            "channel": channel, "label": CHANNEL_LABELS[channel], "provider": config.provider(channel),
            "paused": config.paused(channel), "h": h, "rate_day": h.delivery_rate("day"),
            "rate_week": h.delivery_rate("week"), "age": None if age is None else _age_text(age.total_seconds()),
            "last_error": h.last_error, "last_error_detail": (_error_text(h.last_error.detail, h.last_error.code)
                                  if h.last_error else None),
        })
    return render_template("channels/health.html", cards=cards, statuses=STATUS_LABELS, styles=STATUS_STYLES,
                           jobs=jobs, quota=quota, quota_total=MASS_SENDS_PER_MONTH, now=now)


# --- channel settings -------------------------------------------------------------------------------


def _settings_page(values: dict[str, str] | None = None, errors: dict[str, str] | None = None,
                   status: int = 200) -> tuple[str, int]:
    config = load_settings(session=request_session(), environment=_environment())
    rows = []
    for s in SETTINGS:
        value = config[s.key]
        rows.append({
            "s": s, "shown": mask_secret(value) if s.secret else value,
            "source": config.sources[s.key], "source_label": SOURCE_LABELS[config.sources[s.key]],
            "input": (values or {}).get(s.key, value) if s.editable and not s.secret else None,
            "error": (errors or {}).get(s.key), "choices": SETTING_CHOICES.get(s.key),
        })
    return render_template("channels/settings.html", rows=rows, errors=errors or {}), status


@bp.route("/messages/settings", methods=["GET", "POST"])
@require(Permission.CHANNELS_SETTINGS)
def settings_page():  # type: ignore[no-untyped-def]
    if request.method == "GET":
        return _settings_page()
    editable = [s for s in SETTINGS if s.editable and not s.secret]
    values = {s.key: request.form[s.key] for s in editable if s.key in request.form}
    try:
        changes = services.save_settings(values, session=request_session(), environment=_environment(),
                                         now=utcnow(), by=current_user.id)
    except services.SettingsInvalid as err:
        mark_rollback()
        flash(str(err.message), "danger")
        return _settings_page(values, err.errors, 422)
    if changes:
        flash(_("已保存 %(n)d 项设置，几秒内生效，无需重启。", n=len(changes)), "success")
    else:
        flash(_("没有修改任何设置。"), "info")
    return redirect(url_for("channels.settings_page"))


@bp.route("/messages/settings/<key>/clear", methods=["POST"])
@require(Permission.CHANNELS_SETTINGS)
def clear_setting(key: str):  # type: ignore[no-untyped-def]
    if services.clear_setting(key, session=request_session(), environment=_environment(), now=utcnow()):
        flash(_("已恢复为环境变量（或默认值），几秒内生效。"), "success")
    else:
        flash(_("这项设置没有页面覆盖。"), "info")
    return redirect(url_for("channels.settings_page"))


# --- the template library ---------------------------------------------------------------------------


def _sign_name() -> str:
    return load_settings(session=request_session(), environment=_environment())["sms_sign_name"]


@bp.route("/messages/templates")
@require(Permission.MESSAGES_VIEW)
def templates():  # type: ignore[no-untyped-def]
    archived = request.args.get("archived") == "1"
    channel = request.args.get("channel") or None
    if channel not in library.TEMPLATE_CHANNELS:
        channel = None
    rows = queries.list_templates(session=request_session(), archived=archived, channel=channel)
    return render_template("channels/templates.html", rows=rows, archived=archived, channel=channel or "",
                           channels={c: CHANNEL_LABELS[c] for c in library.TEMPLATE_CHANNELS}, classes=CLASS_LABELS)


def _draft_from_form() -> tuple[library.TemplateDraft, list[library.Problem], str]:
    form = request.form
    params_text = form.get("params", "")
    params, problems = library.parse_params(params_text)
    draft = library.TemplateDraft(
        name=form.get("name", "").strip(), channel=form.get("channel", ""),
        message_class=form.get("message_class", ""), body=form.get("body", "").replace("\r\n", "\n"),
        subject=form.get("subject", "").strip(), html=form.get("html", "").replace("\r\n", "\n"),
        provider_template=form.get("provider_template", "").strip(), params=params)
    return draft, problems, params_text


def _problems_by_field(problems: list[library.Problem]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for p in problems:
        out.setdefault(p.field, []).append(str(p.message))
    return out


def _template_form(draft: library.TemplateDraft, params_text: str, *, template: Any = None,
                   problems: list[library.Problem] | None = None, show_preview: bool = False,
                   status: int = 200) -> tuple[str, int]:
    preview = library.preview(draft, sign_name=_sign_name()) if show_preview else None
    return render_template(
        "channels/template_form.html", draft=draft, params_text=params_text, template=template,
        problems=_problems_by_field(problems or []), codes=sorted({p.code for p in problems or []}),
        preview=preview, channels={c: CHANNEL_LABELS[c] for c in library.TEMPLATE_CHANNELS}, classes=CLASS_LABELS,
    ), status


def _submit_template(template: Any = None):  # type: ignore[no-untyped-def]
    draft, problems, params_text = _draft_from_form()
    if request.form.get("action") == "preview":
        return _template_form(draft, params_text, template=template, problems=problems + library.check(draft),
                              show_preview=True)
    if problems:
        return _template_form(draft, params_text, template=template, problems=problems + library.check(draft),
                              status=422)
    session = request_session()
    try:
        if template is None:
            template = library.create_template(draft, session=session, now=utcnow(), by=current_user.id)
            flash(_("模板已创建：%(name)s", name=template.name), "success")
        else:
            library.update_template(template, draft, session=session, now=utcnow(), by=current_user.id)
            flash(_("模板已保存。"), "success")
    except library.TemplateInvalid as err:
        mark_rollback()
        return _template_form(draft, params_text, template=template, problems=err.problems, status=422)
    except DomainError as err:
        mark_rollback()
        problem = library.Problem(err.field or "name", "duplicate_name", err.message)
        return _template_form(draft, params_text, template=template, problems=[problem], status=err.status)
    return redirect(url_for("channels.template_detail", template_id=template.id))


@bp.route("/messages/templates/new", methods=["GET", "POST"])
@require(Permission.MESSAGES_MANAGE)
def new_template():  # type: ignore[no-untyped-def]
    if request.method == "POST":
        return _submit_template()
    channel = request.args.get("channel") or "sms"
    if channel not in library.TEMPLATE_CHANNELS:
        channel = "sms"
    return _template_form(library.TemplateDraft("", channel, "marketing"), "")


@bp.route("/messages/templates/<int:template_id>")
@require(Permission.MESSAGES_VIEW)
def template_detail(template_id: int):  # type: ignore[no-untyped-def]
    template = library.get_template(template_id, session=request_session())
    draft = library.TemplateDraft.of(template)
    return render_template(
        "channels/template.html", template=template, draft=draft, params_text=library.format_params(draft.params),
        preview=library.preview(draft, sign_name=_sign_name()), problems=library.check(draft),
        channels=CHANNEL_LABELS, classes=CLASS_LABELS,
    )


@bp.route("/messages/templates/<int:template_id>/edit", methods=["GET", "POST"])
@require(Permission.MESSAGES_MANAGE)
def edit_template(template_id: int):  # type: ignore[no-untyped-def]
    template = library.get_template(template_id, session=request_session())
    if request.method == "POST":
        return _submit_template(template)
    draft = library.TemplateDraft.of(template)
    return _template_form(draft, library.format_params(draft.params), template=template)


@bp.route("/messages/templates/<int:template_id>/archive", methods=["POST"])
@require(Permission.MESSAGES_MANAGE)
def archive_template(template_id: int):  # type: ignore[no-untyped-def]
    template = library.get_template(template_id, session=request_session())
    archived = request.form.get("archived", "1") == "1"
    library.set_archived(template, archived, session=request_session(), now=utcnow(), by=current_user.id)
    flash(_("模板已归档。") if archived else _("模板已恢复。"), "success")
    return redirect(url_for("channels.template_detail", template_id=template_id))


# --- the messages API (spec §5) ---------------------------------------------------------------------

_CURSOR = re.compile(r"^[A-Za-z0-9_-]{1,40}$")
_CURSOR_PREFIX = "m1:"


def encode_cursor(last_id: int) -> str:
    """Return the opaque cursor of the page after the message `last_id` (keyset on id, descending)."""
    return base64.urlsafe_b64encode(f"{_CURSOR_PREFIX}{last_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int | None:
    """Return the id a cursor stands for, None when it is not one of ours."""
    if not _CURSOR.match(cursor):
        return None
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    if not text.startswith(_CURSOR_PREFIX):
        return None
    number = text[len(_CURSOR_PREFIX):]
    if not number.isdigit() or not 0 < int(number) <= 2**63:
        return None
    return int(number)


def _api_error(status: int, path: str, code: str, message: str) -> Response:
    response = jsonify({"error": message, "errors": [{"path": path, "code": code, "message": message}]})
    response.status_code = status
    return response


def _rfc3339(value: datetime | None) -> str | None:
    return None if value is None else as_utc(value).isoformat()


def message_json(m: OutboxMessage, *, may_see_pii: bool) -> dict[str, Any]:
    """Return a message as the API shows it (spec §5, plus a few extra fields)."""
    return {
        "id": m.id, "campaign_id": m.campaign_id, "user_id": m.user_id, "channel": m.channel,
        "class": m.message_class, "status": m.status, "attempts": m.attempts,
        "error": m.error if may_see_pii else queries.redact_contacts(m.error),
        "created_at": _rfc3339(m.created_at), "sent_at": _rfc3339(m.sent_at),
        "error_code": m.error_code, "delivered_at": _rfc3339(m.delivered_at), "recipient": m.recipient_masked,
    }


@api.route("/messages")
@require(Permission.MESSAGES_VIEW)
def messages_api():  # type: ignore[no-untyped-def]
    args = request.args
    campaign_id = None
    raw = args.get("campaign_id", "").strip()
    if raw:
        if not (raw.isascii() and raw.isdigit() and int(raw) <= ID_MAX):
            return _api_error(400, "campaign_id", "invalid", "campaign_id must be a positive integer")
        campaign_id = int(raw)
    user_id = args.get("user_id", "").strip() or None
    if user_id is not None and len(user_id) > 200:
        return _api_error(400, "user_id", "invalid", "user_id is at most 200 characters")
    status = args.get("status", "").strip() or None
    if status is not None and status not in STATUSES:
        return _api_error(422, "status", "unknown_status",
                          f"unknown status {status!r}; one of: {', '.join(STATUSES)}")
    raw_limit = args.get("limit", "").strip()
    limit = API_DEFAULT_LIMIT
    if raw_limit:
        if not (raw_limit.isascii() and raw_limit.isdigit()) or not 1 <= int(raw_limit) <= API_MAX_LIMIT:
            return _api_error(400, "limit", "invalid", f"limit must be an integer from 1 to {API_MAX_LIMIT}")
        limit = int(raw_limit)
    before_id = None
    raw_cursor = args.get("cursor", "")
    if raw_cursor:
        before_id = decode_cursor(raw_cursor)
        if before_id is None:
            return _api_error(400, "cursor", "invalid", "cursor is not a cursor this API returned")
    rows = queries.messages_after(session=request_session(), campaign_id=campaign_id, user_id=user_id,
                                  status=status, before_id=before_id, limit=limit)
    more = len(rows) > limit
    rows = rows[:limit]
    next_url = None
    if more:
        params: dict[str, Any] = {k: v for k, v in (("campaign_id", campaign_id), ("user_id", user_id),
                                                    ("status", status)) if v is not None}
        if raw_limit:
            params["limit"] = limit
        next_url = url_for("channels_api.messages_api", **params, cursor=encode_cursor(rows[-1].id))
    pii = _may_see_pii()
    return jsonify({"messages": [message_json(m, may_see_pii=pii) for m in rows], "next": next_url})
