"""`growth check`: is this configuration complete and is everything it names reachable?

Each check returns one `Result` — ok, warn or fail, what was found, and what to do about a problem. Nothing
is changed and nothing is sent: the database gets a `SELECT 1` and a look at Alembic's version table, Redis
a PING, the SMTP server a connection and EHLO, providers and the platform webhook a TCP connection.
"Production-like" means PostgreSQL or a public base URL that is not loopback: there, what the embedded
default may generate into its instance folder (the secret key, the webhook secret) must be configured.
"""

from __future__ import annotations

import smtplib
import socket
import ssl
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from flask import Flask
from sqlalchemy import text
from sqlalchemy.engine import make_url

from channels.adapters.email import STARTTLS, TLS, parse_smtp_url
from channels.adapters.sms_settings import SmsSettings
from channels.settings import SETTINGS, ChannelConfig, load
from growth.crypto import keyring
from growth.db import get_db

OK, WARN, FAIL = "ok", "warn", "FAIL"
WEAK_SECRETS = frozenset({"secret", "changeme", "change-me", "dev", "development", "test", "test-secret-key",
                          "please-change-me", "growth"})
MIN_SECRET_KEY_LENGTH = 32
SMS_HOSTS = {"aliyun": "dysmsapi.aliyuncs.com", "tencent": "sms.tencentcloudapi.com"}


@dataclass(frozen=True, slots=True)
class Result:
    """The outcome of one check: its name, ok/warn/FAIL, what was found, and what to do (problems only)."""

    name: str
    status: str
    message: str
    fix: str = ""

    def line(self) -> str:
        """Return the one-line form: status, name, finding and the fix."""
        fix = f"  → {self.fix}" if self.fix else ""
        return f"{self.status:4}  {self.name:11} {self.message}{fix}"

    def as_dict(self) -> dict[str, str]:
        """Return the result for `--json`."""
        return asdict(self)


def production_like(app: Flask) -> bool:
    """Tell whether this looks like a real deployment (PostgreSQL, or a public base URL off loopback)."""
    if not str(app.config["DATABASE_URL"]).startswith("sqlite"):
        return True
    host = urlsplit(str(app.config.get("PUBLIC_BASE_URL") or "")).hostname or ""
    return host not in ("", "127.0.0.1", "localhost", "::1")


def run_checks(app: Flask, *, timeout: float = 5.0) -> list[Result]:
    """Run every check against the app's configuration; return one result each, in a fixed order."""
    results = config_checks(app)
    db_result = check_database(app)
    results.append(db_result)
    reachable = db_result.status == OK
    results.append(check_migrations(app) if reachable else
                   Result("migrations", FAIL, "not checked: the database is unreachable", "fix the database first"))
    results.append(check_redis(app.config.get("REDIS_URL"), timeout=timeout))
    cfg = channel_config(app, use_database=reachable and results[-2].status != FAIL)
    prod = production_like(app)
    results += [check_smtp(cfg, timeout=timeout), check_sms(cfg, production=prod, timeout=timeout),
                check_wechat(cfg, timeout=timeout), check_webhook(cfg, production=prod, timeout=timeout)]
    return results


# --- configuration ----------------------------------------------------------------------------------


def _generated(app: Flask, name: str, value: str) -> bool:
    """Tell whether a secret is the one the app generated into its instance folder (not configured)."""
    path = Path(app.instance_path) / name
    try:
        return path.read_text().strip() == value.strip()
    except OSError:
        return False


def _url_problem(url: str, *, schemes: tuple[str, ...] = ("http", "https")) -> str:
    """Return what is wrong with a URL, or "" when it is well-formed."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (raises on a bad port)
    except ValueError as err:
        return f"{url!r} is not a URL ({err})"
    if parts.scheme not in schemes:
        return f"{url!r} must start with {' or '.join(s + '://' for s in schemes)}"
    if not parts.hostname:
        return f"{url!r} has no host"
    return ""


def _data_keys_check(app: Flask, prod: bool) -> Result:
    """Where the data keys come from: every host must hold the same ones, or it cannot read what another wrote."""
    ring = keyring()
    if not (app.config.get("DATA_KEYS") or "").strip():
        return Result("data-keys", FAIL if prod else OK,
                      "generated into the instance folder (another host could not read this one's personal data)"
                      if prod else f"generated into the instance folder (key {ring.current.id}; back it up with "
                      "the database: without it the personal data cannot be read)",
                      "set GROWTH_DATA_KEYS to the same key on every host: `growth keys new`, and keep a copy "
                      "apart from the backups" if prod else "")
    older = f"; {len(ring.ids) - 1} older kept for reading (run `growth keys rotate`, then drop them)" \
        if len(ring.ids) > 1 else ""
    return Result("data-keys", OK, f"GROWTH_DATA_KEYS set (current {ring.current.id}{older})")


def config_checks(app: Flask) -> list[Result]:
    """Check the settings themselves: secrets, URLs and cookies."""
    prod = production_like(app)
    results: list[Result] = []
    key = str(app.config.get("SECRET_KEY") or "")
    if _generated(app, "secret_key", key):
        results.append(Result("secret-key", FAIL if prod else OK,
                              "generated into the instance folder (each host would sign sessions with its own)"
                              if prod else "generated into the instance folder (fine for one machine)",
                              "set GROWTH_SECRET_KEY to the same long random value on every host: "
                              "python -c 'import secrets; print(secrets.token_urlsafe(48))'" if prod else ""))
    elif key.lower() in WEAK_SECRETS or (prod and len(key) < MIN_SECRET_KEY_LENGTH):
        results.append(Result("secret-key", FAIL if prod else WARN,
                              f"GROWTH_SECRET_KEY is a default or too short ({len(key)} characters)",
                              f"set at least {MIN_SECRET_KEY_LENGTH} random characters: "
                              "python -c 'import secrets; print(secrets.token_urlsafe(48))'"))
    else:
        results.append(Result("secret-key", OK, f"GROWTH_SECRET_KEY set ({len(key)} characters)"))
    results.append(_data_keys_check(app, prod))

    webhook = str(app.config.get("WEBHOOK_SECRET") or "")
    if _generated(app, "webhook_secret", webhook):
        results.append(Result("event-auth", FAIL if prod else OK,
                              "webhook secret generated into the instance folder" +
                              (" (another host would not accept the platform's events)" if prod else ""),
                              "set GROWTH_WEBHOOK_SECRET (whsec_…) to the secret the platform signs with"
                              if prod else ""))
    else:
        count = len(webhook.split())
        results.append(Result("event-auth", OK, f"GROWTH_WEBHOOK_SECRET set ({count} secret{'s' * (count > 1)})"))

    base = str(app.config.get("PUBLIC_BASE_URL") or "")
    problem = _url_problem(base)
    if problem:
        results.append(Result("public-url", FAIL, f"GROWTH_PUBLIC_BASE_URL: {problem}",
                              "set it to where people reach this app, e.g. https://growth.example.com"))
    elif prod and urlsplit(base).scheme != "https":
        results.append(Result("public-url", WARN, f"{base} is not HTTPS (links in messages, provider callbacks)",
                              "serve it behind TLS and set GROWTH_PUBLIC_BASE_URL=https://…"))
    else:
        results.append(Result("public-url", OK, base))
    landing = str(app.config.get("REFERRAL_LANDING_URL") or "")
    problem = _url_problem(landing)
    if problem:
        results.append(Result("landing-url", FAIL, f"GROWTH_REFERRAL_LANDING_URL: {problem}",
                              "set it to the platform's registration page"))
    if prod and not app.config.get("SESSION_COOKIE_SECURE"):
        results.append(Result("cookies", WARN, "GROWTH_COOKIE_SECURE is false: session cookies also go over HTTP",
                              "set GROWTH_COOKIE_SECURE=true (users reach the app over HTTPS)"))
    return results


# --- database and schema ----------------------------------------------------------------------------


def redacted(url: str) -> str:
    """Return a database or Redis URL without its password."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # a URL SQLAlchemy cannot parse (Redis): drop the credentials part by hand
        parts = urlsplit(url)
        return parts._replace(netloc=parts.hostname or "").geturl() if parts.password else url


def check_database(app: Flask) -> Result:
    """Connect and run SELECT 1."""
    url = str(app.config["DATABASE_URL"])
    db = get_db(app)
    try:
        with db.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
            version = conn.dialect.server_version_info
    except Exception as err:
        return Result("database", FAIL, f"{redacted(url)}: cannot connect ({type(err).__name__}: "
                                        f"{str(err).splitlines()[0][:160]})",
                      "check GROWTH_DATABASE_URL, that the server runs and that this host may connect")
    shown = ".".join(str(p) for p in version or ()) if db.dialect == "postgresql" else ""
    return Result("database", OK, f"{redacted(url)} reachable" + (f" (PostgreSQL {shown})" if shown else ""))


def check_migrations(app: Flask) -> Result:
    """Compare the database's Alembic revision with the newest one of this code."""
    from growth.migrate import code_heads, database_heads, scripts

    url = str(app.config["DATABASE_URL"])
    embedded = url.startswith("sqlite")
    heads = code_heads()
    head = ", ".join(sorted(heads))
    with get_db(app).engine.connect() as conn:
        current = database_heads(conn)
    if current == heads:
        return Result("migrations", OK, f"at head ({head})")
    script = scripts()
    unknown = [rev for rev in current if _revision(script, rev) is None]
    if unknown:
        return Result("migrations", FAIL, f"the database is at {', '.join(unknown)}, which this code does not know "
                                          f"(head {head}): newer code migrated it",
                      "run the newer release, or restore the backup taken before its upgrade")
    if not current:
        if embedded:
            return Result("migrations", OK, "empty: `growth serve` creates the schema at start")
        return Result("migrations", FAIL, f"no schema yet (head {head})", "run `growth db upgrade`")
    at = ", ".join(sorted(current))
    if embedded:
        return Result("migrations", WARN, f"at {at}, head is {head}: `growth serve` upgrades it at start",
                      "or run `growth db upgrade` now (back up first: `growth backup`)")
    return Result("migrations", FAIL, f"at {at}, head is {head}",
                  "back up (`growth backup`), then run `growth db upgrade`")


def _revision(script: Any, rev: str) -> Any:
    try:
        return script.get_revision(rev)
    except Exception:  # alembic raises its own errors for a revision it does not know
        return None


# --- Redis ------------------------------------------------------------------------------------------


def check_redis(url: str | None, *, timeout: float) -> Result:
    """PING Redis when GROWTH_REDIS_URL is set."""
    if not url:
        return Result("redis", OK, "not configured: rate limits and the WeChat token are kept in the database")
    import redis

    client = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
    try:
        client.ping()
    except Exception as err:
        return Result("redis", FAIL, f"{redacted(url)}: no answer to PING ({type(err).__name__}: "
                                     f"{str(err)[:160]})",
                      "start Redis or fix GROWTH_REDIS_URL (unset it to keep the shared state in the database)")
    finally:
        client.close()
    return Result("redis", OK, f"{redacted(url)} answers PING")


# --- message channels -------------------------------------------------------------------------------


def channel_config(app: Flask, *, use_database: bool) -> ChannelConfig:
    """Return the channel settings in effect (the settings page's overrides when the database can be read)."""
    environment: Mapping[str, str] = app.config.get("CHANNEL_ENV") or {}
    if use_database:
        try:
            with get_db(app).session_scope() as session:
                return load(session=session, environment=environment)
        except Exception:  # noqa: S110 (no schema yet: the environment alone, said by the migrations check)
            pass
    values = {s.key: environment.get(s.env, "").strip() or s.default for s in SETTINGS}
    return ChannelConfig(values, {k: "environment" for k in values})


def _tcp(host: str, port: int, timeout: float) -> str:
    """Return "" when a TCP connection to host:port opens, else why not."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return ""
    except OSError as err:
        return f"{type(err).__name__}: {err}"[:160]


def _reachable(url: str, timeout: float) -> str:
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return _tcp(parts.hostname or "", port, timeout)


def check_smtp(cfg: ChannelConfig, *, timeout: float) -> Result:
    """Connect to the SMTP server and say EHLO (STARTTLS when the URL asks for it); no mail is sent."""
    url = cfg["smtp_url"]
    if not url:
        return Result("smtp", OK, "not configured: the email channel is off")
    try:
        smtp = parse_smtp_url(url)
    except ValueError as err:
        return Result("smtp", FAIL, f"GROWTH_SMTP_URL: {err}", "smtp://user:pass@host:587?starttls=true or smtps://…")
    where = f"{smtp.host}:{smtp.port}"
    if not cfg["mail_from"]:
        return Result("smtp", FAIL, f"{where} configured but no sender",
                      "set GROWTH_MAIL_FROM (名称 <hello@example.com>)")
    try:
        if smtp.security == TLS:
            server: smtplib.SMTP = smtplib.SMTP_SSL(smtp.host, smtp.port, timeout=timeout,
                                                    context=ssl.create_default_context())
        else:
            server = smtplib.SMTP(smtp.host, smtp.port, timeout=timeout)
        try:
            code, _reply = server.ehlo()
            if code != 250:
                return Result("smtp", FAIL, f"{where} answered EHLO with {code}", "check the server")
            if smtp.security == STARTTLS and not server.has_extn("starttls"):
                return Result("smtp", FAIL, f"{where} does not offer STARTTLS, which GROWTH_SMTP_URL asks for",
                              "use the server's submission port, or smtps:// for implicit TLS")
            if smtp.username and smtp.security != STARTTLS and not server.has_extn("auth"):
                return Result("smtp", WARN, f"{where} offers no AUTH before TLS", "add ?starttls=true to the URL")
        finally:
            try:
                server.quit()
            except (smtplib.SMTPException, OSError):
                server.close()
    except (smtplib.SMTPException, OSError) as err:
        return Result("smtp", FAIL, f"{where}: cannot connect ({type(err).__name__}: {str(err)[:160]})",
                      "check GROWTH_SMTP_URL and that this host may reach the server")
    return Result("smtp", OK, f"{where} answers EHLO ({smtp.security})")


def check_sms(cfg: ChannelConfig, *, production: bool, timeout: float) -> Result:
    """Check the SMS provider's credentials are present and its endpoint accepts connections."""
    provider = cfg["sms_provider"]
    if provider == "console":
        return Result("sms", WARN if production else OK, "console provider: SMS are written to the log, not sent",
                      "set GROWTH_SMS_PROVIDER=aliyun or tencent with its credentials" if production else "")
    try:
        settings = SmsSettings.from_mapping(cfg.adapter_settings("sms"))
        base = settings.base_url(SMS_HOSTS.get(provider, ""))
    except ValueError as err:
        return Result("sms", FAIL, f"{provider}: {err}", "fix GROWTH_SMS_ENDPOINT / GROWTH_SMS_PROTOCOL")
    needed = {"GROWTH_SMS_ACCESS_KEY_ID": settings.access_key_id, "GROWTH_SMS_ACCESS_KEY_SECRET":
              settings.access_key_secret, "GROWTH_SMS_SIGN_NAME": settings.sign_name}
    if provider == "tencent":
        needed["GROWTH_SMS_APP_ID"] = settings.app_id
    missing = [name for name, value in needed.items() if not value]
    if missing:
        return Result("sms", FAIL, f"{provider}: missing {', '.join(missing)}",
                      "set them (the settings page can set the sign name)")
    problem = _reachable(base, timeout)
    if problem:
        return Result("sms", FAIL, f"{provider}: {base} unreachable ({problem})",
                      "check GROWTH_SMS_ENDPOINT and this host's outbound access")
    return Result("sms", OK, f"{provider}: credentials set, {base} accepts connections")


def check_wechat(cfg: ChannelConfig, *, timeout: float) -> Result:
    """Check the WeChat official account's credentials and API base."""
    appid, secret = cfg["wechat_appid"], cfg["wechat_secret"]
    if not appid and not secret:
        return Result("wechat", OK, "not configured: the WeChat channel is off")
    if not appid or not secret:
        return Result("wechat", FAIL, "only one of GROWTH_WECHAT_APPID and GROWTH_WECHAT_SECRET is set",
                      "set both (the official account's AppID and AppSecret)")
    base = cfg["wechat_api_base"]
    problem = _url_problem(base)
    if problem:
        return Result("wechat", FAIL, f"GROWTH_WECHAT_API_BASE: {problem}", "https://api.weixin.qq.com/cgi-bin/")
    unreachable = _reachable(base, timeout)
    if unreachable:
        return Result("wechat", FAIL, f"{base} unreachable ({unreachable})", "check this host's outbound access")
    if not cfg["wechat_token"] or not cfg["wechat_aes_key"]:
        return Result("wechat", WARN, f"AppID {appid}: API reachable, but callbacks cannot be verified",
                      "set GROWTH_WECHAT_TOKEN and GROWTH_WECHAT_AES_KEY (follows, scans, unsubscribes)")
    return Result("wechat", OK, f"AppID {appid}: credentials set, {base} accepts connections")


def check_webhook(cfg: ChannelConfig, *, production: bool, timeout: float) -> Result:
    """Check the platform webhook URL is well-formed, signed and accepts connections."""
    url = cfg["platform_webhook_url"]
    if not url:
        return Result("webhook", WARN if production else OK, "GROWTH_PLATFORM_WEBHOOK_URL not set: rewards are not "
                      "credited on the platform", "set it and GROWTH_PLATFORM_WEBHOOK_SECRET" if production else "")
    problem = _url_problem(url)
    if problem:
        return Result("webhook", FAIL, f"GROWTH_PLATFORM_WEBHOOK_URL: {problem}", "https://platform.example.com/…")
    shown = urlsplit(url)._replace(query="", fragment="").geturl()  # a query can hold a token
    if not cfg["platform_webhook_secret"]:
        return Result("webhook", FAIL, f"{shown}: GROWTH_PLATFORM_WEBHOOK_SECRET missing (calls must be signed)",
                      "set the secret agreed with the platform")
    unreachable = _reachable(url, timeout)
    if unreachable:
        return Result("webhook", FAIL, f"{shown} unreachable ({unreachable})",
                      "check the URL and this host's outbound access")
    if production and urlsplit(url).scheme != "https":
        return Result("webhook", WARN, f"{shown} accepts connections but is not HTTPS", "use https://")
    return Result("webhook", OK, f"{shown} accepts connections")
