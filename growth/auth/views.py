"""Sign-in, sign-out, language, API tokens and staff administration."""

from __future__ import annotations

import math
from datetime import timedelta
from urllib.parse import urlsplit

from flask import Blueprint, current_app, flash, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_user, logout_user
from flask_wtf import FlaskForm
from wtforms import EmailField, PasswordField, SelectField, StringField
from wtforms.validators import DataRequired, Email, EqualTo, Length

from growth.auth import services
from growth.auth.permissions import ROLE_LABELS, Permission, Role, public, require
from growth.db import request_session
from growth.errors import DomainError
from growth.timeutil import utcnow

bp = Blueprint("auth", __name__)

class LoginForm(FlaskForm):
    email = EmailField(_l("邮箱"), validators=[DataRequired(), Length(max=254)])
    password = PasswordField(_l("密码"), validators=[DataRequired(), Length(max=200)])


TOKEN_LIFETIMES = (
    ("", _l("永不过期（直到吊销）")),
    ("30", _l("30 天")),
    ("90", _l("90 天")),
    ("180", _l("180 天")),
    ("365", _l("365 天")),
)


class TokenForm(FlaskForm):
    name = StringField(_l("令牌名称"), validators=[DataRequired(), Length(max=100)])
    expires_days = SelectField(_l("有效期"), choices=TOKEN_LIFETIMES, default="")


class PasswordForm(FlaskForm):
    current_password = PasswordField(_l("当前密码"), validators=[DataRequired(), Length(max=200)])
    new_password = PasswordField(_l("新密码"), validators=[DataRequired(), Length(min=services.MIN_PASSWORD, max=200)])
    confirm = PasswordField(_l("再次输入新密码"), validators=[
        DataRequired(), EqualTo("new_password", message=_l("两次输入的新密码不一致。"))])


class UserForm(FlaskForm):
    email = EmailField(_l("邮箱"), validators=[DataRequired(), Email(check_deliverability=False), Length(max=254)])
    name = StringField(_l("姓名"), validators=[Length(max=100)])
    role = SelectField(_l("角色"), choices=[(r.value, label) for r, label in ROLE_LABELS.items()])
    password = PasswordField(_l("初始密码"), validators=[DataRequired(), Length(min=10, max=200)])


class RoleForm(FlaskForm):
    role = SelectField(_l("角色"), choices=[(r.value, label) for r, label in ROLE_LABELS.items()])


def _safe_next(target: str | None) -> str:
    """Only follow a local path after sign-in (no open redirect)."""
    # Browsers read "/\\evil.example" as "//evil.example" and drop control characters, so refuse both.
    if (
        target and target.startswith("/") and not target.startswith("//") and "\\" not in target
        and not any(ord(c) < 32 or ord(c) == 127 for c in target) and not urlsplit(target).netloc
    ):
        return target
    return url_for("home.index")


@bp.route("/login", methods=["GET", "POST"])
@public
def login():  # type: ignore[no-untyped-def]
    if current_user.is_authenticated:
        return redirect(url_for("home.index"))
    form = LoginForm()
    if form.validate_on_submit():
        cfg = current_app.config
        result = services.sign_in(
            form.email.data or "", form.password.data or "", ip=request.remote_addr or "?",
            session=request_session(), now=utcnow(),
            max_failures=cfg["LOGIN_MAX_FAILURES"], window=cfg["LOGIN_WINDOW"],
            account_max_failures=cfg["LOGIN_ACCOUNT_MAX_FAILURES"],
        )
        if result.user is not None:
            locale = session.get("locale")
            session.clear()  # a fresh session at sign-in: nothing from before carries over
            if locale:
                session["locale"] = locale
            login_user(result.user)
            session["_seen"] = int(utcnow().timestamp())
            return redirect(_safe_next(request.args.get("next")))
        if result.retry_after is not None:
            seconds = max(1, math.ceil(result.retry_after.total_seconds()))
            flash(_("尝试次数过多，请 %(n)d 分钟后再试。", n=math.ceil(seconds / 60)), "danger")
            return render_template("auth/login.html", form=form), 429, {"Retry-After": str(seconds)}
        flash(_("邮箱或密码不正确。"), "danger")
        return render_template("auth/login.html", form=form), 200
    return render_template("auth/login.html", form=form)


@bp.route("/logout", methods=["POST"])
@require(Permission.HOME)
def logout():  # type: ignore[no-untyped-def]
    from growth.audit.services import record

    record("auth.logout", session=request_session())
    # Cookie sessions live in the browser: bumping the version makes a copied cookie useless after sign-out.
    current_user.session_version += 1
    locale = session.get("locale")
    logout_user()
    session.clear()
    if locale:
        session["locale"] = locale
    flash(_("您已安全退出。"), "info")
    return redirect(url_for("auth.login"))


@bp.route("/lang/<code>")
@public
def set_language(code: str):  # type: ignore[no-untyped-def]
    if code in current_app.config["LANGUAGES"]:
        session["locale"] = code  # kept in the cookie only: a GET never writes the database
    return redirect(_safe_next(request.args.get("next")))


@bp.route("/account/tokens", methods=["GET", "POST"])
@require(Permission.TOKENS_OWN)
def tokens():  # type: ignore[no-untyped-def]
    form = TokenForm()
    new_token = None
    if form.validate_on_submit():
        days = int(form.expires_days.data) if form.expires_days.data else None
        _token, new_token = services.create_token(
            current_user, form.name.data or "", session=request_session(), now=utcnow(),
            expires_in=timedelta(days=days) if days else None,
        )
        flash(_("令牌已创建。它只显示这一次，请立即复制保存。"), "success")
        form = TokenForm(formdata=None)  # an empty form for the next token, not this one's name again
    return render_template(
        "auth/tokens.html", form=form, new_token=new_token, now=utcnow(),
        tokens=services.list_tokens(session=request_session(), user=current_user),
    )


@bp.route("/account/password", methods=["GET", "POST"])
@require(Permission.HOME)
def change_password():  # type: ignore[no-untyped-def]
    form = PasswordForm()
    if form.validate_on_submit():
        try:
            services.change_password(current_user, form.current_password.data or "", form.new_password.data or "",
                                     session=request_session())
        except DomainError as err:
            getattr(form, err.field or "new_password").errors.append(err.message)
            return render_template("auth/password.html", form=form), 400
        login_user(current_user._get_current_object())  # this session continues under the new version
        flash(_("密码已修改，您在其他设备上的登录已退出。"), "success")
        return redirect(url_for("home.index"))
    return render_template("auth/password.html", form=form), 400 if form.errors else 200


@bp.route("/account/tokens/<int:token_id>/revoke", methods=["POST"])
@require(Permission.TOKENS_OWN)
def revoke_token(token_id: int):  # type: ignore[no-untyped-def]
    owner = None if current_user.role == Role.ADMIN else current_user
    services.revoke_token(token_id, session=request_session(), owner=owner)
    flash(_("令牌已吊销。"), "success")
    return redirect(request.referrer or url_for("auth.tokens"))


@bp.route("/admin/users", methods=["GET", "POST"])
@require(Permission.USERS_MANAGE)
def users():  # type: ignore[no-untyped-def]
    form = UserForm()
    if form.validate_on_submit():
        services.create_user(
            form.email.data or "", role=form.role.data or "", password=form.password.data or "",
            name=form.name.data or "", session=request_session(),
        )
        flash(_("账号已创建。"), "success")
        return redirect(url_for("auth.users"))
    return _render_users(form)


def _render_users(form: UserForm, *, reset: tuple[str, str] | None = None):  # type: ignore[no-untyped-def]
    return render_template(
        "auth/users.html", form=form, users=services.list_users(session=request_session()),
        role_form=RoleForm(), role_labels=ROLE_LABELS, reset=reset, now=utcnow(),
        tokens=services.list_tokens(session=request_session()),
    )


@bp.route("/admin/users/<int:user_id>/role", methods=["POST"])
@require(Permission.USERS_MANAGE)
def change_role(user_id: int):  # type: ignore[no-untyped-def]
    form = RoleForm()
    if form.validate_on_submit():
        user = services.get_user(user_id, session=request_session())
        services.change_role(user, form.role.data or "", session=request_session(), by=current_user.email)
        flash(_("角色已更新：%(email)s", email=user.email), "success")
    return redirect(url_for("auth.users"))


@bp.route("/admin/users/<int:user_id>/active", methods=["POST"])
@require(Permission.USERS_MANAGE)
def toggle_active(user_id: int):  # type: ignore[no-untyped-def]
    user = services.get_user(user_id, session=request_session())
    if user.id == current_user.id:
        flash(_("不能停用自己的账号。"), "danger")
    else:
        services.set_active(user, not user.active, session=request_session())
        flash(_("账号已更新：%(email)s", email=user.email), "success")
    return redirect(url_for("auth.users"))


@bp.route("/admin/users/<int:user_id>/reset-password", methods=["POST"])
@require(Permission.USERS_MANAGE)
def reset_password(user_id: int):  # type: ignore[no-untyped-def]
    user = services.get_user(user_id, session=request_session())
    if user.id == current_user.id:
        flash(_("请在账号菜单中修改自己的密码。"), "danger")
        return redirect(url_for("auth.users"))
    temporary = services.reset_password(user, session=request_session())
    # Shown in this response only (never flashed into the cookie); the user must change it at sign-in.
    return _render_users(UserForm(formdata=None), reset=(user.email, temporary))
