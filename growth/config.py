"""Configuration from the environment, with a test configuration."""

from __future__ import annotations

import base64
import binascii
import os
from datetime import timedelta
from typing import Any

PREFIX = "GROWTH_"
WEBHOOK_SECRET_PREFIX = "whsec_"  # noqa: S105 (a prefix, not a secret)
MIN_WEBHOOK_SECRET_BYTES = 24  # HMAC-SHA256 keys: shorter ones are guessable offline from one signed request


class ConfigError(ValueError):
    """A setting the app refuses to start with; the message says which and how to fix it."""


def check_webhook_secrets(value: str, *, source: str = "GROWTH_WEBHOOK_SECRET") -> None:
    """Refuse webhook secrets that are not `whsec_<base64>` of at least 24 bytes (each of the space-separated ones)."""
    parts = value.split()
    for n, secret in enumerate(parts, start=1):
        which = f"{source}: secret {n} of {len(parts)}" if len(parts) > 1 else f"{source}"
        if not secret.startswith(WEBHOOK_SECRET_PREFIX):
            raise ConfigError(f"{which} must look like whsec_<base64> (Standard Webhooks); "
                              f"generate one with: python -c \"import base64, secrets; "
                              f"print('whsec_' + base64.b64encode(secrets.token_bytes(32)).decode())\"")
        try:
            key = base64.b64decode(secret.removeprefix(WEBHOOK_SECRET_PREFIX), validate=True)
        except (binascii.Error, ValueError):
            raise ConfigError(f"{which}: the part after whsec_ is not valid base64") from None
        if len(key) < MIN_WEBHOOK_SECRET_BYTES:
            raise ConfigError(f"{which} is too weak: {len(key)} bytes after base64 decoding, "
                              f"at least {MIN_WEBHOOK_SECRET_BYTES} are needed (32 random bytes recommended)")


def _env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(PREFIX + name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _at_least(key: str, raw: str, kind: type[int] | type[float], minimum: int) -> int | float:
    """Return a GROWTH_<key> number of `minimum` or more, or stop the start with a message saying which."""
    try:
        value = kind(raw)
    except ValueError:
        value = minimum - 1
    if value < minimum:
        raise ConfigError(f"{PREFIX}{key} must be a whole number of {minimum} or more (got {raw!r})")
    return value


class Config:
    """Settings shared by every environment; values come from GROWTH_* variables."""

    SECRET_KEY: str | None = None
    # The keys personal data is encrypted with (growth/crypto.py: `<id>:<base64url>`, comma-separated, the current
    # one first). Empty: one generated once into the instance folder (the embedded default).
    DATA_KEYS = ""
    DATABASE_URL: str | None = None  # None: SQLite file in the instance folder
    # SQLite's PRAGMA synchronous: FULL survives a power cut after every commit; the tests use OFF
    # (a killed process still loses nothing; only the operating system's crash could).
    SQLITE_SYNCHRONOUS = "FULL"
    WEBHOOK_SECRET: str = ""
    # `growth serve` supervises a `growth worker` child process for the processor/scheduler/delivery;
    # false: it serves web requests only (workers run elsewhere). `growth worker` ignores it.
    BACKGROUND_WORK = True

    # Sessions and cookies: secure by default; `growth serve` relaxes Secure for plain-HTTP loopback.
    SESSION_COOKIE_NAME = "growth_session"
    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    SESSION_COOKIE_SECURE = True
    PERMANENT_SESSION_LIFETIME = timedelta(hours=8)
    IDLE_TIMEOUT = timedelta(minutes=30)

    # Login throttling (README.md): failures per account and address, and per account from addresses it has
    # not signed in from lately, in a sliding window; then a doubling wait of at most 15 minutes.
    LOGIN_MAX_FAILURES = 5
    LOGIN_ACCOUNT_MAX_FAILURES = 20
    LOGIN_WINDOW = timedelta(minutes=15)

    WTF_CSRF_TIME_LIMIT = None  # the token lives as long as the session
    BABEL_DEFAULT_LOCALE = "zh_CN"
    BABEL_DEFAULT_TIMEZONE = "Asia/Shanghai"
    LANGUAGES = ("zh_CN", "en")
    BOOTSTRAP_SERVE_LOCAL = True
    BOOTSTRAP_BOOTSWATCH_THEME = None

    MAX_CONTENT_LENGTH = 1024 * 1024  # request bodies; the routes that take more declare it (growth.request_size)

    PER_PAGE = 25
    # Investor searches per staff member in a sliding window (a phone cannot be guessed by brute force).
    INVESTOR_SEARCH_LIMIT = 30
    INVESTOR_SEARCH_WINDOW = timedelta(minutes=1)
    INVESTOR_REVEAL_SECONDS = 300  # how long an audited reveal keeps the investor page unmasked
    PROCESSOR_BATCH_SIZE = 2000
    PROCESSOR_IDLE_SECONDS = 5.0  # an idle processor renews its lease and looks again at least this often
    PROCESSOR_POLL_SECONDS = 0.1  # ... and checks the log's last seq this often (a read, no write lock)
    LEADER_LEASE_SECONDS = 15
    # Threads of the elected campaign runner fulfilling one run's chunks at once, each on its own connection
    # (PostgreSQL; SQLite has one writer at a time, so it always uses one). About one per database core.
    CAMPAIGN_RUNNER_THREADS = 2
    PUBLIC_BASE_URL = "http://127.0.0.1:5000"
    REDIS_URL: str | None = None  # shared rate limits and tokens across machines; unset = the database
    CHANNEL_ENV: dict[str, str] = {}  # replaced at start, never changed in place
    DELIVERY_BATCH_SIZE = 200  # messages one worker claims at a time
    DELIVERY_THREADS = 16  # concurrent provider calls per worker
    DELIVERY_IDLE_SECONDS = 1.0  # an idle delivery worker looks for due messages this often
    DELIVERY_LEASE_SECONDS = 300  # a claimed message whose worker died is taken over after this
    # On SIGTERM `growth worker` gives its threads this long to finish (delivery records what it sent and hands
    # back what it had not started); systemd's TimeoutStopSec and compose's stop_grace_period are set above it.
    WORKER_STOP_SECONDS = 20.0
    # How often the elected scheduler runs the ledger's system jobs: expiry (rewards end at a business day's
    # end, a minute late is nothing), payments (a scan of every unpaid cashback and experience fund) and the
    # reminders before expiry (one message per reward, however often they run).
    REWARD_EXPIRY_JOB_SECONDS = 60.0
    REWARD_PAYMENT_JOB_SECONDS = 300.0
    REWARD_REMINDER_JOB_SECONDS = 900.0
    # A manual grant worth more than this (yuan; face value or maximum cost) needs a second administrator.
    REWARD_APPROVAL_THRESHOLD = "200.00"
    PROXY_COUNT = 0  # reverse proxies in front (X-Forwarded-For/-Proto/-Host are trusted that deep)
    # The referral program's defaults (spec campaigns-api.md §4); the settings page may override each one.
    REFERRAL_QUALIFY_AMOUNT = "1000.00"
    REFERRAL_MIN_TERM_DAYS = 30
    REFERRAL_WINDOW_DAYS = 30
    REFERRAL_HOLD_DAYS = 30
    REFERRAL_MAX_REFEREES_PER_DAY = 5
    REFERRAL_SUBNET_WINDOW_HOURS = 72
    REFERRAL_VIRTUAL_PREFIXES = "170,171,162,165,167"
    # Where a share link /r/<code> sends a visitor (the platform's registration page), with referral_code=<code>.
    REFERRAL_LANDING_URL = "https://www.example.com/register"
    REFERRAL_JOB_SECONDS = 60.0  # how often the scheduler confirms the referrals whose hold has ended
    # The CRM's follow-up rules (issue 11's defaults); the CRM settings page may override each one.
    CRM_NO_KYC_DAYS = 1
    CRM_NO_DEPOSIT_DAYS = 2
    CRM_NO_INVESTMENT_DAYS = 3
    CRM_MATURING_DAYS = 7
    CRM_LARGE_AMOUNT = "50000.00"
    CRM_DORMANT_DAYS = 60
    CRM_LOOKBACK_DAYS = 30
    CRM_DUE_HOURS = 24
    CRM_OPEN_TASK_CAP = 50
    CRM_EXPORT_MAX_ROWS = 10_000  # rows a worklist CSV holds at most (the download says when it was cut)
    # The platform's annual service fee on investments ("0.0250" = 2.5 % a year): channel economics shows the payback
    # days with it. Empty: not shown (the platform's revenue is in no event).
    ECONOMICS_SERVICE_FEE_RATE = ""
    DASHBOARD_ROLLUP_JOB_SECONDS = 10.0  # how often the dashboards' daily cohort rollup takes the marked days
    CRM_JOB_SECONDS = 300.0  # how often the scheduler runs the follow-up rules and assigns the pool
    # Data protection (growth/privacy): how many days raw event payloads and message bodies keep their personal
    # fields (0 = keep them), and how often the scheduler's `data-retention` job strips what is older.
    RETENTION_EVENT_PAYLOAD_DAYS = 365
    RETENTION_MESSAGE_BODY_DAYS = 180
    RETENTION_JOB_SECONDS = 600.0
    RETENTION_BATCH_SIZE = 1000  # rows a retention transaction takes at most (events, then messages)
    RETENTION_MAX_BATCHES = 20  # transactions a run makes at most for each; the next run takes the rest
    # Health, metrics and logs (docs/operations.md). /readyz wants a `growth worker` heartbeat newer than
    # READY_HEARTBEAT_SECONDS unless READY_REQUIRES_WORKER is off (a deployment that runs no workers on purpose).
    HEARTBEAT_SECONDS = 5.0
    READY_HEARTBEAT_SECONDS = 60.0
    READY_REQUIRES_WORKER = True
    METRICS_TOKEN = ""  # a bearer token that may read /metrics from anywhere; without it, loopback only
    LOG_FORMAT = "text"  # or "json": one JSON object a line on stderr
    LOG_LEVEL = "INFO"  # the root level in json mode

    @classmethod
    def from_env(cls) -> dict[str, Any]:
        """Collect the settings, overriding defaults with GROWTH_* environment variables."""
        values = {k: getattr(cls, k) for k in dir(cls) if k.isupper()}
        for key in ("SECRET_KEY", "DATA_KEYS", "DATABASE_URL", "WEBHOOK_SECRET", "PUBLIC_BASE_URL",
                    "REWARD_APPROVAL_THRESHOLD"):
            if os.environ.get(PREFIX + key):
                values[key] = os.environ[PREFIX + key]
        values["SESSION_COOKIE_SECURE"] = _env_bool("COOKIE_SECURE", cls.SESSION_COOKIE_SECURE)
        values["BACKGROUND_WORK"] = _env_bool("BACKGROUND_WORK", cls.BACKGROUND_WORK)
        values["PROXY_COUNT"] = int(os.environ.get(PREFIX + "PROXY_COUNT", cls.PROXY_COUNT))
        for key, kind in (("DELIVERY_BATCH_SIZE", int), ("DELIVERY_THREADS", int), ("DELIVERY_LEASE_SECONDS", float),
                          ("DELIVERY_IDLE_SECONDS", float), ("WORKER_STOP_SECONDS", float)):
            if os.environ.get(PREFIX + key, "").strip():
                values[key] = kind(os.environ[PREFIX + key])
        values["REDIS_URL"] = os.environ.get(PREFIX + "REDIS_URL", "").strip() or None
        for key in [k for k in values if k.startswith("RETENTION_")]:
            raw = os.environ.get(PREFIX + key, "").strip()
            if raw:
                values[key] = _at_least(key, raw, float if key.endswith("_SECONDS") else int,
                                        0 if key.endswith("_DAYS") else 1)
        raw = os.environ.get(PREFIX + "CAMPAIGN_RUNNER_THREADS", "").strip()
        if raw:
            values["CAMPAIGN_RUNNER_THREADS"] = _at_least("CAMPAIGN_RUNNER_THREADS", raw, int, 1)
        values["READY_REQUIRES_WORKER"] = _env_bool("READY_REQUIRES_WORKER", cls.READY_REQUIRES_WORKER)
        for key in ("HEARTBEAT_SECONDS", "READY_HEARTBEAT_SECONDS"):
            if os.environ.get(PREFIX + key, "").strip():
                values[key] = float(os.environ[PREFIX + key])
        for key in ("METRICS_TOKEN", "LOG_FORMAT", "LOG_LEVEL"):
            if os.environ.get(PREFIX + key, "").strip():
                values[key] = os.environ[PREFIX + key].strip()
        for key in [k for k in values if k.startswith(("REFERRAL_", "CRM_", "ECONOMICS_"))]:  # validated at build
            if os.environ.get(PREFIX + key, "").strip():
                values[key] = os.environ[PREFIX + key].strip()
        # The message channels' GROWTH_* variables (channels/settings.py reads them, overrides win).
        values["CHANNEL_ENV"] = {k: v for k, v in os.environ.items() if k.startswith(PREFIX)}
        return values


class TestConfig(Config):
    """Settings for the test suite: no background threads, a fixed webhook secret."""

    TESTING = True
    WTF_CSRF_ENABLED = False  # the CSRF tests turn it back on
    SECRET_KEY = "test-secret-key"  # noqa: S105 (test only)
    DATA_KEYS = "test:dGVzdC1kYXRhLWtleS0zMi1ieXRlcy1sb25nLi4uLi4"  # test only: 32 known bytes
    WEBHOOK_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"  # noqa: S105 (test only)
    BACKGROUND_WORK = False
    CHANNEL_ENV: dict[str, str] = {}  # the developer's own GROWTH_* never leak into tests
    REDIS_URL = None
    SQLITE_SYNCHRONOUS = "OFF"  # a test database need not survive a power cut; fsyncs cost minutes of CI
    SESSION_COOKIE_SECURE = False
    SERVER_NAME = None
