"""Choosing English turns the interface English; Chinese stays the default."""

from __future__ import annotations

import re

from growth.db import get_db
from tests.factories import PASSWORD, make_user

CJK = re.compile(r"[\u3000-\u303f\u4e00-\u9fff\uff00-\uffef]")
# The language menu names each language in itself, so "中文" stays Chinese in every locale.
LANGUAGE_ENTRY = re.compile(r"(<a [^>]*>)中文(</a>)")


def _chinese_left(html: str) -> list[str]:
    """Return the lines of a page that still contain Chinese, apart from the language menu's "中文"."""
    return [line.strip() for line in LANGUAGE_ENTRY.sub(r"\1\2", html).splitlines() if CJK.search(line)]


def _part(html: str, start: str, end: str) -> str:
    begin = html.index(start)
    return html[begin:html.index(end, begin) + len(end)]


def test_the_sign_in_page_is_english_after_choosing_english(client):
    client.get("/lang/en")
    html = client.get("/login").get_data(as_text=True)

    assert '<html lang="en">' in html
    assert "<title>Sign in · Investor Growth Platform</title>" in html
    assert 'id="login-submit">Sign in</button>' in html
    assert ">Email</label>" in html and ">Password</label>" in html
    assert "Investing involves risk. Please invest prudently." in html
    assert _chinese_left(html) == []


def test_a_failed_sign_in_is_explained_in_english(client):
    client.get("/lang/en")
    response = client.post("/login", data={"email": "nobody@example.com", "password": "wrong password"})
    html = response.get_data(as_text=True)

    assert "Incorrect email or password." in html
    assert _chinese_left(html) == []


def test_the_navigation_of_a_signed_in_page_is_english(client, login):
    user = login("admin")
    client.get("/lang/en")
    html = client.get("/").get_data(as_text=True)

    nav = _part(html, '<nav class="navbar', "</nav>")
    assert ">Audit log</a>" in nav and ">Staff accounts</a>" in nav
    assert 'id="logout">Sign out</button>' in nav
    assert user.email in nav
    assert _chinese_left(nav) == []
    assert _chinese_left(_part(html, "<footer", "</footer>")) == []


def test_chinese_is_the_default_and_can_be_chosen_back(client):
    html = client.get("/login").get_data(as_text=True)
    assert '<html lang="zh-CN">' in html and 'id="login-submit">登录</button>' in html

    client.get("/lang/en")
    assert "Sign in" in client.get("/login").get_data(as_text=True)

    client.get("/lang/zh_CN")
    html = client.get("/login").get_data(as_text=True)
    assert 'id="login-submit">登录</button>' in html
    assert "Sign in" not in html


def test_the_english_choice_survives_signing_in(app, client):
    with get_db(app).session_scope(write=True) as s:
        user = make_user(s, role="analyst")
    client.get("/lang/en")
    response = client.post("/login", data={"email": user.email, "password": PASSWORD}, follow_redirects=True)

    html = response.get_data(as_text=True)
    assert 'id="logout">Sign out</button>' in html
    assert _chinese_left(_part(html, '<nav class="navbar', "</nav>")) == []


def test_the_message_pages_are_english_after_choosing_english(app, client, login):
    from growth.investors.models import Investor
    from tests.factories import make_message

    with get_db(app).session_scope(write=True) as s:
        investor = Investor(platform_user_id="u_en", referral_code="EN0001")
        s.add(investor)
        s.flush()
        message_id = make_message(s, investor_id=investor.id, user_id="u_en", status="failed", attempts=2,
                                  error_code="isp.SYSTEM_ERROR", error="busy", content={"text": "Hello"}).id
        investor_id = investor.id
    login("admin")
    client.get("/lang/en")
    pages = ["/messages", "/messages?status=dead", f"/messages/{message_id}", "/messages/health",
             "/messages/settings", "/messages/templates", "/messages/templates/new", f"/investors/{investor_id}"]
    for url in pages:
        response = client.get(url)
        assert response.status_code == 200, url
        html = response.get_data(as_text=True)
        assert _chinese_left(html) == [], url
    assert "Delivery log" in client.get("/messages").get_data(as_text=True)
