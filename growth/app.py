"""The composition root: the one place that builds the app and wires every package."""

from __future__ import annotations

import base64
import os
import secrets
from pathlib import Path
from typing import Any

from flask import Flask, current_app, has_request_context, request, session, url_for
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from werkzeug.middleware.proxy_fix import ProxyFix

from growth import db as dbmod
from growth.config import Config
from growth.errors import register_error_handlers
from growth.extensions import babel, bootstrap, csrf, login_manager, talisman

ROOT = Path(__file__).resolve().parent.parent


def _nav() -> list[tuple[Any, str, Any, Any]]:
    from growth.auth.permissions import Permission as P

    return [
        (P.FUNNEL_VIEW, "dashboards.funnel_page", _l("转化漏斗"), _l("注册到复投的各步转化")),
        (P.CHANNELS_VIEW, "acquisition.channels", _l("渠道"), _l("推广渠道、链接与成本")),
        (P.INVESTORS_VIEW, "investors.index", _l("投资人"), _l("搜索投资人，查看里程碑与投资")),
        (P.EVENTS_VIEW, "events.index", _l("平台事件"), _l("事件日志与处理进度")),
        (P.USERS_MANAGE, "auth.users", _l("员工账号"), _l("账号、角色与令牌")),
        (P.AUDIT_VIEW, "audit.index", _l("审计日志"), _l("谁在何时做了什么")),
        (P.TOKENS_OWN, "events_api.api_docs", _l("API 文档"), _l("事件接口与漏斗接口说明")),
    ]


NAV = _nav()


def _secret_key(app: Flask) -> str:
    """Return the configured secret key, or one generated once and kept in the instance folder."""
    if app.config.get("SECRET_KEY"):
        return app.config["SECRET_KEY"]
    path = Path(app.instance_path) / "secret_key"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(48))
        path.chmod(0o600)
    return path.read_text().strip()


def _webhook_secret(app: Flask) -> str:
    """Return the configured webhook secret(s), or one generated once into the instance folder."""
    if app.config.get("WEBHOOK_SECRET"):
        return app.config["WEBHOOK_SECRET"]
    path = Path(app.instance_path) / "webhook_secret"
    if not path.exists():
        path.write_text("whsec_" + base64.b64encode(secrets.token_bytes(24)).decode())
        path.chmod(0o600)
    return path.read_text().strip()


def _select_locale() -> str:
    if not has_request_context():  # CLI commands and background jobs translate too
        return current_app.config["BABEL_DEFAULT_LOCALE"]
    return session.get("locale") or current_app.config["BABEL_DEFAULT_LOCALE"]


def create_app(config: dict[str, Any] | type | None = None) -> Flask:
    """Build the Flask app: config, database, extensions, blueprints, CLI."""
    app = Flask(
        "growth",
        template_folder=str(ROOT / "templates"),
        static_folder=str(Path(__file__).parent / "static"),
        instance_path=os.environ.get("GROWTH_INSTANCE_PATH") or str(ROOT / "instance"),
    )
    app.config.update(Config.from_env())
    if isinstance(config, type):
        app.config.from_object(config)
    elif config:
        app.config.update(config)
    Path(app.instance_path).mkdir(parents=True, exist_ok=True)
    app.config["SECRET_KEY"] = _secret_key(app)
    app.config["WEBHOOK_SECRET"] = _webhook_secret(app)
    url = app.config.get("DATABASE_URL") or f"sqlite:///{Path(app.instance_path) / 'growth.db'}"
    app.config["DATABASE_URL"] = url

    if app.config["PROXY_COUNT"]:
        n = int(app.config["PROXY_COUNT"])
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n, x_host=n)  # type: ignore[method-assign]
    dbmod.init_app(app, url)
    _register_projections(app)
    _init_extensions(app)
    _register_blueprints(app)
    register_error_handlers(app)
    _register_template_helpers(app)
    _register_background_work(app)
    return app


def _init_extensions(app: Flask) -> None:
    from growth.security import CSP, init_security

    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    login_manager.session_protection = "strong"
    login_manager.login_message = None
    csrf.init_app(app)
    babel.init_app(app, locale_selector=_select_locale,
                   default_translation_directories=str(Path(__file__).parent / "translations"))
    bootstrap.init_app(app)
    talisman.init_app(
        app,
        force_https=False,  # TLS ends at the intranet proxy; the embedded default is plain loopback HTTP
        strict_transport_security=False,
        session_cookie_secure=app.config["SESSION_COOKIE_SECURE"],
        content_security_policy=CSP,
        frame_options="DENY",
        referrer_policy="strict-origin-when-cross-origin",
    )
    init_security(app)


def _register_blueprints(app: Flask) -> None:
    from dashboards.views import api as dashboards_api
    from dashboards.views import bp as dashboards_bp
    from growth.acquisition.views import bp as acquisition_bp
    from growth.audit.views import bp as audit_bp
    from growth.auth.views import bp as auth_bp
    from growth.events.views import api as events_api
    from growth.events.views import bp as events_bp
    from growth.home.views import bp as home_bp
    from growth.investors.views import bp as investors_bp

    for bp in (home_bp, auth_bp, audit_bp, events_bp, investors_bp, acquisition_bp):
        app.register_blueprint(bp)
    app.register_blueprint(events_api)
    app.register_blueprint(dashboards_api)
    app.register_blueprint(dashboards_bp)
    csrf.exempt(events_api)  # signed by the platform; no browser session involved


def _register_projections(app: Flask) -> None:
    """Register the event processor's projections, in the order it runs them (see docs/architecture.md)."""
    from channels.projection import ConsentProjection
    from growth import signals
    from growth.acquisition.projection import AttributionProjection
    from growth.investors.projection import InvestorsProjection
    from growth.projections import EXTENSION, Projections
    from growth.referrals.projection import ReferralsProjection

    projections = Projections()
    projections.register(InvestorsProjection)  # first: loads and creates the investor rows the others share
    projections.register(ReferralsProjection)
    projections.register(AttributionProjection)
    projections.register(ConsentProjection.configured(changed=signals.consent_changed))
    app.extensions[EXTENSION] = projections


def _register_background_work(app: Flask) -> None:
    from growth.background import register_worker
    from growth.events.processor import run_processor

    if not app.config["BACKGROUND_WORK"]:
        return
    register_worker(app, "events-processor", run_processor)


def _register_template_helpers(app: Flask) -> None:
    from growth.auth.permissions import Permission, role_has
    from growth.money import format_count, format_rate, format_yuan
    from growth.timeutil import SHANGHAI, as_utc

    def can(permission: str) -> bool:
        return bool(current_user.is_authenticated and role_has(current_user.role, Permission(permission)))

    def local_time(value: Any, fmt: str = "%Y-%m-%d %H:%M") -> str:
        return "" if value is None else as_utc(value).astimezone(SHANGHAI).strftime(fmt)

    def nav_items() -> list[dict[str, str]]:
        if not current_user.is_authenticated:
            return []
        return [
            {"url": url_for(endpoint), "label": str(label), "hint": str(hint), "prefix": url_for(endpoint)}
            for permission, endpoint, label, hint in NAV
            if endpoint in app.view_functions and role_has(current_user.role, permission)
        ]

    def role_label(role: str) -> str:
        from growth.auth.views import ROLE_LABELS

        return str(ROLE_LABELS.get(role, role))

    app.jinja_env.globals.update(can=can, nav_items=nav_items, role_label=role_label)
    app.jinja_env.filters.update(yuan=format_yuan, rate=format_rate, num=format_count, local_time=local_time)

    @app.context_processor
    def _inject() -> dict[str, Any]:
        from flask_babel import get_locale

        return {"current_locale": str(get_locale()), "request_path": request.path}
