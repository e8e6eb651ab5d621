"""The composition root: the one place that builds the app and wires every package."""

from __future__ import annotations

import base64
import contextlib
import logging
import os
import secrets
from pathlib import Path
from typing import Any

from flask import Flask, current_app, has_request_context, request, session, url_for
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from sqlalchemy.engine import make_url
from werkzeug.middleware.proxy_fix import ProxyFix

from growth import crypto, inputs
from growth import db as dbmod
from growth.assets import init_assets, register_asset
from growth.config import Config, ConfigError, check_webhook_secrets
from growth.crypto import DataKeyError, Keyring, new_key, parse_keys
from growth.errors import register_error_handlers
from growth.extensions import babel, bootstrap, csrf, login_manager, talisman
from growth.observability.logs import configure_logging
from growth.request_size import init_request_size

ROOT = Path(__file__).resolve().parent.parent
log = logging.getLogger("growth.app")


def _nav() -> list[tuple[Any, str, Any, Any, str | None]]:
    from growth.auth.permissions import Permission as P

    # (permission, endpoint, label, hint, menu group): a group is one dropdown, so the bar fits a 1440 px screen.
    return [
        (P.FUNNEL_VIEW, "dashboards.funnel_page", _l("转化漏斗"), _l("注册到复投的各步转化"), None),
        (P.ACQUISITION_VIEW, "acquisition.channels", _l("获客渠道"), _l("推广渠道、链接与成本"), None),
        (P.CRM_WORK, "crm.worklist", _l("客服工作台"), _l("我的待跟进任务与通话记录"), None),
        (P.INVESTORS_VIEW, "investors.index", _l("投资人"), _l("搜索投资人，查看里程碑与投资"), None),
        (P.EVENTS_VIEW, "events.index", _l("平台事件"), _l("事件日志与处理进度"), None),
        (P.CAMPAIGNS_VIEW, "campaigns.index", _l("活动"), _l("营销活动：建活动、审批、执行"), "marketing"),
        (P.MESSAGES_VIEW, "channels.index", _l("消息触达"), _l("发送记录、渠道健康与模板"), "marketing"),
        (P.REWARDS_VIEW, "rewards.index", _l("奖励台账"), _l("红包、加息券、体验金、返现与预算"), "marketing"),
        (P.REFERRALS_VIEW, "referrals.index", _l("邀请好友"), _l("邀请记录、风控审核与设置"), "marketing"),
        (P.REFERRALS_VIEW, "dashboards.referral_stats", _l("邀请统计"), _l("邀请、注册、达标与 K 因子"), "marketing"),
        (P.ECONOMICS_VIEW, "dashboards.economics_page", _l("渠道经济"), _l("渠道成本、CAC 与扣除激励后的 ROI"),
         "marketing"),
        (P.CAMPAIGNS_VIEW, "dashboards.campaigns_page", _l("活动效果"), _l("各活动对照组提升与每元激励的增量年化投资"),
         "marketing"),
        (P.FUNNEL_VIEW, "dashboards.cohorts_page", _l("留存分群"), _l("按注册月的复投留存与到期复投"), "marketing"),
        (P.KILL_SWITCH, "campaigns.kill_switch_page", _l("营销一键暂停"), _l("出问题时暂停所有营销活动与消息"),
         "marketing"),
        (P.USERS_MANAGE, "auth.users", _l("员工账号"), _l("账号、角色与令牌"), "system"),
        (P.AUDIT_VIEW, "audit.index", _l("审计日志"), _l("谁在何时做了什么"), "system"),
        (P.TOKENS_OWN, "events_api.api_docs", _l("API 文档"), _l("事件接口与漏斗接口说明"), "system"),
    ]


NAV_GROUPS = {"marketing": _l("营销"), "system": _l("系统")}
NAV = _nav()


def _private_folder(path: Path) -> None:
    """Create the instance folder for its owner only (0700); warn when an existing one is open to others."""
    try:
        path.mkdir(mode=0o700, parents=True)  # the mode is set by mkdir itself: never open, not even briefly
    except FileExistsError:
        if path.stat().st_mode & 0o077:
            log.warning("the instance folder %s can be read by other users (mode %o); `chmod 700 %s` protects "
                        "the database and secrets in it", path, path.stat().st_mode & 0o777, path)


def _private_file(path: Path, text: str) -> str:
    """Create `path` with `text` for its owner only (0600) unless it exists; return the content that is there.

    Written to a private temporary file and linked into place, so a second process starting at the same
    moment (the server and its worker child) reads either nothing new or the whole of the first one's.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        try:
            os.link(tmp, path)  # atomic, and refuses to replace: another process that was first wins
        except FileExistsError:
            pass
        except OSError:  # a file system without hard links
            if not path.exists():
                os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path.read_text().strip()


def _private_sqlite_file(url: str) -> None:
    """Create a SQLite database file 0600 before SQLite does (it would make it 0644); -wal/-shm copy its mode."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        return
    path = Path(parsed.database)
    if path.parent.is_dir():
        with contextlib.suppress(FileExistsError):
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))  # an empty file is an empty database


def _secret_key(app: Flask) -> str:
    """Return the configured secret key, or one generated once and kept in the instance folder."""
    if app.config.get("SECRET_KEY"):
        return app.config["SECRET_KEY"]
    path = Path(app.instance_path) / "secret_key"
    if path.exists():
        return path.read_text().strip()
    return _private_file(path, secrets.token_urlsafe(48))


def _data_keys(app: Flask) -> Keyring:
    """Return the configured data keys, or one generated once and kept in the instance folder (0600)."""
    text = (app.config.get("DATA_KEYS") or "").strip()
    source = "GROWTH_DATA_KEYS"
    if not text:
        path = Path(app.instance_path) / "data_keys"
        source = str(path)
        text = path.read_text().strip() if path.exists() else _private_file(path, new_key("local"))
    try:
        return parse_keys(text)
    except DataKeyError as err:
        raise ConfigError(f"{source}: {err}") from err


def _webhook_secret(app: Flask) -> tuple[str, str]:
    """Return the configured webhook secret(s), or one generated once into the instance folder, and where it is."""
    if (app.config.get("WEBHOOK_SECRET") or "").strip():
        return app.config["WEBHOOK_SECRET"], "GROWTH_WEBHOOK_SECRET"
    path = Path(app.instance_path) / "webhook_secret"
    if path.exists():
        return path.read_text().strip(), str(path)
    return _private_file(path, "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()), str(path)


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
    configure_logging(app)  # before anything logs: every line in the configured format, personal data masked
    _private_folder(Path(app.instance_path))
    app.config["SECRET_KEY"] = _secret_key(app)
    crypto.configure(_data_keys(app))  # before any investor row is read or written
    app.config["WEBHOOK_SECRET"], source = _webhook_secret(app)
    check_webhook_secrets(app.config["WEBHOOK_SECRET"], source=source)  # ConfigError: refuse to start
    url = app.config.get("DATABASE_URL") or f"sqlite:///{Path(app.instance_path) / 'growth.db'}"
    app.config["DATABASE_URL"] = url
    _private_sqlite_file(url)

    if app.config["PROXY_COUNT"]:
        n = int(app.config["PROXY_COUNT"])
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n, x_host=n)  # type: ignore[method-assign]
    dbmod.init_app(app, url)
    _init_observability(app)  # first of the request hooks: every request, even a refused one, gets its id
    inputs.init_app(app)  # before the blueprints: their int URL parts use its bounded converter
    init_request_size(app)  # after inputs: its limit goes first, before the NUL guard reads the form
    init_assets(app)  # early: its after-request hook then runs last and has the final word on asset caching
    _register_projections(app)
    _register_message_channels(app)
    _init_extensions(app)
    _register_blueprints(app)
    _register_assets(app)
    register_error_handlers(app)
    _register_template_helpers(app)
    _register_background_work(app)
    _init_events_fast_lane(app)  # last: the outermost WSGI layer
    return app


def _init_events_fast_lane(app: Flask) -> None:
    from growth.events.endpoint import init_app

    init_app(app)  # a plain signed event batch is answered without Flask's request machinery


def _init_observability(app: Flask) -> None:
    from growth.observability.views import init_app

    init_app(app)  # request ids, request metrics; /healthz, /readyz, /metrics


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
    from campaigns import timeline as campaigns_timeline
    from campaigns.openapi import contribution as campaigns_openapi
    from campaigns.views import api as campaigns_api
    from campaigns.views import bp as campaigns_bp
    from channels.callback_views import bp as channels_callbacks
    from channels.views import api as channels_api
    from channels.views import bp as channels_bp
    from dashboards.metrics import parse_fee_rate
    from dashboards.openapi import contribution as dashboards_openapi
    from dashboards.views import FEE_RATE, kpi_panel
    from dashboards.views import api as dashboards_api
    from dashboards.views import bp as dashboards_bp
    from growth.acquisition.views import api as acquisition_api
    from growth.acquisition.views import bp as acquisition_bp
    from growth.audit.views import bp as audit_bp
    from growth.auth.permissions import Permission
    from growth.auth.views import bp as auth_bp
    from growth.crm.timeline import register_source
    from growth.crm.views import bp as crm_bp
    from growth.crm.views import messages_bp as crm_messages_bp
    from growth.events.openapi import register_contribution
    from growth.events.views import api as events_api
    from growth.events.views import bp as events_bp
    from growth.home.panels import HomePanel, register_panel
    from growth.home.views import bp as home_bp
    from growth.investors.views import bp as investors_bp
    from growth.referrals.views import api as referrals_api
    from growth.referrals.views import bp as referrals_bp
    from growth.referrals.views import share as referrals_share
    from growth.rewards.views import api as rewards_api
    from growth.rewards.views import bp as rewards_bp

    for bp in (home_bp, auth_bp, audit_bp, events_bp, investors_bp, acquisition_bp, channels_bp, referrals_bp,
               referrals_share, campaigns_bp, crm_bp, crm_messages_bp):
        app.register_blueprint(bp)
    app.register_blueprint(referrals_api)
    app.register_blueprint(acquisition_api)
    app.register_blueprint(events_api)
    app.register_blueprint(channels_api)
    app.register_blueprint(campaigns_api)
    register_contribution(app, campaigns_openapi)  # the kernel's API description may not import campaigns
    # … nor may the CRM's investor timeline: campaigns adds its entries (members: entered, holdout, run) here.
    register_source(app, campaigns_timeline.KIND, campaigns_timeline.entries, label=campaigns_timeline.LABEL)
    app.register_blueprint(rewards_bp)
    app.register_blueprint(rewards_api)
    app.register_blueprint(dashboards_api)
    register_contribution(app, dashboards_openapi)  # nor dashboards (channel economics)
    app.register_blueprint(dashboards_bp)
    # The platform's service-fee rate for channel payback (a bad GROWTH_ECONOMICS_SERVICE_FEE_RATE stops the start).
    app.extensions[FEE_RATE] = parse_fee_rate(app.config["ECONOMICS_SERVICE_FEE_RATE"])
    # The home page shows the dashboards' KPI strip to those who may read it (home may not import dashboards).
    register_panel(app, HomePanel("kpis", Permission.KPIS_VIEW, kpi_panel, order=10))
    csrf.exempt(events_api)  # signed by the platform; no browser session involved
    app.register_blueprint(channels_callbacks)
    csrf.exempt(channels_callbacks)  # provider callbacks and one-click unsubscribe: no session, signed or tokened


def _register_assets(app: Flask) -> None:
    from swagger_ui_bundle import swagger_ui_path

    from dashboards.views import PLOTLY_JS

    register_asset(app, "bootstrap.static", folder=app.blueprints["bootstrap"].static_folder)
    register_asset(app, "events_api.swagger_asset", folder=swagger_ui_path)
    register_asset(app, "dashboards.plotly_js", file=PLOTLY_JS)


def _register_projections(app: Flask) -> None:
    """Register the event processor's projections, in the order it runs them (see docs/architecture.md)."""
    from channels.projection import ConsentProjection
    from dashboards.rollup import CohortDaysProjection
    from growth import signals
    from growth.acquisition.projection import AttributionProjection
    from growth.investors.projection import InvestorsProjection
    from growth.projections import EXTENSION, Projections
    from growth.referrals.jobs import DEFAULTS as REFERRAL_DEFAULTS
    from growth.referrals.projection import ReferralRecordsProjection, ReferralsProjection
    from growth.referrals.services import default_settings
    from growth.rewards.projection import RewardsProjection

    projections = Projections()
    projections.register(InvestorsProjection)  # first: loads and creates the investor rows the others share
    projections.register(ReferralsProjection)
    projections.register(AttributionProjection)
    projections.register(ConsentProjection.configured(changed=signals.consent_changed))
    projections.register(RewardsProjection)  # after investors: reads the investment rows they write
    # The configured program settings (a bad GROWTH_REFERRAL_* stops the start here, with its message).
    app.extensions[REFERRAL_DEFAULTS] = referral_defaults = default_settings(app.config)
    projections.register(ReferralRecordsProjection.configured(defaults=referral_defaults))
    # Last: marks the registration days whose cohort the batch changed, for the dashboards' daily rollup.
    projections.register(CohortDaysProjection)
    app.extensions[EXTENSION] = projections


def _register_message_channels(app: Flask) -> None:
    """Register every message-channel adapter; delivery builds one per provider from its settings."""
    from channels.adapters.email import register_email
    from channels.adapters.port import EXTENSION, AdapterRegistry
    from channels.adapters.sms import register_sms
    from channels.adapters.webhook import register_webhook
    from channels.adapters.wechat import register_wechat
    from channels.recipients import EXTENSION as RECIPIENTS
    from channels.tokens import token_store_for
    from growth.investors.services import InvestorDirectory

    registry = AdapterRegistry()
    register_sms(registry)
    register_email(registry)
    register_webhook(registry)
    # One token for every worker process: Redis (REDIS_URL) or the database; opens no connection here.
    register_wechat(registry, token_store=token_store_for(app))
    app.extensions[EXTENSION] = registry
    app.extensions[RECIPIENTS] = InvestorDirectory()


def _register_background_work(app: Flask) -> None:
    from campaigns import fulfilment, runner, scheduler
    from campaigns.consumer import run_triggers
    from channels.delivery import run_delivery
    from dashboards import jobs as dashboard_jobs
    from growth.background import register_worker
    from growth.crm import jobs as crm_jobs
    from growth.crm.services import default_settings as crm_default_settings
    from growth.events.processor import run_processor
    from growth.privacy import jobs as privacy_jobs
    from growth.referrals import jobs as referral_jobs
    from growth.rewards import jobs as reward_jobs

    # Registered always: only `growth worker` runs them (`growth serve` starts one as its child).
    register_worker(app, "events-processor", run_processor)
    register_worker(app, "message-delivery", run_delivery)
    register_worker(app, "campaign-triggers", run_triggers)
    register_worker(app, "scheduler", scheduler.run_scheduler)
    register_worker(app, "campaign-runner", runner.run_campaign_runner)
    register_worker(app, "campaign-fulfilment", fulfilment.run_fulfilment)
    scheduler.register_task("campaign-run", runner.task_campaign_run)
    scheduler.register_task("campaigns-sync", runner.task_sync_schedules, write=False)
    scheduler.register_system_job("campaigns-sync", 15, "campaigns-sync")
    # The CRM's configured rule settings (a bad GROWTH_CRM_* stops the start here, with its message).
    app.extensions[crm_jobs.DEFAULTS] = crm_default_settings(app.config)
    # The ledger's, the referral program's and the CRM's periodic work: system jobs of the same elected scheduler.
    for job_id, task, seconds in (
            ("reward-expiry", reward_jobs.task_expire, app.config["REWARD_EXPIRY_JOB_SECONDS"]),
            ("reward-payments", reward_jobs.task_pay, app.config["REWARD_PAYMENT_JOB_SECONDS"]),
            ("reward-expiry-reminders", reward_jobs.task_remind, app.config["REWARD_REMINDER_JOB_SECONDS"]),
            ("referral-confirmations", referral_jobs.task_confirm, app.config["REFERRAL_JOB_SECONDS"]),
            ("crm-follow-up", crm_jobs.task_follow_up, app.config["CRM_JOB_SECONDS"]),
            ("dashboards-rollup", dashboard_jobs.task_refresh, app.config["DASHBOARD_ROLLUP_JOB_SECONDS"])):
        scheduler.register_task(job_id, task)
        scheduler.register_system_job(job_id, float(seconds), job_id)
    # Retention strips old personal data in transactions of its own (bounded, resumable): a read scope for the job.
    scheduler.register_task("data-retention", privacy_jobs.task_retention, write=False)
    scheduler.register_system_job("data-retention", float(app.config["RETENTION_JOB_SECONDS"]), "data-retention")


def _register_template_helpers(app: Flask) -> None:
    from growth.auth.permissions import Permission, role_has, role_label
    from growth.money import format_count, format_rate, format_yuan
    from growth.timeutil import SHANGHAI, as_utc

    def can(permission: str) -> bool:
        return bool(current_user.is_authenticated and role_has(current_user.role, Permission(permission)))

    def local_time(value: Any, fmt: str = "%Y-%m-%d %H:%M") -> str:
        return "" if value is None else as_utc(value).astimezone(SHANGHAI).strftime(fmt)

    def nav_items() -> list[dict[str, Any]]:
        if not current_user.is_authenticated:
            return []
        items: list[dict[str, Any]] = [
            {"url": url_for(endpoint), "label": str(label), "hint": str(hint), "prefix": url_for(endpoint),
             "group": group, "active": False}
            for permission, endpoint, label, hint, group in NAV
            if endpoint in app.view_functions and role_has(current_user.role, permission)
        ]
        # The longest matching prefix is where one is (/campaigns/kill-switch is not also "campaigns").
        here = [i for i in items if request.path.startswith(i["prefix"])]
        if here:
            max(here, key=lambda i: len(i["prefix"]))["active"] = True
        return items

    def nav_menu() -> list[dict[str, Any]]:
        """Return the top bar: single links, and groups (in order of their first item) as dropdowns."""
        menu: list[dict[str, Any]] = []
        groups: dict[str, dict[str, Any]] = {}
        for item in nav_items():
            if item["group"] is None:
                menu.append({"link": item})
                continue
            if item["group"] not in groups:
                groups[item["group"]] = {"id": item["group"], "label": str(NAV_GROUPS[item["group"]]), "items": []}
                menu.append({"menu": groups[item["group"]]})
            groups[item["group"]]["items"].append(item)
        # A group of one is a plain link: a dropdown holding one entry only hides it.
        return [{"link": e["menu"]["items"][0]} if "menu" in e and len(e["menu"]["items"]) == 1 else e for e in menu]

    app.jinja_env.globals.update(can=can, nav_items=nav_items, nav_menu=nav_menu, role_label=role_label)
    app.jinja_env.filters.update(yuan=format_yuan, rate=format_rate, num=format_count, local_time=local_time)

    @app.context_processor
    def _inject() -> dict[str, Any]:
        from flask_babel import get_locale

        return {"current_locale": str(get_locale()), "request_path": request.path}
