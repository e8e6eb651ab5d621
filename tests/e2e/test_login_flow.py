"""Signing in and out in a real browser, in Chinese and in English, and being refused a page."""

from __future__ import annotations

import gettext
import re
from collections.abc import Callable

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import PageLog, Staff

pytestmark = pytest.mark.e2e

CJK = re.compile(r"[\u4e00-\u9fff]")


def _in_english(catalog: gettext.NullTranslations | None, source: str) -> str:
    """Return the English text for a Chinese source string, or the source while no catalog exists."""
    return catalog.gettext(source) if catalog is not None else source


def test_a_marketer_logs_in_sees_the_chinese_ui_switches_to_english_and_logs_out(
    page: Page, page_log: PageLog, staff: dict[str, Staff], english: gettext.NullTranslations | None,
) -> None:
    marketer = staff["marketer"]
    page.goto("/login")
    expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
    expect(page.get_by_role("heading", name="登录")).to_be_visible()
    expect(page).to_have_title(re.compile("^登录"))

    page.get_by_label("邮箱").fill(marketer.email)
    page.get_by_label("密码").fill(marketer.password)
    page.locator("#login-submit").click()

    expect(page).to_have_url(re.compile(r"/$"))
    expect(page.get_by_role("heading", name=f"您好，{marketer.name}")).to_be_visible()
    expect(page.locator("#usermenu")).to_have_text(marketer.name)
    expect(page.locator(".navbar-brand")).to_have_text("投资人增长平台")
    expect(page.locator("#langmenu")).to_have_text("中文")
    for label in page.locator("#mainnav .navbar-nav.me-auto .nav-link").all_inner_texts():
        assert CJK.search(label), f"nav label {label!r} is not Chinese"
    # The marketer's menu is built from her role: staff administration is not in it.
    expect(page.locator("#mainnav").get_by_role("link", name="员工账号")).to_have_count(0)

    page.locator("#langmenu").click()
    page.locator("#lang-en").click()

    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page).to_have_url(re.compile(r"/$"))
    expect(page.locator("#langmenu")).to_have_text("English")
    if english is not None:
        expect(page.locator(".navbar-brand")).to_have_text(_in_english(english, "投资人增长平台"))
        page.locator("#usermenu").click()
        expect(page.locator("#logout")).to_have_text(_in_english(english, "退出登录"))
        assert not CJK.search(page.locator("#logout").inner_text()), "the sign-out label is still Chinese"
    else:
        page.locator("#usermenu").click()

    page.locator("#logout").click()

    expect(page).to_have_url(re.compile(r"/login$"))
    expect(page.locator(".alert-info")).to_contain_text(_in_english(english, "您已安全退出。"))
    expect(page.locator("#usermenu")).to_have_count(0)
    # The language chosen before signing out is kept for the sign-in page.
    expect(page.locator("html")).to_have_attribute("lang", "en")

    local = [u for u in page_log.requests if "/bootstrap/static/" in u]
    assert any(u.endswith(".css") for u in local) and any(u.endswith(".js") for u in local), page_log.requests
    assert page_log.foreign_requests() == []


def test_an_agent_cannot_open_the_staff_admin_page(
    page: Page, page_log: PageLog, staff: dict[str, Staff], sign_in: Callable[[Staff], None],
) -> None:
    page_log.allow(403, "/admin/users")
    sign_in(staff["agent"])
    expect(page.locator("#mainnav").get_by_role("link", name="员工账号")).to_have_count(0)

    response = page.goto("/admin/users")

    assert response is not None and response.status == 403
    expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
    expect(page.get_by_role("heading", name="没有权限")).to_be_visible()
    expect(page.get_by_text("您的角色无权访问此页面")).to_be_visible()
    expect(page.get_by_role("table")).to_have_count(0)  # no staff list leaked into the refusal
    page.get_by_role("link", name="返回首页").click()
    expect(page).to_have_url(re.compile(r"/$"))
    expect(page.get_by_role("heading", name=f"您好，{staff['agent'].name}")).to_be_visible()


def test_an_admin_can_open_the_staff_admin_page(
    page: Page, staff: dict[str, Staff], sign_in: Callable[[Staff], None],
) -> None:
    sign_in(staff["admin"])
    page.locator("#nav-system").click()  # staff accounts sit in the "系统" menu
    page.locator("#mainnav").get_by_role("link", name="员工账号").click()

    expect(page).to_have_url(re.compile(r"/admin/users$"))
    expect(page.get_by_role("heading", name="没有权限")).to_have_count(0)
    expect(page.get_by_text(staff["agent"].email).first).to_be_visible()
