"""Pages for acquisition channels, tracking links, QR codes and costs, and the public short link /t/<code>."""

from __future__ import annotations

from datetime import date

from flask import Blueprint, Response, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from wtforms import DateField, SelectField, StringField, TextAreaField
from wtforms.validators import DataRequired, Length, Optional, ValidationError

from growth.acquisition import rules, services
from growth.acquisition.models import AcquisitionChannel
from growth.auth.permissions import Permission, public, require, role_has
from growth.db import mark_rollback, request_session, writes
from growth.errors import DomainError, NotFound
from growth.exports import csv_response
from growth.money import fen_to_api
from growth.request_size import UPLOAD_MAX_BODY, max_body
from growth.timeutil import local_date, utcnow

bp = Blueprint("acquisition", __name__)

KIND_LABELS = {
    "sem": _l("搜索引擎SEM"),
    "seo": _l("SEO"),
    "vertical": _l("垂直门户(网贷之家/网贷天眼)"),
    "wechat": _l("微信"),
    "weibo": _l("微博"),
    "qq_group": _l("QQ群"),
    "forum": _l("论坛/贴吧"),
    "offline": _l("线下活动"),
    "partner": _l("合作渠道"),
    "referral": _l("邀请好友"),
    "organic": _l("自然流量"),
    "other": _l("其他"),
}
CLICKS_PER_PAGE = 25
COSTS_PER_PAGE = 31
MAX_UPLOAD_BYTES = 2 * 1024 * 1024

_REQUIRED = _l("必填 / Required")


def _kind_choices() -> list[tuple[str, object]]:
    return list(KIND_LABELS.items())


def _channel_code_check(_form: FlaskForm, field: StringField) -> None:
    error = rules.channel_code_error(rules.normalize_channel_code(field.data or ""))
    if error:
        raise ValidationError(error)


def _amount_check(_form: FlaskForm, field: StringField) -> None:
    try:
        rules.parse_cost_amount(field.data or "")
    except rules.RuleError as err:
        raise ValidationError(str(err)) from None


class ChannelEditForm(FlaskForm):
    name = StringField(_l("渠道名称"), validators=[DataRequired(message=_REQUIRED), Length(max=100)])
    kind = SelectField(_l("类型"), choices=_kind_choices, default="other")
    owner = StringField(_l("负责人"), validators=[Length(max=100)])
    notes = TextAreaField(_l("备注"), validators=[Length(max=2000)], render_kw={"rows": 2})


class ChannelForm(ChannelEditForm):
    code = StringField(_l("渠道代码"), validators=[DataRequired(message=_REQUIRED), _channel_code_check],
                       description=_l("小写字母、数字和下划线，2–64 位，创建后不可修改；平台注册事件中的 channel_code"),
                       render_kw={"placeholder": "baidu_sem"})


class LinkForm(FlaskForm):
    name = StringField(_l("链接名称"), validators=[DataRequired(message=_REQUIRED), Length(max=100)],
                       render_kw={"placeholder": _l("如：双十一新手红包落地页")})
    landing_url = StringField(_l("落地页地址"), validators=[DataRequired(message=_REQUIRED),
                                                       Length(max=rules.MAX_LANDING_URL)],
                              render_kw={"placeholder": "https://www.example.com/newbie"})
    code = StringField(_l("短链代码（可选）"),
                       validators=[Optional(), Length(min=3, max=32, message=_l(
                           "短链代码须为 3–32 位字母、数字、_ 或 - / "
                           "Short code must be 3–32 letters, digits, _ or -"))],
                       description=_l("留空则自动生成；创建后不可修改"))
    utm_source = StringField("utm_source", validators=[Length(max=100)])
    utm_medium = StringField("utm_medium", validators=[Length(max=100)])
    utm_campaign = StringField("utm_campaign", validators=[Length(max=100)])
    utm_content = StringField("utm_content", validators=[Length(max=100)])
    utm_term = StringField("utm_term", validators=[Length(max=100)])


class CostForm(FlaskForm):
    day = DateField(_l("日期"), validators=[DataRequired(message=_l("请填写日期 YYYY-MM-DD / Date is required"))])
    amount = StringField(_l("金额（元）"), validators=[DataRequired(message=_REQUIRED), _amount_check],
                         render_kw={"placeholder": "1234.56", "inputmode": "decimal"})
    note = StringField(_l("备注"), validators=[Length(max=rules.MAX_NOTE)])


class ImportForm(FlaskForm):
    file = FileField(_l("成本 CSV 文件"), validators=[FileRequired(message=_l("请选择文件 / Choose a file"))])


def _apply_error(form: FlaskForm, err: DomainError) -> None:
    """Show a refused change next to its field (or as a flash) and undo anything it flushed."""
    mark_rollback()
    target = form._fields.get(err.field) if err.field else None
    if target is not None:
        target.errors = [*target.errors, err.message]
    else:
        flash(err.message, "danger")


def _by() -> str:
    return current_user.email


def _base_url() -> str:
    return current_app.config["PUBLIC_BASE_URL"]


def _list_filters() -> tuple[bool | None, str | None, str]:
    status = request.args.get("status", "")
    active = {"active": True, "inactive": False}.get(status)
    kind = request.args.get("kind", "") or None
    if kind not in KIND_LABELS:
        kind = None
    return active, kind, request.args.get("q", "").strip()


# ---------------------------------------------------------------- channels


def _render_list(form: ChannelForm, status: int = 200):  # type: ignore[no-untyped-def]
    active, kind, q = _list_filters()
    session = request_session()
    now = utcnow()
    rows = services.list_channels(session=session, now=now, active=active, kind=kind, q=q)
    _since, first_day, last_day = services.stats_window(now)
    totals = {
        "links": sum(r.links for r in rows), "clicks_30d": sum(r.clicks_30d for r in rows),
        "registrations": sum(r.registrations for r in rows), "cost_30d_fen": sum(r.cost_30d_fen for r in rows),
    }
    filtered = active is not None or kind is not None or bool(q)
    return render_template(
        "acquisition/channels.html", rows=rows, totals=totals, form=form, import_form=ImportForm(),
        kind_labels=KIND_LABELS, status=request.args.get("status", ""), kind=kind or "", q=q, filtered=filtered,
        first_day=first_day, last_day=last_day,
    ), status


@bp.route("/channels")
@require(Permission.CHANNELS_VIEW)
def channels():  # type: ignore[no-untyped-def]
    return _render_list(ChannelForm(formdata=None))


@bp.route("/channels/new", methods=["POST"])
@require(Permission.CHANNELS_MANAGE)
def create_channel():  # type: ignore[no-untyped-def]
    form = ChannelForm()
    if not form.validate_on_submit():
        return _render_list(form, 400)
    try:
        channel = services.create_channel(
            code=form.code.data or "", name=form.name.data or "", kind=form.kind.data or "other",
            owner=form.owner.data or "", notes=form.notes.data or "", session=request_session(), by=_by(),
        )
    except DomainError as err:
        _apply_error(form, err)
        return _render_list(form, err.status)
    flash(_("渠道已创建：%(name)s", name=channel.name), "success")
    return redirect(url_for("acquisition.channel", channel_id=channel.id))


@bp.route("/channels/export.csv")
@require(Permission.CHANNELS_VIEW)
@writes
def export_channels():  # type: ignore[no-untyped-def]
    active, kind, q = _list_filters()
    rows = services.list_channels(session=request_session(), now=utcnow(), active=active, kind=kind, q=q)
    out: list[list[object]] = [["code", "name", "kind", "active", "links", "active_links", "clicks_30d",
                                "registrations", "cost_30d_yuan"]]
    out.extend([r.channel.code, r.channel.name, r.channel.kind, int(r.channel.active), r.links, r.active_links,
                r.clicks_30d, r.registrations, fen_to_api(r.cost_30d_fen)]
               for r in rows)
    return csv_response(out, "channels.csv")


def _render_detail(channel: AcquisitionChannel, *, edit_form: ChannelEditForm | None = None,
                   cost_form: CostForm | None = None, status: int = 200):  # type: ignore[no-untyped-def]
    session = request_session()
    now = utcnow()
    clicks_page = max(request.args.get("clicks_page", 1, type=int), 1)
    costs_page = max(request.args.get("costs_page", 1, type=int), 1)
    clicks, clicks_total = services.list_clicks(channel, session=session, page=clicks_page, per_page=CLICKS_PER_PAGE)
    costs, costs_total = services.list_costs(channel, session=session, page=costs_page, per_page=COSTS_PER_PAGE)
    if edit_form is None:
        edit_form = ChannelEditForm(formdata=None, obj=channel)
    if cost_form is None:
        cost_form = CostForm(formdata=None, day=local_date(now))
    return render_template(
        "acquisition/channel.html", channel=channel, stats=services.channel_stats(channel, session=session, now=now),
        links=services.list_links(channel, session=session, now=now), base_url=_base_url(),
        clicks=clicks, clicks_total=clicks_total, clicks_page=clicks_page, clicks_per_page=CLICKS_PER_PAGE,
        costs=costs, costs_total=costs_total, costs_page=costs_page, costs_per_page=COSTS_PER_PAGE,
        edit_form=edit_form, cost_form=cost_form, import_form=ImportForm(), kind_labels=KIND_LABELS,
        show_ip=role_has(current_user.role, Permission.INVESTORS_PII), mask_ip=rules.mask_ip,
    ), status


@bp.route("/channels/<int:channel_id>")
@require(Permission.CHANNELS_VIEW)
def channel(channel_id: int):  # type: ignore[no-untyped-def]
    return _render_detail(services.get_channel(channel_id, session=request_session()))


@bp.route("/channels/<int:channel_id>/edit", methods=["POST"])
@require(Permission.CHANNELS_MANAGE)
def edit_channel(channel_id: int):  # type: ignore[no-untyped-def]
    channel = services.get_channel(channel_id, session=request_session())
    form = ChannelEditForm()
    if not form.validate_on_submit():
        return _render_detail(channel, edit_form=form, status=400)
    try:
        services.update_channel(channel, name=form.name.data or "", kind=form.kind.data or "other",
                                owner=form.owner.data or "", notes=form.notes.data or "",
                                session=request_session(), by=_by())
    except DomainError as err:
        _apply_error(form, err)
        return _render_detail(services.get_channel(channel_id, session=request_session()), edit_form=form,
                              status=err.status)
    flash(_("渠道已保存。"), "success")
    return redirect(url_for("acquisition.channel", channel_id=channel.id))


@bp.route("/channels/<int:channel_id>/active", methods=["POST"])
@require(Permission.CHANNELS_MANAGE)
def toggle_channel(channel_id: int):  # type: ignore[no-untyped-def]
    channel = services.get_channel(channel_id, session=request_session())
    active = request.form.get("active") == "1"
    services.set_channel_active(channel, active, session=request_session(), by=_by())
    flash(_("渠道已启用。") if active else _("渠道已停用：其链接仍会跳转，但不再记录点击。"), "success")
    return redirect(url_for("acquisition.channel", channel_id=channel.id))


# ---------------------------------------------------------------- links


def _utm(form: LinkForm) -> dict[str, str]:
    return {key: form[key].data or "" for key in rules.UTM_FIELDS}


@bp.route("/channels/<int:channel_id>/links/new", methods=["GET", "POST"])
@require(Permission.CHANNELS_MANAGE)
def new_link(channel_id: int):  # type: ignore[no-untyped-def]
    channel = services.get_channel(channel_id, session=request_session())
    form = LinkForm()
    if request.method == "GET" and not form.utm_source.data:
        form.utm_source.data = channel.code
    status = 200
    if form.validate_on_submit():
        try:
            link = services.create_link(channel, name=form.name.data or "", landing_url=form.landing_url.data or "",
                                        utm=_utm(form), code=form.code.data or None, session=request_session(),
                                        by=_by())
        except DomainError as err:
            _apply_error(form, err)
            status = err.status
        else:
            flash(_("推广链接已创建：%(url)s", url=services.link_short_url(link, _base_url())), "success")
            return redirect(url_for("acquisition.channel", channel_id=channel.id))
    elif request.method == "POST":
        status = 400
    return render_template("acquisition/link_form.html", form=form, channel=channel, link=None), status


@bp.route("/links/<int:link_id>/edit", methods=["GET", "POST"])
@require(Permission.CHANNELS_MANAGE)
def edit_link(link_id: int):  # type: ignore[no-untyped-def]
    session = request_session()
    link = services.get_link(link_id, session=session)
    channel = services.get_channel(link.channel_id, session=session)
    form = LinkForm(obj=link)
    status = 200
    if form.validate_on_submit():
        try:
            services.update_link(link, name=form.name.data or "", landing_url=form.landing_url.data or "",
                                 utm=_utm(form), session=session, by=_by())
        except DomainError as err:
            _apply_error(form, err)
            status = err.status
        else:
            flash(_("推广链接已保存。"), "success")
            return redirect(url_for("acquisition.channel", channel_id=channel.id))
    elif request.method == "POST":
        status = 400
    return render_template("acquisition/link_form.html", form=form, channel=channel, link=link,
                           short_url=services.link_short_url(link, _base_url())), status


@bp.route("/links/<int:link_id>/active", methods=["POST"])
@require(Permission.CHANNELS_MANAGE)
def toggle_link(link_id: int):  # type: ignore[no-untyped-def]
    link = services.get_link(link_id, session=request_session())
    active = request.form.get("active") == "1"
    services.set_link_active(link, active, session=request_session(), by=_by())
    flash(_("链接已启用。") if active else _("链接已停用：访问仍会跳转到落地页，但不再记录点击。"), "success")
    return redirect(url_for("acquisition.channel", channel_id=link.channel_id))


def _qr_response(body: bytes, mimetype: str, filename: str) -> Response:
    response = Response(body, mimetype=mimetype)
    if request.args.get("download"):
        response.headers["Content-Disposition"] = f"attachment; filename={filename}"
    response.headers["Cache-Control"] = "private, max-age=300"
    return response


@bp.route("/links/<int:link_id>/qr.png")
@require(Permission.CHANNELS_VIEW)
def link_qr_png(link_id: int):  # type: ignore[no-untyped-def]
    link = services.get_link(link_id, session=request_session())
    scale = min(max(request.args.get("scale", 10, type=int), 2), 40)
    return _qr_response(services.qr_png(link, base_url=_base_url(), scale=scale), "image/png", f"qr-{link.code}.png")


@bp.route("/links/<int:link_id>/qr.svg")
@require(Permission.CHANNELS_VIEW)
def link_qr_svg(link_id: int):  # type: ignore[no-untyped-def]
    link = services.get_link(link_id, session=request_session())
    return _qr_response(services.qr_svg(link, base_url=_base_url()), "image/svg+xml", f"qr-{link.code}.svg")


@bp.route("/t/<code>")
@public
@writes  # logs the click: SQLite's write lock is taken up front, so no visit fails mid-transaction
def track(code: str):  # type: ignore[no-untyped-def]
    try:
        _click, target = services.record_click(
            code, ip=request.remote_addr, user_agent=request.user_agent.string, referrer=request.referrer,
            session=request_session(), now=utcnow(),
        )
    except NotFound:
        return render_template("acquisition/link_not_found.html"), 404
    response = redirect(target, 302)
    # Every visit must reach us to get its own click_id; keep short links out of search results.
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Robots-Tag"] = "noindex"
    return response


# ---------------------------------------------------------------- costs


@bp.route("/channels/<int:channel_id>/costs", methods=["POST"])
@require(Permission.COSTS_MANAGE)
def set_cost(channel_id: int):  # type: ignore[no-untyped-def]
    channel = services.get_channel(channel_id, session=request_session())
    form = CostForm()
    if not form.validate_on_submit() or form.day.data is None:
        return _render_detail(channel, cost_form=form, status=400)
    try:
        services.set_cost(channel, day=form.day.data, amount_fen=rules.parse_cost_amount(form.amount.data or ""),
                          note=form.note.data or "", session=request_session(), now=utcnow(), by=_by())
    except DomainError as err:
        _apply_error(form, err)
        return _render_detail(services.get_channel(channel_id, session=request_session()), cost_form=form,
                              status=err.status)
    flash(_("已记录 %(day)s 的成本。", day=form.day.data.isoformat()), "success")
    return redirect(url_for("acquisition.channel", channel_id=channel.id, _anchor="costs"))


@bp.route("/costs/<int:cost_id>/delete", methods=["POST"])
@require(Permission.COSTS_MANAGE)
def delete_cost(cost_id: int):  # type: ignore[no-untyped-def]
    channel = services.delete_cost(cost_id, session=request_session(), by=_by())
    flash(_("成本记录已删除。"), "success")
    return redirect(url_for("acquisition.channel", channel_id=channel.id, _anchor="costs"))


@bp.route("/channels/costs/import", methods=["POST"])
@require(Permission.COSTS_MANAGE)
@max_body(UPLOAD_MAX_BODY)
def import_costs():  # type: ignore[no-untyped-def]
    back_id = request.form.get("channel_id", type=int)
    back = url_for("acquisition.channel", channel_id=back_id) if back_id else url_for("acquisition.channels")
    form = ImportForm()
    if not form.validate_on_submit():
        for message in form.file.errors:
            flash(str(message), "danger")
        return redirect(back)
    upload = form.file.data
    data = upload.read(MAX_UPLOAD_BYTES + 1)
    if len(data) > MAX_UPLOAD_BYTES:
        flash(_("文件过大（最大 2 MB） / The file is too large (at most 2 MB)"), "danger")
        return redirect(back)
    result = services.import_costs(data, filename=upload.filename or "", session=request_session(), now=utcnow(),
                                   by=_by())
    return render_template("acquisition/import_result.html", result=result, filename=upload.filename or "",
                           back=back)


@bp.route("/channels/costs/template.csv")
@require(Permission.CHANNELS_VIEW)
def cost_template():  # type: ignore[no-untyped-def]
    today = local_date(utcnow())
    sample = [(today, "baidu_sem", 123456, "示例，导入前请删除")]
    return csv_response(rules.cost_csv_rows(sample), "costs-template.csv")


@bp.route("/channels/costs.csv")
@require(Permission.CHANNELS_VIEW)
@writes
def export_costs():  # type: ignore[no-untyped-def]
    start = _date_arg("start")
    end = _date_arg("end")
    rows = services.export_costs(session=request_session(), start=start, end=end, by=_by())
    return csv_response(rows, "costs.csv")


@bp.route("/channels/<int:channel_id>/costs.csv")
@require(Permission.CHANNELS_VIEW)
@writes
def export_channel_costs(channel_id: int):  # type: ignore[no-untyped-def]
    channel = services.get_channel(channel_id, session=request_session())
    rows = services.export_costs(session=request_session(), channel=channel, by=_by())
    return csv_response(rows, f"costs-{channel.code}.csv")


def _date_arg(name: str) -> date | None:
    value = request.args.get(name, "").strip()
    if not value:
        return None
    try:
        return rules.parse_cost_date(value)
    except rules.RuleError as err:
        raise DomainError(str(err), field=name) from None
