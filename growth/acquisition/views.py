"""Pages for acquisition channels, tracking links, QR codes and costs, and the public short link /t/<code>."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any

from flask import Blueprint, Response, current_app, flash, jsonify, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from wtforms import DateField, SelectField, StringField, TextAreaField
from wtforms.validators import DataRequired, Length, Optional, ValidationError

from channels import qrcodes
from growth.acquisition import rules, services
from growth.acquisition.models import CHANNEL_KINDS, AcquisitionChannel, kind_label
from growth.audit.services import record
from growth.auth.permissions import Permission, public, require, role_has
from growth.db import mark_rollback, request_session, short_write, writes
from growth.errors import DomainError, Invalid, NotFound, Problem
from growth.exports import csv_response
from growth.inputs import page_arg
from growth.money import fen_to_api
from growth.request_size import UPLOAD_MAX_BODY, max_body
from growth.timeutil import local_date, utcnow

bp = Blueprint("acquisition", __name__)
api = Blueprint("acquisition_api", __name__, url_prefix="/api/v1")

CLICKS_PER_PAGE = 25
COSTS_PER_PAGE = 31
MAX_UPLOAD_BYTES = 2 * 1024 * 1024

_REQUIRED = _l("必填")


def _kind_choices() -> list[tuple[str, object]]:
    return list(CHANNEL_KINDS.items())


def _channel_code_check(_form: FlaskForm, field: StringField) -> None:
    error = rules.channel_code_error(rules.normalize_channel_code(field.data or ""))
    if error:
        raise ValidationError(str(error))


def _amount_check(_form: FlaskForm, field: StringField) -> None:
    try:
        rules.parse_cost_amount(field.data or "")
    except rules.RuleError as err:
        raise ValidationError(str(err.message)) from None


class ChannelEditForm(FlaskForm):
    name = StringField(_l("渠道名称"), validators=[DataRequired(message=_REQUIRED), Length(max=100)])
    kind = SelectField(_l("类型"), choices=_kind_choices, default="other")
    owner = StringField(_l("负责人"), validators=[Length(max=100)])
    notes = TextAreaField(_l("备注"), validators=[Length(max=2000)], render_kw={"rows": 2})


class ChannelForm(ChannelEditForm):
    code = StringField(_l("渠道代码"), validators=[DataRequired(message=_REQUIRED), _channel_code_check],
                       description=_l("小写字母、数字和下划线，2–64 位，创建后不可修改；平台注册事件中的 channel_code"),
                       render_kw={"placeholder": _l("如 baidu_sem")})


class LinkForm(FlaskForm):
    name = StringField(_l("链接名称"), validators=[DataRequired(message=_REQUIRED), Length(max=100)],
                       render_kw={"placeholder": _l("如：双十一新手红包落地页")})
    landing_url = StringField(_l("落地页地址"), validators=[DataRequired(message=_REQUIRED),
                                                       Length(max=rules.MAX_LANDING_URL)],
                              render_kw={"placeholder": _l("如 https://www.example.com/newbie")})
    code = StringField(_l("短链代码（可选）"),
                       validators=[Optional(), Length(min=3, max=32, message=rules.LINK_CODE_RULE)],
                       description=_l("留空则自动生成；创建后不可修改"))
    utm_source = StringField("utm_source", validators=[Length(max=100)])
    utm_medium = StringField("utm_medium", validators=[Length(max=100)])
    utm_campaign = StringField("utm_campaign", validators=[Length(max=100)])
    utm_content = StringField("utm_content", validators=[Length(max=100)])
    utm_term = StringField("utm_term", validators=[Length(max=100)])


class CostForm(FlaskForm):
    day = DateField(_l("日期"), validators=[DataRequired(message=_l("请填写日期（YYYY-MM-DD）"))])
    amount = StringField(_l("金额（元）"), validators=[DataRequired(message=_REQUIRED), _amount_check],
                         description=_l("以元为单位，最多两位小数，例如 1234.56"),
                         render_kw={"inputmode": "decimal"})
    note = StringField(_l("备注"), validators=[Length(max=rules.MAX_NOTE)])


class ImportForm(FlaskForm):
    file = FileField(_l("成本 CSV 文件"), validators=[FileRequired(message=_l("请选择文件"))])


def _apply_error(form: FlaskForm, err: DomainError) -> None:
    """Show a refused change next to its field (or as a flash) and undo anything it flushed."""
    mark_rollback()
    target = form._fields.get(err.field) if err.field else None
    if target is not None:
        target.errors = [*target.errors, str(err.message)]
    else:
        flash(str(err.message), "danger")


def _by() -> str:
    return current_user.email


def _base_url() -> str:
    return current_app.config["PUBLIC_BASE_URL"]


def _list_filters() -> tuple[bool | None, str | None, str]:
    status = request.args.get("status", "")
    active = {"active": True, "inactive": False}.get(status)
    kind = request.args.get("kind", "") or None
    if kind not in CHANNEL_KINDS:
        kind = None
    return active, kind, request.args.get("q", "").strip()


def _period() -> tuple[rules.Period, str | None]:
    """Return the period the URL selects, or the default one and why the URL's was refused."""
    today = local_date(utcnow())
    args = request.args
    try:
        return rules.resolve_period(args.get("period"), args.get("start"), args.get("end"), today=today), None
    except rules.RuleError as err:
        return rules.default_period(today), str(err.message)


def _period_args() -> dict[str, Any]:
    """Return the query arguments of the selected period, to carry it through links and redirects."""
    return _period()[0].url_args()


def _channel_url(channel_id: int, anchor: str | None = None) -> str:
    return url_for("acquisition.channel", channel_id=channel_id, _anchor=anchor, **_period_args())


def _period_context(period: rules.Period, error: str | None) -> dict[str, object]:
    return {"period": period, "period_error": error, "periods": rules.PERIODS, "period_args": period.url_args()}


# ---------------------------------------------------------------- channels


def _render_list(form: ChannelForm, status: int = 200):  # type: ignore[no-untyped-def]
    active, kind, q = _list_filters()
    period, error = _period()
    rows = services.list_channels(session=request_session(), period=period, active=active, kind=kind, q=q)
    filtered = active is not None or kind is not None or bool(q)
    return render_template(
        "acquisition/channels.html", rows=rows, totals=services.total_stats(rows), form=form,
        import_form=ImportForm(), kinds=CHANNEL_KINDS, kind_label=kind_label, status=request.args.get("status", ""),
        kind=kind or "", q=q, filtered=filtered, **_period_context(period, error),
    ), status


@bp.route("/acquisition/channels")
@require(Permission.ACQUISITION_VIEW)
def channels():  # type: ignore[no-untyped-def]
    return _render_list(ChannelForm(formdata=None))


@bp.route("/acquisition/")
@require(Permission.ACQUISITION_VIEW)
def index():  # type: ignore[no-untyped-def]
    args: dict[str, Any] = request.args.to_dict()
    return redirect(url_for("acquisition.channels", **args))


@bp.route("/acquisition/channels/new", methods=["POST"])
@require(Permission.ACQUISITION_MANAGE)
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
    return redirect(_channel_url(channel.id))


def _csv_yuan(fen: int | None) -> str:
    return "" if fen is None else fen_to_api(fen)


@bp.route("/acquisition/channels/export.csv")
@require(Permission.ACQUISITION_VIEW)
def export_channels():  # type: ignore[no-untyped-def]
    active, kind, q = _list_filters()
    period, _error = _period()
    rows = services.list_channels(session=request_session(), period=period, active=active, kind=kind, q=q)
    out: list[list[object]] = [["code", "name", "kind", "active", "links", "active_links", "clicks", "registrations",
                                "first_investors", "first_investment_yuan", "cost_yuan",
                                "cost_per_registration_yuan", "cost_per_first_investor_yuan"]]
    out.extend([r.channel.code, r.channel.name, r.channel.kind, int(r.channel.active), r.links, r.active_links,
                r.clicks, r.registrations, r.first_investors, fen_to_api(r.first_investment_fen),
                fen_to_api(r.cost_fen), _csv_yuan(r.cost_per_registration_fen),
                _csv_yuan(r.cost_per_first_investor_fen)]
               for r in rows)
    return csv_response(out, f"channels-{period.start.isoformat()}-{period.end.isoformat()}.csv")


def _render_detail(channel: AcquisitionChannel, *, edit_form: ChannelEditForm | None = None,
                   cost_form: CostForm | None = None, status: int = 200) -> tuple[str, int]:
    session = request_session()
    period, error = _period()
    clicks_page = page_arg("clicks_page")
    costs_page = page_arg("costs_page")
    clicks, clicks_total = services.list_clicks(channel, session=session, period=period, page=clicks_page,
                                                per_page=CLICKS_PER_PAGE)
    costs, costs_total = services.list_costs(channel, session=session, period=period, page=costs_page,
                                             per_page=COSTS_PER_PAGE)
    if edit_form is None:
        edit_form = ChannelEditForm(formdata=None, obj=channel)
    if cost_form is None:
        cost_form = CostForm(formdata=None, day=local_date(utcnow()))
    return render_template(
        "acquisition/channel.html", channel=channel,
        stats=services.channel_stats(channel, session=session, period=period),
        links=services.list_links(channel, session=session, period=period), base_url=_base_url(),
        clicks=clicks, clicks_total=clicks_total, clicks_page=clicks_page, clicks_per_page=CLICKS_PER_PAGE,
        costs=costs, costs_total=costs_total, costs_page=costs_page, costs_per_page=COSTS_PER_PAGE,
        edit_form=edit_form, cost_form=cost_form, import_form=ImportForm(), kind_label=kind_label,
        show_ip=role_has(current_user.role, Permission.INVESTORS_PII), mask_ip=rules.mask_ip,
        wechat=qrcodes.scene_summary(channel.code, session=session, app=current_app),
        **_period_context(period, error),
    ), status


@bp.route("/acquisition/channels/<int:channel_id>")
@require(Permission.ACQUISITION_VIEW)
def channel(channel_id: int):  # type: ignore[no-untyped-def]
    return _render_detail(services.get_channel(channel_id, session=request_session()))


@bp.route("/acquisition/channels/<int:channel_id>/edit", methods=["POST"])
@require(Permission.ACQUISITION_MANAGE)
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
    return redirect(_channel_url(channel.id))


@bp.route("/acquisition/channels/<int:channel_id>/active", methods=["POST"])
@require(Permission.ACQUISITION_MANAGE)
def toggle_channel(channel_id: int):  # type: ignore[no-untyped-def]
    channel = services.get_channel(channel_id, session=request_session())
    active = request.form.get("active") == "1"
    services.set_channel_active(channel, active, session=request_session(), by=_by())
    flash(_("渠道已启用。") if active else _("渠道已停用：其链接仍会跳转，但不再记录点击。"), "success")
    return redirect(_channel_url(channel.id))


# ---------------------------------------------------------------- links


def _utm(form: LinkForm) -> dict[str, str]:
    return {key: form[key].data or "" for key in rules.UTM_FIELDS}


@bp.route("/acquisition/channels/<int:channel_id>/links/new", methods=["GET", "POST"])
@require(Permission.ACQUISITION_MANAGE)
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
            return redirect(_channel_url(channel.id))
    elif request.method == "POST":
        status = 400
    return render_template("acquisition/link_form.html", form=form, channel=channel, link=None,
                           period_args=_period_args()), status


@bp.route("/acquisition/links/<int:link_id>/edit", methods=["GET", "POST"])
@require(Permission.ACQUISITION_MANAGE)
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
            return redirect(_channel_url(channel.id))
    elif request.method == "POST":
        status = 400
    return render_template("acquisition/link_form.html", form=form, channel=channel, link=link,
                           short_url=services.link_short_url(link, _base_url()), period_args=_period_args()), status


@bp.route("/acquisition/links/<int:link_id>/active", methods=["POST"])
@require(Permission.ACQUISITION_MANAGE)
def toggle_link(link_id: int):  # type: ignore[no-untyped-def]
    link = services.get_link(link_id, session=request_session())
    active = request.form.get("active") == "1"
    services.set_link_active(link, active, session=request_session(), by=_by())
    flash(_("链接已启用。") if active else _("链接已停用：访问仍会跳转到落地页，但不再记录点击。"), "success")
    return redirect(_channel_url(link.channel_id))


def _qr_response(body: bytes, mimetype: str, filename: str) -> Response:
    response = Response(body, mimetype=mimetype)
    if request.args.get("download"):
        response.headers["Content-Disposition"] = f"attachment; filename={filename}"
    response.headers["Cache-Control"] = "private, max-age=300"
    return response


@bp.route("/acquisition/links/<int:link_id>/qr.png")
@require(Permission.ACQUISITION_VIEW)
def link_qr_png(link_id: int):  # type: ignore[no-untyped-def]
    link = services.get_link(link_id, session=request_session())
    scale = min(max(request.args.get("scale", 10, type=int), 2), 40)
    return _qr_response(services.qr_png(link, base_url=_base_url(), scale=scale), "image/png", f"qr-{link.code}.png")


@bp.route("/acquisition/links/<int:link_id>/qr.svg")
@require(Permission.ACQUISITION_VIEW)
def link_qr_svg(link_id: int):  # type: ignore[no-untyped-def]
    link = services.get_link(link_id, session=request_session())
    return _qr_response(services.qr_svg(link, base_url=_base_url()), "image/svg+xml", f"qr-{link.code}.svg")


# ---------------------------------------------------------------- WeChat parametric QR (channels.qrcodes)


@bp.route("/acquisition/channels/<int:channel_id>/wechat-qr", methods=["POST"])
@require(Permission.ACQUISITION_MANAGE)
def create_wechat_qr(channel_id: int):  # type: ignore[no-untyped-def]
    channel = services.get_channel(channel_id, session=request_session())
    _qr, changed = qrcodes.create_scene_qr(channel.code, session=request_session(), app=current_app, now=utcnow(),
                                           by=_by())
    record("channel.wechat_qr_created", session=request_session(), target_type="channel", target_id=channel.id,
           details={"scene": channel.code, "ticket_changed": changed})
    flash(_("微信带参二维码已生成：关注或扫码的用户将归入渠道 %(code)s。", code=channel.code), "success")
    return redirect(_channel_url(channel.id, "wechat-qr"))


@bp.route("/acquisition/wechat-qr/<scene>.png")
@require(Permission.ACQUISITION_VIEW)
def wechat_qr_png(scene: str):  # type: ignore[no-untyped-def]
    qr = qrcodes.scene_qr(scene, session=request_session())
    if qr is None:
        raise NotFound(_("该渠道还没有微信带参二维码。"))
    scale = min(max(request.args.get("scale", 8, type=int), 2), 40)
    return _qr_response(qrcodes.qr_png(qr.url, scale=scale), "image/png", f"wechat-qr-{qr.scene}.png")


# The public short link printed on posters and QR codes: its URL never changes.
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


@bp.route("/acquisition/channels/<int:channel_id>/costs", methods=["POST"])
@require(Permission.ACQUISITION_COSTS_MANAGE)
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
    return redirect(_channel_url(channel.id, "costs"))


@bp.route("/acquisition/costs/<int:cost_id>/delete", methods=["POST"])
@require(Permission.ACQUISITION_COSTS_MANAGE)
def delete_cost(cost_id: int):  # type: ignore[no-untyped-def]
    channel = services.delete_cost(cost_id, session=request_session(), by=_by())
    flash(_("成本记录已删除。"), "success")
    return redirect(_channel_url(channel.id, "costs"))


@bp.route("/acquisition/costs/import", methods=["POST"])
@require(Permission.ACQUISITION_COSTS_MANAGE)
@max_body(UPLOAD_MAX_BODY)
def import_costs():  # type: ignore[no-untyped-def]
    back_id = request.form.get("channel_id", type=int)
    back = _channel_url(back_id) if back_id else url_for("acquisition.channels", **_period_args())
    form = ImportForm()
    if not form.validate_on_submit():
        for message in form.file.errors:
            flash(str(message), "danger")
        return redirect(back)
    upload = form.file.data
    data = upload.read(MAX_UPLOAD_BYTES + 1)
    if len(data) > MAX_UPLOAD_BYTES:
        flash(_("文件过大（最大 2 MB）"), "danger")
        return redirect(back)
    result = services.import_costs(data, filename=upload.filename or "", session=request_session(), now=utcnow(),
                                   by=_by())
    return render_template("acquisition/import_result.html", result=result, filename=upload.filename or "",
                           back=back)


class MalformedCosts(Invalid):
    """A body that is not `{"costs": [...]}` at all (400)."""

    status = 400


@api.post("/acquisition/costs")
@require(Permission.ACQUISITION_COSTS_MANAGE)
def push_costs():  # type: ignore[no-untyped-def]
    """Store daily costs pushed by an ad platform's export (campaigns-api.md §7); refused ones by index."""
    body = request.get_json(silent=True)
    if not isinstance(body, dict) or not isinstance(body.get("costs"), list):
        raise MalformedCosts([Problem("costs", "malformed",
                                      _l('请求体须是 JSON 对象 {"costs": [...]}（Content-Type: application/json）'))])
    items = body["costs"]
    if len(items) > services.MAX_API_COSTS:
        raise Invalid([Problem("costs", "too_many", _l("每次最多提交 %(n)d 条成本", n=services.MAX_API_COSTS))])
    result = services.save_costs(items, session=request_session(), now=utcnow(), by=_by())
    return jsonify({"saved": result.saved, "rejected": [
        {"index": index, "errors": [{"path": p.path, "code": p.code, "message": str(p.message)} for p in problems]}
        for index, problems in result.rejected]})


@bp.route("/acquisition/costs/template.csv")
@require(Permission.ACQUISITION_VIEW)
def cost_template():  # type: ignore[no-untyped-def]
    today = local_date(utcnow())
    sample = [(today, "baidu_sem", 123456, "示例，导入前请删除")]
    return csv_response(rules.cost_csv_rows(sample), "costs-template.csv")


@bp.route("/acquisition/costs.csv")
@require(Permission.ACQUISITION_VIEW)
def export_costs():  # type: ignore[no-untyped-def]
    start = _date_arg("start")
    end = _date_arg("end")
    with short_write() as audit:  # reads in the request's read transaction; the audit row is a short write
        rows = services.export_costs(session=request_session(), start=start, end=end, by=_by(), audit_session=audit)
    return csv_response(rows, "costs.csv")


@bp.route("/acquisition/channels/<int:channel_id>/costs.csv")
@require(Permission.ACQUISITION_VIEW)
def export_channel_costs(channel_id: int):  # type: ignore[no-untyped-def]
    channel = services.get_channel(channel_id, session=request_session())
    start, end = _date_arg("start"), _date_arg("end")
    with short_write() as audit:
        rows = services.export_costs(session=request_session(), channel=channel, start=start, end=end, by=_by(),
                                     audit_session=audit)
    return csv_response(rows, f"costs-{channel.code}.csv")


def _date_arg(name: str) -> date | None:
    value = request.args.get(name, "").strip()
    if not value:
        return None
    try:
        return rules.parse_cost_date(value)
    except rules.RuleError as err:
        raise DomainError(err.message, field=name) from None


# ---------------------------------------------------------------- old addresses

# Before acquisition had its own words its pages lived under /channels, /links and /costs (the words of the
# message channels in channels/). Old bookmarks and forms still open in a browser keep working: each old
# address answers 308 (permanent, method and body kept, so a POST stays a POST) to the new one, under the
# same permission as the page it leads to. /t/<code> never moved.
LEGACY_ROUTES = (
    ("/channels", channels, ["GET"]),
    ("/channels/new", create_channel, ["POST"]),
    ("/channels/export.csv", export_channels, ["GET"]),
    ("/channels/<int:channel_id>", channel, ["GET"]),
    ("/channels/<int:channel_id>/edit", edit_channel, ["POST"]),
    ("/channels/<int:channel_id>/active", toggle_channel, ["POST"]),
    ("/channels/<int:channel_id>/links/new", new_link, ["GET", "POST"]),
    ("/links/<int:link_id>/edit", edit_link, ["GET", "POST"]),
    ("/links/<int:link_id>/active", toggle_link, ["POST"]),
    ("/links/<int:link_id>/qr.png", link_qr_png, ["GET"]),
    ("/links/<int:link_id>/qr.svg", link_qr_svg, ["GET"]),
    ("/channels/<int:channel_id>/costs", set_cost, ["POST"]),
    ("/costs/<int:cost_id>/delete", delete_cost, ["POST"]),
    ("/channels/costs/import", import_costs, ["POST"]),
    ("/channels/costs/template.csv", cost_template, ["GET"]),
    ("/channels/costs.csv", export_costs, ["GET"]),
    ("/channels/<int:channel_id>/costs.csv", export_channel_costs, ["GET"]),
)


def _moved_to(view: Callable[..., object]) -> Callable[..., Response]:
    endpoint = f"acquisition.{view.__name__}"

    def moved(**values: Any) -> Response:
        target = url_for(endpoint, **values)
        if request.query_string:
            target += "?" + request.query_string.decode("latin-1")
        return redirect(target, 308)  # type: ignore[return-value]

    moved.__name__ = f"moved_{view.__name__}"
    moved.required_permission = view.required_permission  # type: ignore[attr-defined]
    return moved


for _rule, _view, _methods in LEGACY_ROUTES:
    bp.add_url_rule(_rule, endpoint=f"moved_{_view.__name__}", view_func=_moved_to(_view), methods=_methods)
