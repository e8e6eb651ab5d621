"""gunicorn settings for the PostgreSQL profile: `gunicorn -c deploy/gunicorn.conf.py wsgi:app`.

Every value can be set from the environment (deploy/growth.env.example lists them). Background work never
runs here: `growth worker` processes do it (GROWTH_BACKGROUND_WORK only concerns `growth serve`).
"""

import multiprocessing
import os

_env = os.environ.get


def _int(name: str, default: int) -> int:
    value = _env(name, "").strip()
    return int(value) if value else default


bind = [b.strip() for b in _env("GROWTH_BIND", "127.0.0.1:8000").split(",") if b.strip()]
# Threads serve the I/O-bound pages and ingest; processes use the cores. Each worker holds its own
# SQLAlchemy pool, so workers × threads is the most database connections the web tier opens per host.
workers = _int("GROWTH_WEB_WORKERS", min(2 * multiprocessing.cpu_count() + 1, 8))
worker_class = "gthread"
threads = _int("GROWTH_WEB_THREADS", 4)
timeout = _int("GROWTH_WEB_TIMEOUT", 60)  # a worker silent this long is restarted (exports are the slowest pages)
# SIGTERM: stop accepting, let in-flight requests finish for this long, then exit 0. systemd's TimeoutStopSec
# and compose's stop_grace_period are longer (deploy/systemd/growth-web.service, deploy/compose.yaml).
graceful_timeout = _int("GROWTH_GRACEFUL_TIMEOUT", 30)
keepalive = 5
# Recycle workers now and then (a slow leak in a library cannot grow for ever), but rarely: a new worker imports
# and builds the app (≈ 1.5 s of CPU) while the others carry its share. At 10,000 every worker restarted each
# minute or two at 1,000 req/s, and those dips decided the load test's p99 (bench/README.md, issue 13).
max_requests = 100_000
max_requests_jitter = 10_000
# The heartbeat file on a RAM disk: a worker blocked on a slow disk is not mistaken for a hung one.
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None  # noqa: S108 (a heartbeat, no data)

# Forwarded headers are the app's business alone: it trusts exactly GROWTH_PROXY_COUNT proxies (ProxyFix for
# X-Forwarded-For/-Proto/-Host). gunicorn must not apply its own rule on top (by default it believes
# X-Forwarded-Proto from 127.0.0.1), or a client could claim HTTPS where no proxy vouches for it.
forwarded_allow_ips = ""
secure_scheme_headers: dict[str, str] = {}
proxy_protocol = False

# Access log: off unless GROWTH_WEB_ACCESS_LOG is on. The TLS proxy in front logs every request, and /metrics
# counts and times them by endpoint; a second log line per request cost ≈ 0.1 ms of CPU, and at 1,000 event
# requests/s on 2 cores that decided the load test's p99 (bench/README.md, issue 13). When on: method, path
# without the query string (it can carry phone numbers or tokens), status, size and duration; no client address.
accesslog = "-" if _env("GROWTH_WEB_ACCESS_LOG", "").strip().lower() in ("1", "on", "true", "yes") else None
errorlog = "-"
loglevel = "info"
access_log_format = '%(t)s "%(m)s %(U)s %(H)s" %(s)s %(B)s %(M)sms'


def child_exit(server: object, worker: object) -> None:
    """Drop a dead worker's live gauges from the merged /metrics (PROMETHEUS_MULTIPROC_DIR, docs/operations.md)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)  # type: ignore[attr-defined]
