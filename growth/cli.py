"""The `growth` command: database, staff accounts, tokens, serving, background work, demo data."""

from __future__ import annotations

import os
import signal
import threading
from typing import Any

import click
from flask import Flask, current_app
from flask.cli import FlaskGroup, with_appcontext

from growth.auth.permissions import ROLE_VALUES
from growth.errors import DomainError


def _create_app(**overrides: Any) -> Flask:
    from growth.app import create_app
    from growth.config import ConfigError

    try:
        return create_app(overrides or None)
    except ConfigError as err:  # a setting to fix, not a crash: say which, exit 1
        raise click.ClickException(str(err)) from None


@click.group(cls=FlaskGroup, create_app=_create_app, add_version_option=False, load_dotenv=False)
def cli() -> None:
    """Investor-growth platform: run `growth serve` to start, `growth demo` for demo data."""


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="growth")


def _session_scope(app: Flask | None = None) -> Any:
    from growth.db import get_db

    return get_db(app).session_scope(write=True)


def _fail(err: DomainError) -> None:
    raise click.ClickException(err.message)


# --- database -------------------------------------------------------------------------------------
@cli.group()
def db() -> None:
    """Manage the database schema."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True)
@with_appcontext
def db_upgrade(revision: str) -> None:
    """Apply the schema migrations."""
    from growth.migrate import upgrade

    upgrade(current_app.config["DATABASE_URL"], revision)
    click.echo(f"database at {revision}: {_redacted(current_app.config['DATABASE_URL'])}")


def _redacted(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def ensure_schema(app: Flask) -> None:
    """Create the schema of an empty database (and keep the embedded SQLite one current)."""
    from growth.migrate import is_current, is_empty, upgrade

    url = app.config["DATABASE_URL"]
    if is_empty(url) or (url.startswith("sqlite") and not is_current(url)):
        click.echo(f"migrating {_redacted(url)} …")
        upgrade(url)
    elif not is_current(url):
        click.echo("warning: the database schema is behind; run `growth db upgrade`", err=True)


# --- staff accounts -------------------------------------------------------------------------------
@cli.group()
def users() -> None:
    """Manage staff accounts."""


@users.command("create")
@click.argument("email")
@click.option("--role", required=True, type=click.Choice(ROLE_VALUES))
@click.option("--password", required=True, help="at least 10 characters")
@click.option("--name", default="")
@with_appcontext
def users_create(email: str, role: str, password: str, name: str) -> None:
    """Create a staff account."""
    from growth.auth.services import create_user

    try:
        with _session_scope() as session:
            user = create_user(email, role=role, password=password, name=name, session=session, by="cli")
            click.echo(f"created {user.email} ({user.role})")
    except DomainError as err:
        _fail(err)


@users.command("set-role")
@click.argument("email")
@click.argument("role", type=click.Choice(ROLE_VALUES))
@with_appcontext
def users_set_role(email: str, role: str) -> None:
    """Change a staff member's role."""
    from growth.auth.services import change_role, find_user

    try:
        with _session_scope() as session:
            change_role(find_user(email, session=session), role, session=session, by="cli")
            click.echo(f"{email}: role {role}")
    except DomainError as err:
        _fail(err)


@users.command("set-password")
@click.argument("email")
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True,
              help="at least 10 characters (asked for twice when not given)")
@with_appcontext
def users_set_password(email: str, password: str) -> None:
    """Set a staff member's password; their sessions end."""
    from growth.auth.services import find_user, set_password

    try:
        with _session_scope() as session:
            set_password(find_user(email, session=session), password, session=session, by="cli")
            click.echo(f"{email}: password changed")
    except DomainError as err:
        _fail(err)


@users.command("list")
@with_appcontext
def users_list() -> None:
    """List staff accounts."""
    from growth.auth.services import list_users

    with _session_scope() as session:
        for user in list_users(session=session):
            click.echo(f"{user.email:40} {user.role:10} {'active' if user.active else 'disabled'}")


# --- API tokens -----------------------------------------------------------------------------------
@cli.group()
def tokens() -> None:
    """Manage API tokens."""


@tokens.command("create")
@click.argument("email")
@click.option("--name", default="cli", show_default=True)
@click.option("--expires-days", type=click.IntRange(1, 3650), default=None,
              help="the token stops working after this many days (default: until revoked)")
@with_appcontext
def tokens_create(email: str, name: str, expires_days: int | None) -> None:
    """Create an API token for a staff member and print it (shown only once)."""
    from datetime import timedelta

    from growth.auth.services import create_token, find_user

    try:
        with _session_scope() as session:
            _token, plain = create_token(find_user(email, session=session), name, session=session,
                                         expires_in=timedelta(days=expires_days) if expires_days else None)
    except DomainError as err:
        _fail(err)
    click.echo(plain)


@tokens.command("list")
@click.option("--email", default=None)
@with_appcontext
def tokens_list(email: str | None) -> None:
    """List API tokens (never their secrets)."""
    from growth.auth.services import find_user, list_tokens
    from growth.timeutil import utcnow

    with _session_scope() as session:
        user = find_user(email, session=session) if email else None
        now = utcnow()
        for t in list_tokens(session=session, user=user):
            state = "revoked" if t.revoked_at else "expired" if t.expires_at and t.expires_at <= now else "active"
            used = f"{t.last_used_at:%Y-%m-%d %H:%M}Z" if t.last_used_at else "never"
            expires = f"{t.expires_at:%Y-%m-%d %H:%M}Z" if t.expires_at else "never"
            click.echo(f"{t.id:6} {t.user.email:32} {t.name:20} {t.prefix}…  {state:8} "
                       f"last used {used:18} expires {expires}")


@tokens.command("revoke")
@click.argument("token_id", type=int)
@with_appcontext
def tokens_revoke(token_id: int) -> None:
    """Revoke an API token by id (see `growth tokens list`)."""
    from growth.auth.services import revoke_token

    try:
        with _session_scope() as session:
            revoke_token(token_id, session=session)
    except DomainError as err:
        _fail(err)
    click.echo(f"revoked token {token_id}")


# --- serving --------------------------------------------------------------------------------------
def _raise_exit(*_args: Any) -> None:
    raise SystemExit(0)


@cli.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@click.option("--threads", default=8, show_default=True, type=int)
@click.option("--secure-cookies/--no-secure-cookies", default=False,
              help="mark cookies Secure (only when users reach it over HTTPS)")
@click.option("--no-background", is_flag=True,
              help="serve web requests only (workers run elsewhere); same as GROWTH_BACKGROUND_WORK=false")
def serve(host: str, port: int, threads: int, secure_cookies: bool, no_background: bool) -> None:
    """Run the web app, and the background work in a supervised `growth worker` child (the embedded default)."""
    from waitress import serve as waitress_serve

    from growth.background import WorkerSupervisor

    app = _create_app(SESSION_COOKIE_SECURE=secure_cookies, PUBLIC_BASE_URL=f"http://{host}:{port}")
    ensure_schema(app)
    supervisor = None
    if app.config["BACKGROUND_WORK"] and not no_background:
        # The child builds its own app from the environment: hand it what this command decided.
        env = dict(os.environ, GROWTH_PUBLIC_BASE_URL=app.config["PUBLIC_BASE_URL"])
        # The child's own graceful stop (WORKER_STOP_SECONDS) comes first; SIGKILL only if it overruns that.
        supervisor = WorkerSupervisor(env=env, stop_timeout=float(app.config["WORKER_STOP_SECONDS"]) + 10)
        supervisor.start()
        click.echo(f"background worker: `growth worker` child process, pid {supervisor.pid}")
    else:
        click.echo("background work is off here: run `growth worker` elsewhere")
    click.echo(f"growth serving on http://{host}:{port}/  (Ctrl+C to stop)")
    signal.signal(signal.SIGTERM, _raise_exit)
    try:
        waitress_serve(app, host=host, port=port, threads=threads, max_request_body_size=16 * 1024 * 1024,
                       ident="growth")
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        if supervisor is not None:
            supervisor.stop()


@cli.command("worker")
@click.option("--watch-fd", type=int, default=None, hidden=True,
              help="stop when this pipe closes (`growth serve` passes it to its child)")
@click.option("--predecessor-pid", type=int, default=None, hidden=True,
              help="a worker of this host that died: free its leases at once (`growth serve` passes it)")
def worker(watch_fd: int | None, predecessor_pid: int | None) -> None:
    """Run the background work only (event processing, scheduler, delivery), for scale-out."""
    from growth.background import BackgroundRunner, watch_parent, workers_for
    from growth.locks import release_dead_holder

    app = _create_app()
    ensure_schema(app)
    if predecessor_pid is not None:
        with _session_scope(app) as session:
            freed = release_dead_holder(predecessor_pid, session=session)
        if freed:
            click.echo(f"took over {freed} lease(s) of the worker that died (pid {predecessor_pid})")
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_args: stop.set())
    if watch_fd is not None:
        watch_parent(watch_fd, stop)
    runner = BackgroundRunner(app, dict(workers_for(app)), stop=stop)
    runner.start()
    names = ", ".join(runner.workers) or "none"
    click.echo(f"growth worker running: {names}  (pid {os.getpid()}; Ctrl+C to stop)")
    while not stop.wait(1.0):  # woken by a signal handler or the parent watch
        pass
    # Graceful: each thread finishes its unit of work and gives back its leases; delivery records what it sent and
    # hands back the messages it claimed but had not sent (channels/delivery.py), so nothing waits for a lease.
    runner.shutdown(timeout=float(app.config["WORKER_STOP_SECONDS"]))
    click.echo("growth worker stopped")


# --- demo data ------------------------------------------------------------------------------------
@cli.command("demo")
@click.option("--investors", default=2000, show_default=True, type=click.IntRange(1, 200_000))
@click.option("--seed", default=2026, show_default=True, type=int)
@with_appcontext
def demo(investors: int, seed: int) -> None:
    """Load demo staff, channels, links, costs and events (sent through the real events API), then campaigns."""
    from campaigns.demo import load_campaigns
    from growth.demo import load_demo
    from growth.demodata import DEMO_STAFF

    app = current_app._get_current_object()  # type: ignore[attr-defined]
    ensure_schema(app)
    with click.progressbar(length=1, label="sending demo events", show_pos=True) as bar:

        def advance(sent: int, total: int) -> None:
            bar.length = total  # known once the events are generated
            bar.update(sent)

        summary = load_demo(app, investors=investors, seed=seed, progress=advance)
    if summary.already_loaded:
        click.echo("demo events were loaded before; staff, channels and costs are up to date")
    else:
        click.echo(f"sent {summary.events_sent:,} events ({summary.events_accepted:,} accepted), "
                   f"processed {summary.events_processed:,}; a week of messages on the console provider "
                   f"({summary.messages_written:,}); a week of CRM work by the demo agents "
                   f"({summary.crm_calls:,} calls)")
    campaigns = load_campaigns(app, seed=seed)
    if not campaigns.already_loaded:
        states = ", ".join(f"{n} {status}" for status, n in sorted(campaigns.by_status.items()))
        click.echo(f"{campaigns.campaigns} demo campaigns ({states}) with {campaigns.members:,} members from real runs")
    click.echo("\nsign in at /login with one of these demo accounts:")
    for member in DEMO_STAFF:
        click.echo(f"  {member.role:9} {member.email:32} {member.password}")


# --- dashboards -----------------------------------------------------------------------------------
@cli.group()
def dashboards() -> None:
    """Work with what the dashboards maintain."""


@dashboards.command("rebuild")
@with_appcontext
def dashboards_rebuild() -> None:
    """Rebuild the daily cohort rollup from investors and investments (after a restore; the worker keeps it fresh)."""
    from dashboards import rollup

    app = current_app._get_current_object()  # type: ignore[attr-defined]
    with _session_scope(app) as session:
        total = rollup.registration_day_count(session)
    with click.progressbar(length=total, label="rebuilding registration days", show_pos=True) as bar:
        done = rollup.rebuild(session_scope=lambda: _session_scope(app), progress=bar.update)
    click.echo(f"rebuilt {done:,} registration days")


# --- events ---------------------------------------------------------------------------------------
@cli.group()
def events() -> None:
    """Work with the platform event log."""


@events.command("replay")
@click.option("--yes", is_flag=True, help="do not ask for confirmation")
@with_appcontext
def events_replay(yes: bool) -> None:
    """Rebuild every registered projection (investors, attribution, referrals, consent …) from the event log."""
    from growth.audit.services import record
    from growth.events.processor import drain, reset_projections
    from growth.events.services import log_status
    from growth.projections import projections_of

    app = current_app._get_current_object()  # type: ignore[attr-defined]
    with _session_scope(app) as session:
        total = log_status(session=session).total
    if not yes:
        click.confirm(f"Rebuild all projections from {total:,} events? Background processors should be stopped.",
                      abort=True)
    with _session_scope(app) as session:
        reset_projections(session=session, projections=projections_of(app))
        record("events.replayed", session=session, actor="cli", details={"events": total})
    with click.progressbar(length=total, label="replaying", show_pos=True) as bar:
        done = drain(app, emit=False, progress=bar.update)
    click.echo(f"replayed {done:,} events")


@events.command("process")
@with_appcontext
def events_process() -> None:
    """Process every pending event now, then exit."""
    from growth.events.processor import drain
    from growth.events.services import log_status

    app = current_app._get_current_object()  # type: ignore[attr-defined]
    with _session_scope(app) as session:
        pending = log_status(session=session).pending
    with click.progressbar(length=pending, label="processing", show_pos=True) as bar:
        done = drain(app, progress=bar.update)
    click.echo(f"processed {done:,} events")


# --- campaigns ------------------------------------------------------------------------------------
@cli.group()
def campaigns() -> None:
    """Export campaigns as YAML and import them as drafts."""


def _invalid(err: DomainError) -> click.ClickException:
    from growth.errors import Invalid

    lines = [str(err.message)]
    if isinstance(err, Invalid):
        lines += [f"  {p.path or '(file)'}: {p.code}: {p.message}" for p in err.problems]
    return click.ClickException("\n".join(lines))


@campaigns.command("export")
@click.argument("campaign_ids", nargs=-1, type=int)
@with_appcontext
def campaigns_export(campaign_ids: tuple[int, ...]) -> None:
    """Print campaigns (all, or the ids given) as YAML: `growth campaigns export 3 7 > f.yaml`."""
    from campaigns.transfer import export_yaml

    with _session_scope() as session:
        try:
            click.echo(export_yaml(campaign_ids, session=session), nl=False)
        except DomainError as err:
            raise _invalid(err) from None


@campaigns.command("import")
@click.argument("file", type=click.File("r", encoding="utf-8"))
@click.option("--as", "as_email", help="the staff member the drafts are created by (they may not approve them)")
@with_appcontext
def campaigns_import(file: Any, as_email: str | None) -> None:
    """Create a draft for every campaign in a YAML file (all or none)."""
    from sqlalchemy import select

    from campaigns.transfer import import_yaml
    from growth.auth.models import StaffUser
    from growth.timeutil import utcnow

    with _session_scope() as session:
        actor_id = None
        if as_email:
            actor_id = session.scalar(select(StaffUser.id).where(StaffUser.email == as_email.strip().lower()))
            if actor_id is None:
                raise click.ClickException(f"no staff member {as_email}")
        try:
            created = import_yaml(file.read(), session=session, actor_id=actor_id, now=utcnow())
        except DomainError as err:
            raise _invalid(err) from None
        ids = [c.id for c in created]
    click.echo(f"created {len(ids)} draft(s): {', '.join(map(str, ids))}")


# --- investors: data protection (growth.privacy) ---------------------------------------------------
@cli.group()
def investors() -> None:
    """Data protection for one investor (PIPL)."""


@investors.command("erase")
@click.argument("user_id")
@click.option("--reason", required=True, help="why (a request's reference); recorded in the audit log")
@click.option("--yes", is_flag=True, help="do not ask for confirmation")
@with_appcontext
def investors_erase(user_id: str, reason: str, yes: bool) -> None:
    """Erase one investor's personal data everywhere (by platform user id); their numbers stay. Safe to repeat."""
    from growth.privacy.services import erase_investor, find_investor
    from growth.timeutil import utcnow

    app = current_app._get_current_object()  # type: ignore[attr-defined]
    with _session_scope(app) as session:
        try:
            investor = find_investor(user_id, session=session)
        except DomainError as err:
            _fail(err)
        already = investor.erased_at is not None
    if not yes:
        again = " It was erased before; this erases anything that came since." if already else ""
        click.confirm(f"Erase the personal data of investor {user_id} (phone, name, email, messages, notes, "
                      f"event payloads)? This cannot be undone.{again}", abort=True)
    with _session_scope(app) as session:
        try:
            done = erase_investor(user_id, session=session, reason=reason, now=utcnow(), actor="cli")
        except DomainError as err:
            _fail(err)
    counts = ", ".join(f"{k} {v}" for k, v in done.counts.items())
    click.echo(f"investor {user_id} erased{' again' if done.again else ''}: {counts}")
@cli.group()
def keys() -> None:
    """Data keys: personal data encrypted at rest (GROWTH_DATA_KEYS; docs/operations.md "Data keys")."""


@keys.command("new", with_appcontext=False)
@click.option("--id", "key_id", default=None, help="the key's id (default: k + today's date, e.g. k20261204)")
def keys_new(key_id: str | None) -> None:
    """Print a new data key to put first in GROWTH_DATA_KEYS (keep the old ones after it until `keys rotate`)."""
    from growth.crypto import DataKeyError, new_key
    from growth.timeutil import utcnow

    try:
        click.echo(new_key(key_id or f"k{utcnow():%Y%m%d}"))
    except DataKeyError as err:
        raise click.BadParameter(str(err), param_hint="--id") from err


@keys.command("status")
@with_appcontext
def keys_status() -> None:
    """Show how many encrypted values and search hashes each data key holds."""
    from growth.crypto import keyring
    from growth.privacy.keys import status

    ring = keyring()
    with _session_scope() as session:
        counts = status(session=session)
    click.echo(f"current key: {ring.current.id}; configured: {', '.join(ring.ids)}")
    stale = 0
    for column, by_key in counts.items():
        shown = ", ".join(f"{k} {n}" for k, n in sorted(by_key.items())) or "empty"
        click.echo(f"  {column:28} {shown}")
        stale += sum(n for k, n in by_key.items() if k != ring.current.id)
    click.echo("every value is under the current key" if not stale
               else f"{stale} values under older keys: run `growth keys rotate`")


@keys.command("rotate")
@click.option("--yes", is_flag=True, help="do not ask for confirmation")
@with_appcontext
def keys_rotate(yes: bool) -> None:
    """Re-encrypt every value and recompute every search hash under the current key (resumable, chunked)."""
    from growth.crypto import keyring
    from growth.privacy.keys import pending, rotate

    app = current_app._get_current_object()  # type: ignore[attr-defined]
    with _session_scope(app) as session:
        total = pending(session=session)
    if not total:
        click.echo(f"nothing to rotate: every value is under the current key ({keyring().current.id})")
        return
    if not yes:
        click.confirm(f"Rewrite {total} rows under data key {keyring().current.id}?", abort=True)
    with click.progressbar(length=total, label="rotating", show_pos=True) as bar:
        done = rotate(session_scope=lambda: _session_scope(app), progress=bar.update)
    click.echo(f"{done} rows rewritten under data key {keyring().current.id}; older keys may now leave "
           "GROWTH_DATA_KEYS")


# --- operations: `growth check`, `growth backup` (docs/operations.md) -------------------------------------
@cli.command("check", with_appcontext=False)  # it builds the app itself: a refused setting is a FAIL line
@click.option("--json", "as_json", is_flag=True, help="print the results as JSON (for scripts and monitoring)")
@click.option("--quiet", is_flag=True, help="print only warnings and failures")
@click.option("--timeout", default=5.0, show_default=True, type=click.FloatRange(0.1, 60),
              help="seconds each network check may take")
def check(as_json: bool, quiet: bool, timeout: float) -> None:
    """Validate the configuration and reach the database, Redis, SMTP, providers and webhook; exit 1 on a failure."""
    import orjson

    from growth.app import create_app
    from growth.checks import FAIL, WARN, Result, run_checks
    from growth.config import ConfigError
    from growth.db import get_db

    try:
        app = create_app()
    except (ConfigError, ValueError) as err:  # a setting the app refuses: the one failure worth reporting
        results = [Result("config", FAIL, str(err), "fix the variable named, then run `growth check` again")]
    else:
        try:
            results = run_checks(app, timeout=timeout)
        finally:
            get_db(app).dispose()
    failed = any(r.status == FAIL for r in results)
    if as_json:
        click.echo(orjson.dumps({"ok": not failed, "checks": [r.as_dict() for r in results]}).decode())
    else:
        for result in results:
            if not quiet or result.status in (WARN, FAIL):
                click.echo(result.line())
        if not quiet:
            click.echo("FAILED: fix the lines marked FAIL" if failed else "all checks passed")
    if failed:
        raise SystemExit(1)


@cli.command("backup")
@click.option("--output", "-o", default=None,
              help="file or folder to write (default: a timestamped file in the instance folder's backups/)")
@click.option("--print-command", is_flag=True, help="PostgreSQL: print the pg_dump command instead of running it")
@with_appcontext
def backup(output: str | None, print_command: bool) -> None:
    """Back up the live database: SQLite online backup + integrity check, or `pg_dump -Fc` on PostgreSQL."""
    from pathlib import Path

    from growth.backup import (
        BackupError,
        backup_postgresql,
        backup_sqlite,
        documented_command,
        sqlite_file,
        target_path,
    )

    url = current_app.config["DATABASE_URL"]
    kind = "sqlite" if url.startswith("sqlite") else "postgresql"
    target = target_path(output, kind, Path(current_app.instance_path) / "backups")
    try:
        if kind == "postgresql":
            if print_command:
                click.echo(documented_command(url, target))
                return
            click.echo(f"pg_dump -Fc {_redacted(url)} → {target} …")
            done = backup_postgresql(url, target)
        else:
            with click.progressbar(length=1, label="copying pages", show_pos=True) as bar:

                def advance(copied: int, total: int) -> None:
                    bar.length = total
                    bar.update(copied - bar.pos)

                done = backup_sqlite(sqlite_file(url), target, progress=advance)
    except BackupError as err:
        raise click.ClickException(str(err)) from None
    click.echo(f"backup written: {done.path} ({done.size:,} bytes; {done.check})")


if __name__ == "__main__":  # pragma: no cover
    main()
