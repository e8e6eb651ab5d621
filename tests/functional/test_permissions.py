"""The route/permission matrix: every route is declared, refuses strangers, and answers each role as granted.

The matrix is built from `app.url_map`, so routes added later are covered without touching this file.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from flask import Flask
from werkzeug.routing import Rule
from werkzeug.routing.converters import AnyConverter, FloatConverter, IntegerConverter, UUIDConverter

from growth.auth.permissions import ROLE_PERMISSIONS, Permission, Role, role_has
from growth.db import get_db
from tests.factories import PASSWORD, make_user

# Framework routes that serve files and carry no decorator of ours.
FRAMEWORK_PUBLIC = {"static", "bootstrap.static"}
# Routes a stranger must reach; anything else public is someone's deliberate @public.
EXPECTED_PUBLIC = {"auth.login", "auth.set_language"}
# Routes that must never be public, whatever else changes.
EXPECTED_PROTECTED = {
    "home.index": Permission.HOME,
    "auth.logout": Permission.HOME,
    "auth.users": Permission.USERS_MANAGE,
    "auth.change_role": Permission.USERS_MANAGE,
    "auth.toggle_active": Permission.USERS_MANAGE,
    "auth.tokens": Permission.TOKENS_OWN,
    "auth.revoke_token": Permission.TOKENS_OWN,
    "audit.index": Permission.AUDIT_VIEW,
    "audit.export": Permission.AUDIT_VIEW,
}
# Ids that match no row, so an allowed request exercises the view without changing real data.
MISSING_ID = 987654


@dataclass(frozen=True)
class Call:
    """One method on one route, with a URL that routes back to it."""

    endpoint: str
    method: str
    url: str
    permission: Permission | None

    @property
    def is_api(self) -> bool:
        return self.url.startswith("/api/")

    def __str__(self) -> str:
        return f"{self.method} {self.url} ({self.endpoint})"


def _dummy(converter: object, attempt: int) -> object:
    if isinstance(converter, IntegerConverter):
        return MISSING_ID + attempt
    if isinstance(converter, FloatConverter):
        return float(MISSING_ID + attempt)
    if isinstance(converter, UUIDConverter):
        return uuid.UUID(int=MISSING_ID + attempt)
    if isinstance(converter, AnyConverter):
        return sorted(converter.items)[attempt % len(converter.items)]
    return "x" if attempt == 0 else f"x-probe-{attempt}"


def _url_for_rule(app: Flask, rule: Rule, method: str) -> str:
    """Build a URL for a rule with dummy values, making sure it routes back to the same endpoint."""
    adapter = app.url_map.bind("localhost")
    for attempt in range(3):
        values = {name: _dummy(conv, attempt) for name, conv in rule._converters.items()}
        built = rule.build(values, append_unknown=False)
        assert built is not None, f"cannot build {rule.rule}"
        url = built[1]
        endpoint, _args = adapter.match(url, method=method)
        if endpoint == rule.endpoint:
            return url
    raise AssertionError(f"no dummy URL for {rule.rule} routes back to {rule.endpoint}")


def _is_public(app: Flask, endpoint: str) -> bool:
    return endpoint in FRAMEWORK_PUBLIC or bool(getattr(app.view_functions[endpoint], "is_public", False))


def _calls(app: Flask) -> Iterator[Call]:
    """Yield every non-public route and method of the app."""
    for rule in app.url_map.iter_rules():
        if _is_public(app, rule.endpoint):
            continue
        permission = getattr(app.view_functions[rule.endpoint], "required_permission", None)
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            yield Call(rule.endpoint, method, _url_for_rule(app, rule, method), permission)


def _send(client, call: Call, **kwargs):  # type: ignore[no-untyped-def]
    return client.open(call.url, method=call.method, **kwargs)


def test_every_route_is_declared_public_or_needs_a_permission(app):
    undeclared = []
    for endpoint, view in app.view_functions.items():
        if endpoint in FRAMEWORK_PUBLIC:
            continue
        public = bool(getattr(view, "is_public", False))
        permission = getattr(view, "required_permission", None)
        if public == (permission is not None):  # neither, or both (ambiguous)
            undeclared.append(endpoint)
        elif permission is not None:
            assert isinstance(permission, Permission), f"{endpoint}: {permission!r} is not a Permission"
    assert undeclared == [], f"declare these views with @public or @require(...): {undeclared}"


def test_the_expected_public_routes_are_public_and_the_sensitive_ones_are_not(app):
    public = {endpoint for endpoint in app.view_functions if _is_public(app, endpoint)}
    assert public >= EXPECTED_PUBLIC
    for endpoint, permission in EXPECTED_PROTECTED.items():
        assert endpoint not in public
        assert app.view_functions[endpoint].required_permission == permission


def test_the_matrix_covers_every_route_of_the_app(app):
    calls = list(_calls(app))
    covered = {call.endpoint for call in calls}
    expected = {e for e in app.view_functions if not _is_public(app, e)}
    assert covered == expected
    assert set(EXPECTED_PROTECTED) <= covered


def test_an_undeclared_view_is_refused_even_to_an_admin(app, client, login):
    @app.route("/undeclared-probe")
    def undeclared_probe():  # type: ignore[no-untyped-def]
        return "secret"

    anonymous = client.get("/undeclared-probe")
    assert anonymous.status_code == 302
    login("admin")
    response = client.get("/undeclared-probe")
    assert response.status_code == 403
    assert "secret" not in response.get_data(as_text=True)


def test_every_protected_route_refuses_an_anonymous_visitor(app, client):
    failures = []
    for call in _calls(app):
        response = _send(client, call)
        if call.is_api:
            ok = response.status_code == 401 and response.is_json and "error" in response.get_json()
        else:
            ok = response.status_code == 302 and response.headers["Location"].startswith("/login")
        if not ok:
            failures.append(f"{call} -> {response.status_code} {response.headers.get('Location', '')}")
    assert failures == []


def test_an_anonymous_visitor_is_sent_back_where_they_were_going_after_sign_in(client):
    response = client.get("/admin/audit/?action=auth")
    assert response.status_code == 302
    assert response.headers["Location"] == "/login?next=/admin/audit/?action%3Dauth"


def _signed_in_client(app: Flask, role: Role):  # type: ignore[no-untyped-def]
    with get_db(app).session_scope(write=True) as s:
        user = make_user(s, role=role.value)
    client = app.test_client()
    response = client.post("/login", data={"email": user.email, "password": PASSWORD})
    assert response.status_code == 302
    return client


def _bearer(app: Flask, role: Role) -> dict[str, str]:
    from tests.factories import make_token

    with get_db(app).session_scope(write=True) as s:
        return {"Authorization": f"Bearer {make_token(s, role=role.value)}"}


def _still_signed_in(client) -> bool:  # type: ignore[no-untyped-def]
    return client.get("/").status_code == 200


@pytest.mark.parametrize("role", list(Role))
def test_each_role_gets_403_exactly_on_the_routes_it_is_not_granted(app, role):
    client = _signed_in_client(app, role)
    token = _bearer(app, role)
    failures = []
    for call in _calls(app):
        # Cookie sessions may not write to the API, so API writes are made the way programs make them.
        if call.is_api and call.method != "GET":
            response = _send(app.test_client(), call, headers=token)  # no cookie: the token is the caller
        else:
            response = _send(client, call)
        granted = call.permission is not None and role_has(role, call.permission)
        if not granted and response.status_code != 403:
            failures.append(f"{call}: {role} lacks {call.permission} but got {response.status_code}")
        if granted and (response.status_code == 403 or response.status_code >= 500):
            failures.append(f"{call}: {role} has {call.permission} but got {response.status_code}")
        if call.method != "GET" and not _still_signed_in(client):
            client = _signed_in_client(app, role)  # the call signed us out (logout, role change ...)
    assert failures == []


def test_every_role_is_granted_the_home_page_and_only_the_admin_everything():
    for role in Role:
        assert Permission.HOME in ROLE_PERMISSIONS[role]
    assert ROLE_PERMISSIONS[Role.ADMIN] == frozenset(Permission)
    for role in set(Role) - {Role.ADMIN}:
        assert Permission.USERS_MANAGE not in ROLE_PERMISSIONS[role]
        assert Permission.AUDIT_VIEW not in ROLE_PERMISSIONS[role]


def test_an_unknown_role_is_granted_nothing():
    assert not any(role_has("superuser", permission) for permission in Permission)


def test_an_api_write_with_a_cookie_session_is_refused_but_a_token_may_make_it(app, client, login):
    from growth.auth.permissions import require

    @app.route("/api/v1/_probe", methods=["POST"])
    @require(Permission.HOME)
    def api_probe():  # type: ignore[no-untyped-def]
        return {"ok": True}

    token = _bearer(app, Role.ANALYST)
    login("analyst")
    assert client.post("/api/v1/_probe").status_code == 403
    by_token = app.test_client().post("/api/v1/_probe", headers=token)
    assert by_token.status_code == 200
    assert by_token.get_json() == {"ok": True}
