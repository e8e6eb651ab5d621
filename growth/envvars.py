"""Every GROWTH_* environment variable the product reads, in one catalog (deploy files and `growth check` use it).

Derived from the code that reads them, not typed out: `growth.config.Config.from_env` (its explicit keys and
the REFERRAL_/CRM_/ECONOMICS_ families), the message channels' settings (`channels.settings.SETTINGS`), and
the few read elsewhere (the instance folder, the deployment profile in deploy/gunicorn.conf.py).
A test greps the sources for GROWTH_ literals so a variable added without a place here fails the suite, and
compares deploy/growth.env.example with `example_text()`; after adding one, regenerate the example:
`python -c "from growth.envvars import example_text; print(example_text(), end='')" > deploy/growth.env.example`.
"""

from __future__ import annotations

from dataclasses import dataclass

from channels.settings import SETTINGS
from growth.config import PREFIX, Config

# Read one by one in Config.from_env (and a few beside it), with a word for the example environment file.
_CORE: dict[str, str] = {
    "SECRET_KEY": "session signing key; unset: generated once into the instance folder (set it on every web host)",
    "DATA_KEYS": "<id>:<key> personal data is encrypted with (`growth keys new`; several, comma-separated, the current "
                 "first, while rotating); unset: generated once into the instance folder",
    "DATABASE_URL": "postgresql+psycopg://user:password@host:5432/growth; unset: SQLite in the instance folder",
    "WEBHOOK_SECRET": "whsec_<base64> the platform signs events with (several, space-separated, while rotating)",
    "PUBLIC_BASE_URL": "where people reach this app (links in messages, provider callbacks)",
    "REWARD_APPROVAL_THRESHOLD": "a manual grant worth more than this (yuan) needs a second administrator",
    "COOKIE_SECURE": "true: cookies only over HTTPS (keep it true behind a TLS proxy)",
    "BACKGROUND_WORK": "`growth serve` only: false serves web requests and leaves background work to workers",
    "PROXY_COUNT": "reverse proxies in front whose X-Forwarded-* headers are trusted (0: none)",
    "DELIVERY_BATCH_SIZE": "messages one worker claims at a time",
    "DELIVERY_THREADS": "concurrent provider calls per worker",
    "DELIVERY_IDLE_SECONDS": "how often an idle delivery worker looks for due messages",
    "DELIVERY_LEASE_SECONDS": "a claimed message whose worker died is taken over after this",
    "WORKER_STOP_SECONDS": "how long `growth worker` gives its threads to finish on SIGTERM before exiting",
    "CAMPAIGN_RUNNER_THREADS": "threads of the elected campaign runner fulfilling a run's chunks at once (PostgreSQL; "
                               "about one per database core; SQLite always uses one)",
    "REDIS_URL": "redis://host:6379/0 for rate limits and the WeChat token shared across machines; unset: the database",
    "INSTANCE_PATH": "folder of the SQLite database, the generated secrets and backups (default ./instance)",
    "HEARTBEAT_SECONDS": "how often each `growth worker` refreshes its heartbeat row",
    "READY_HEARTBEAT_SECONDS": "/readyz fails when no worker heartbeat is newer than this",
    "READY_REQUIRES_WORKER": "false: /readyz does not ask for a worker heartbeat (a deployment without workers)",
    "METRICS_TOKEN": "a bearer token that may read /metrics from anywhere; unset: loopback only",
    "LOG_FORMAT": "text, or json (one JSON object a line on stderr, with request ids)",
    "LOG_LEVEL": "the root log level in json mode",
    "RETENTION_EVENT_PAYLOAD_DAYS": "days raw event payloads keep personal fields the investor no longer has (0: keep)",
    "RETENTION_MESSAGE_BODY_DAYS": "days finished messages keep their bodies (0: keep)",
    "RETENTION_JOB_SECONDS": "how often the scheduler's data-retention job runs",
    "RETENTION_BATCH_SIZE": "rows one retention transaction takes at most",
    "RETENTION_MAX_BATCHES": "transactions one retention run makes at most for each kind; the next run takes the rest",
}

# Read by deploy/gunicorn.conf.py only (the app never sees them).
DEPLOY: dict[str, str] = {
    "BIND": "gunicorn: address:port to listen on (default 127.0.0.1:8000)",
    "WEB_WORKERS": "gunicorn: worker processes (default 2 × CPUs + 1, at most 8)",
    "WEB_THREADS": "gunicorn: threads per worker process (default 4)",
    "WEB_TIMEOUT": "gunicorn: seconds a request may take before its worker is restarted (default 60)",
    "GRACEFUL_TIMEOUT": "gunicorn: seconds in-flight requests get to finish on SIGTERM (default 30)",
    "WEB_ACCESS_LOG": "gunicorn: 1 writes an access line per request to stdout (default off: the proxy logs them)",
}

_FAMILIES = ("REFERRAL_", "CRM_", "ECONOMICS_")  # from_env reads every Config key of these families


@dataclass(frozen=True, slots=True)
class Variable:
    """One environment variable: its full name, its default (as text; empty: none) and what it is for."""

    name: str
    default: str
    about: str
    group: str


def _default(key: str) -> str:
    value = getattr(Config, key, None)
    if value is None or isinstance(value, dict):
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def variables() -> list[Variable]:
    """Return every GROWTH_* variable the product reads, grouped for the example environment file."""
    found = [Variable(PREFIX + k, _default(k) if k != "INSTANCE_PATH" else "", about, "core")
             for k, about in _CORE.items()]
    found[found.index(next(v for v in found if v.name == "GROWTH_COOKIE_SECURE"))] = Variable(
        "GROWTH_COOKIE_SECURE", _default("SESSION_COOKIE_SECURE"), _CORE["COOKIE_SECURE"], "core")
    found += [Variable(PREFIX + k, _default(k), "", "rules") for k in sorted(dir(Config))
              if k.isupper() and k.startswith(_FAMILIES)]
    found += [Variable(s.env, s.default, str(s.label), "channels") for s in SETTINGS]
    found += [Variable(PREFIX + k, "", about, "deploy") for k, about in DEPLOY.items()]
    return found


def names() -> set[str]:
    """Return the names of every GROWTH_* variable the product reads."""
    return {v.name for v in variables()}


_GROUPS = {
    "core": "Core: database, secrets, URLs, processes",
    "rules": "Business-rule defaults (the settings pages may override them)",
    "channels": "Message channels (channels/settings.py; the channel settings page may override the editable ones)",
    "deploy": "Deployment profile: read by deploy/gunicorn.conf.py only",
}
# Set in the example (the rest are commented out at their defaults): what a deployment must decide.
_EXAMPLE_VALUES = {"GROWTH_SECRET_KEY": "", "GROWTH_DATA_KEYS": "", "GROWTH_WEBHOOK_SECRET": "",
                   "GROWTH_PUBLIC_BASE_URL": "https://growth.example.com", "GROWTH_PROXY_COUNT": "1",
                   "GROWTH_COOKIE_SECURE": "true", "GROWTH_BACKGROUND_WORK": "false"}


def example_text() -> str:
    """Return deploy/growth.env.example: every variable with what it is for, the ones to decide uncommented."""
    lines = ["# Every GROWTH_* variable the product reads (growth/envvars.py; a test keeps this file complete).",
             "# Copy to growth.env (compose) or /etc/growth/growth.env (systemd), chmod 600, fill in the first block.",
             "# Commented lines show the default; uncomment to change. `growth check` validates the result.",
             "# GROWTH_DATABASE_URL, GROWTH_REDIS_URL and GROWTH_INSTANCE_PATH are set by deploy/compose.yaml;",
             "# set them here for systemd.", ""]
    found = variables()
    for group, title in _GROUPS.items():
        lines.append(f"## {title}")
        for v in (v for v in found if v.group == group):
            if v.about:
                lines.append(f"# {v.about}")
            value = _EXAMPLE_VALUES.get(v.name)
            lines.append(f"# {v.name}={v.default}" if value is None else f"{v.name}={value}")
        lines.append("")
    return "\n".join(lines)
