"""The request guard: who is asking (session or bearer token), idle timeout, deny-by-default permissions."""

from __future__ import annotations

from flask import Flask, abort, current_app, flash, g, jsonify, redirect, request, session, url_for
from flask_babel import gettext as _
from flask_login import current_user, logout_user
from sqlalchemy.exc import OperationalError

from growth.auth.models import StaffUser
from growth.auth.permissions import Permission, role_has
from growth.auth.rules import token_needs_touch
from growth.auth.services import token_for, touch_token
from growth.db import request_session, short_write
from growth.extensions import csrf, login_manager
from growth.timeutil import utcnow

CSP = {
    "default-src": "'self'",
    "img-src": ["'self'", "data:"],
    "style-src": ["'self'", "'unsafe-inline'"],  # Plotly and Bootstrap set inline styles
    "script-src": "'self'",
    "object-src": "'none'",
    "base-uri": "'self'",
    "form-action": "'self'",
    "frame-ancestors": "'none'",
}


@login_manager.user_loader
def _load_user(ident: str) -> StaffUser | None:
    try:
        user_id, version = (int(part) for part in ident.split(":", 1))
    except ValueError:
        return None
    user = request_session().get(StaffUser, user_id)
    if user is None or not user.active or user.session_version != version:
        return None
    return user


@login_manager.request_loader
def _load_user_from_token(req) -> StaffUser | None:  # type: ignore[no-untyped-def]
    # Bearer tokens are for machines on the API only; elsewhere the header is ignored (the request is anonymous).
    if not req.path.startswith("/api/"):
        return None
    header = req.headers.get("Authorization", "")
    if not header.startswith("Bearer "):
        return None
    now = utcnow()
    token = token_for(header[7:].strip(), session=request_session(), now=now)
    if token is None:
        return None
    if token_needs_touch(token.last_used_at, now=now):
        # Its own short transaction: a reading request never holds the write lock (at most once a minute).
        try:
            with short_write() as writer:
                touch_token(token.id, session=writer, now=now)
        except OperationalError:  # the stamp is a convenience: a busy database must not fail the API call
            current_app.logger.warning("could not stamp the last use of API token %s", token.id, exc_info=True)
    g.token_auth = True
    return token.user


# What a user whose password was reset may still do: change it, sign out, pick a language.
PASSWORD_CHANGE_ALLOWS = frozenset({"auth.change_password", "auth.logout", "auth.set_language"})


def view_requirement(app: Flask, endpoint: str | None) -> Permission | str | None:
    """Return what an endpoint needs: a Permission, "public", or None (undeclared: refused)."""
    if endpoint is None:
        return None
    if endpoint == "static" or endpoint.startswith("bootstrap."):
        return "public"
    view = app.view_functions.get(endpoint)
    if view is None:
        return None
    if getattr(view, "is_public", False):
        return "public"
    return getattr(view, "required_permission", None)


def _refuse_anonymous():  # type: ignore[no-untyped-def]
    if request.path.startswith("/api/"):
        return jsonify({"error": "authentication required"}), 401
    return redirect(url_for("auth.login", next=request.full_path if request.query_string else request.path))


def init_security(app: Flask) -> None:
    """Install the guard that runs before every request."""
    # CSRF protects cookie sessions. /api/ refuses cookie-session writes (below) and takes bearer tokens,
    # which a browser never sends on its own, so the guard checks CSRF everywhere but there.
    app.config["WTF_CSRF_CHECK_DEFAULT"] = False

    @app.before_request
    def _guard():  # type: ignore[no-untyped-def]
        if request.endpoint is None:
            return None  # 404/405 are answered by the router
        if app.config["WTF_CSRF_ENABLED"] and not request.path.startswith("/api/"):
            csrf.protect(apply_exemptions=True)  # still honours @csrf.exempt
        need = view_requirement(app, request.endpoint)
        if need == "public":
            return None
        if not current_user.is_authenticated:  # loads the user: from the session, else a bearer token
            return _refuse_anonymous()
        if request.path.startswith("/api/") and request.method not in ("GET", "HEAD") and not g.get("token_auth"):
            abort(403)  # cookie sessions may only read the API; writes need a bearer token (no CSRF there)
        if not g.get("token_auth"):
            now = int(utcnow().timestamp())
            last = session.get("_seen")
            if last is not None and now - last > current_app.config["IDLE_TIMEOUT"].total_seconds():
                logout_user()
                session.clear()
                flash(_("长时间未操作，请重新登录。"), "warning")
                return _refuse_anonymous()
            session["_seen"] = now
        if current_user.must_change_password and request.endpoint not in PASSWORD_CHANGE_ALLOWS:
            # An administrator's reset: nothing else until the user has chosen their own password.
            if request.path.startswith("/api/"):
                return jsonify({"error": "password change required"}), 403
            return redirect(url_for("auth.change_password"))
        if not isinstance(need, Permission) or not role_has(current_user.role, need):
            abort(403)
        return None

    @app.after_request
    def _no_store(response):  # type: ignore[no-untyped-def]
        # Pages, JSON and CSV carry personal data: no browser or proxy may keep a copy. Public assets that
        # chose their own caching (static files, Plotly, Swagger UI) keep it.
        public_asset = view_requirement(app, request.endpoint) == "public" and "Cache-Control" in response.headers
        if request.endpoint not in ("static", "bootstrap.static") and not public_asset:
            response.headers["Cache-Control"] = "no-store"
        return response
