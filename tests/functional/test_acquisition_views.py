"""Channel pages, tracking links, the public short link /t/<code>, QR downloads and cost import/export."""

from __future__ import annotations

import io
import re
import struct
import zlib
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import func, select

from growth.acquisition import services
from growth.acquisition.models import AcquisitionChannel, ChannelCost, Click, TrackingLink
from growth.audit.models import AuditEntry
from growth.db import get_db
from growth.investors.models import Investment, Investor
from growth.timeutil import local_date, utcnow

CJK = re.compile(r"[\u3000-\u303f\u4e00-\u9fff\uff00-\uffef]")


@pytest.fixture
def seeded(app):
    """A channel with one link; returns (channel_id, link_id, link_code)."""
    with get_db(app).session_scope(write=True) as s:
        channel = services.create_channel(code="wdzj", name="网贷之家", kind="vertical", session=s)
        link = services.create_link(channel, name="首页横幅", landing_url="https://invest.example.com/lp?from=wdzj#top",
                                    utm={"utm_source": "wdzj", "utm_medium": "banner", "utm_campaign": "双十一"},
                                    session=s)
        return channel.id, link.id, link.code


def _count(app, model, *where):
    with get_db(app).session_scope() as s:
        return s.scalar(select(func.count()).select_from(model).where(*where))


# ---------------------------------------------------------------- channels


def test_a_marketer_creates_a_channel_and_lands_on_its_page(client, login, app):
    login("marketer")
    response = client.post("/acquisition/channels/new", data={"code": "baidu_sem", "name": "百度SEM", "kind": "sem",
                                                  "owner": "李娜", "notes": ""})
    assert response.status_code == 302
    page = client.get(response.headers["Location"])
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert "百度SEM" in text and "baidu_sem" in text and "搜索引擎SEM" in text
    assert _count(app, AuditEntry, AuditEntry.action == "channel.created") == 1


def test_a_duplicate_channel_code_is_shown_next_to_the_field_and_nothing_is_stored(client, login, app, seeded):
    login("marketer")
    response = client.post("/acquisition/channels/new", data={"code": "wdzj", "name": "重复", "kind": "vertical"})
    assert response.status_code == 409
    text = response.get_data(as_text=True)
    assert "渠道代码已存在：wdzj" in text and "Channel code already exists" not in text
    assert 'value="重复"' in text  # what was typed is kept
    assert _count(app, AcquisitionChannel) == 1


def _invalid_feedback(html: str) -> list[str]:
    return [m.strip() for m in re.findall(r'<div class="invalid-feedback">(.*?)</div>', html, re.S)]


def test_an_invalid_channel_code_is_explained_in_chinese_only_by_default(client, login, app):
    login("marketer")
    response = client.post("/acquisition/channels/new", data={"code": "Baidu-SEM", "name": "x", "kind": "sem"})
    assert response.status_code == 400
    assert _invalid_feedback(response.get_data(as_text=True)) == ["渠道代码只能包含小写字母、数字和下划线"]
    assert _count(app, AcquisitionChannel) == 0


def test_an_invalid_channel_code_is_explained_in_english_only_to_an_english_reader(client, login, app):
    login("marketer")
    client.get("/lang/en")
    response = client.post("/acquisition/channels/new", data={"code": "Baidu-SEM", "name": "x", "kind": "sem"})
    assert response.status_code == 400
    assert _invalid_feedback(response.get_data(as_text=True)) == [
        "Channel code may contain only lowercase letters a-z, digits 0-9 and _"]


@pytest.mark.parametrize(("locale", "expected"), [
    ("zh_CN", ["落地页地址须以 http:// 或 https:// 开头", "短链代码已被使用：hijack"]),
    ("en", ["Landing page URL must start with http:// or https://", "Short code already in use: hijack"]),
])
def test_a_refused_link_reads_in_one_language_per_locale(client, login, app, seeded, locale, expected):
    channel_id, _link_id, _code = seeded
    with get_db(app).session_scope(write=True) as s:
        services.create_link(s.get(AcquisitionChannel, channel_id), name="x", landing_url="https://a.example/",
                             code="hijack", session=s)
    login("marketer")
    client.get(f"/lang/{locale}")
    url = f"/acquisition/channels/{channel_id}/links/new"
    bad_url = client.post(url, data={"name": "x", "landing_url": "ftp://x.example/"})
    taken = client.post(url, data={"name": "x", "landing_url": "https://b.example/", "code": "hijack"})
    assert (bad_url.status_code, taken.status_code) == (400, 409)
    messages = _invalid_feedback(bad_url.get_data(as_text=True)) + _invalid_feedback(taken.get_data(as_text=True))
    assert messages == expected
    assert not any(CJK.search(m) for m in messages) if locale == "en" else not any(" / " in m for m in messages)


def test_a_marketer_edits_and_deactivates_a_channel(client, login, app, seeded):
    channel_id, _link_id, _code = seeded
    login("marketer")
    response = client.post(f"/acquisition/channels/{channel_id}/edit", data={"name": "网贷之家PC", "kind": "vertical",
                                                                 "owner": "王芳", "notes": "年框"})
    assert response.status_code == 302
    assert client.post(f"/acquisition/channels/{channel_id}/active", data={"active": "0"}).status_code == 302
    with get_db(app).session_scope() as s:
        channel = s.get(AcquisitionChannel, channel_id)
        assert (channel.name, channel.owner, channel.notes, channel.code, channel.active) == \
            ("网贷之家PC", "王芳", "年框", "wdzj", False)
    assert 'data-code="wdzj"' in client.get("/acquisition/channels?status=inactive").get_data(as_text=True)


def test_the_list_filters_by_status_and_kind_and_shows_an_empty_state(client, login, app, seeded):
    login("analyst")
    assert 'data-code="wdzj"' in client.get("/acquisition/channels?kind=vertical").get_data(as_text=True)
    text = client.get("/acquisition/channels?kind=sem").get_data(as_text=True)
    assert 'data-code="wdzj"' not in text and "没有符合条件的渠道" in text
    assert 'data-code="wdzj"' not in client.get("/acquisition/channels?status=inactive").get_data(as_text=True)
    assert 'data-code="wdzj"' in client.get("/acquisition/channels?status=active&q=网贷").get_data(as_text=True)


def test_an_empty_channel_list_invites_creating_the_first_channel(client, login):
    login("marketer")
    text = client.get("/acquisition/channels").get_data(as_text=True)
    assert "还没有渠道" in text
    assert 'id="new-channel"' in text


def _stats_row(html: str, code: str) -> dict[str, str]:
    row = re.search(rf'<tr data-code="{code}".*?</tr>', html, re.S)
    assert row, code
    return dict(re.findall(r'data-stat="(\w+)">([^<]*)<', row.group(0)))


def _investor(s, n: int, channel_id: int, registered_at, *investments) -> Investor:
    """An investor as the processor projects it: first_investment_at is the earliest investment's start."""
    investor = Investor(platform_user_id=f"u{n}", referral_code=f"RC{n}", channel_id=channel_id,
                        registered_at=registered_at,
                        first_investment_at=min((at for at, _fen in investments), default=None))
    s.add(investor)
    s.flush()
    for k, (at, fen) in enumerate(investments):
        s.add(Investment(investment_id=f"i{n}_{k}", investor_id=investor.id, amount_fen=fen, started_at=at))
    return investor


def test_the_list_page_shows_every_figure_for_the_default_30_days(client, login, app, seeded):
    channel_id, link_id, code = seeded
    now = utcnow()
    today = local_date(now)
    with get_db(app).session_scope(write=True) as s:
        other = services.create_channel(code="seo", name="SEO", kind="seo", session=s)
        services.create_link(s.get(AcquisitionChannel, channel_id), name="第二个", landing_url="https://x.example/",
                             session=s)
        for n, at in enumerate([now - timedelta(hours=2), now - timedelta(days=3), now - timedelta(days=45)]):
            s.add(Click(click_id=f"cf{n}", link_id=link_id, channel_id=channel_id, at=at))
        _investor(s, 1, channel_id, now - timedelta(hours=1))
        _investor(s, 2, channel_id, now - timedelta(days=5), (now - timedelta(days=4), 5000_00),
                  (now - timedelta(days=2), 7_00))
        _investor(s, 3, channel_id, now - timedelta(days=60), (now - timedelta(days=1), 300_00))  # before the period
        _investor(s, 4, other.id, now - timedelta(days=2))
        wdzj = s.get(AcquisitionChannel, channel_id)
        services.set_cost(wdzj, day=today, amount_fen=1000_00, session=s, now=now)
        services.set_cost(wdzj, day=today - timedelta(days=10), amount_fen=234_56, session=s, now=now)
        services.set_cost(wdzj, day=today - timedelta(days=40), amount_fen=9999_00, session=s, now=now)
    login("analyst")
    html = client.get("/acquisition/channels").get_data(as_text=True)
    assert 'option value="30d" selected' in html
    assert _stats_row(html, "wdzj") == {
        "links": "2", "clicks": "2", "registrations": "2", "first_investors": "1", "first_investment": "¥5,000.00",
        "cost": "¥1,234.56", "cost_per_registration": "¥617.28", "cost_per_first_investor": "¥1,234.56"}
    assert _stats_row(html, "seo") == {
        "links": "0", "clicks": "0", "registrations": "1", "first_investors": "0", "first_investment": "¥0.00",
        "cost": "¥0.00", "cost_per_registration": "¥0.00", "cost_per_first_investor": "—"}


def test_the_channel_list_exports_as_csv_with_a_bom(client, login, seeded):
    login("analyst")
    response = client.get("/acquisition/channels/export.csv")
    assert response.status_code == 200
    assert response.data.startswith(b"\xef\xbb\xbf")
    lines = response.get_data(as_text=True).lstrip("\ufeff").splitlines()
    assert lines[0] == ("code,name,kind,active,links,active_links,clicks,registrations,first_investors,"
                        "first_investment_yuan,cost_yuan,cost_per_registration_yuan,cost_per_first_investor_yuan")
    assert lines[1] == "wdzj,网贷之家,vertical,1,1,1,0,0,0,0.00,0.00,,"


# ---------------------------------------------------------------- permissions


def test_an_analyst_can_view_channels_but_not_change_them(client, login, app, seeded):
    channel_id, link_id, _code = seeded
    login("analyst")
    assert client.get("/acquisition/channels").status_code == 200
    page = client.get(f"/acquisition/channels/{channel_id}")
    assert page.status_code == 200
    assert 'id="new-link"' not in page.get_data(as_text=True)
    assert 'id="cost-entry"' not in page.get_data(as_text=True)
    assert 'id="new-channel"' not in client.get("/acquisition/channels").get_data(as_text=True)
    assert client.post("/acquisition/channels/new", data={"code": "x_y", "name": "x", "kind": "sem"}).status_code == 403
    assert client.post(f"/acquisition/channels/{channel_id}/edit", data={"name": "x", "kind": "sem"}).status_code == 403
    assert client.post(f"/acquisition/channels/{channel_id}/active", data={"active": "0"}).status_code == 403
    assert client.get(f"/acquisition/channels/{channel_id}/links/new").status_code == 403
    assert client.post(f"/acquisition/links/{link_id}/active", data={"active": "0"}).status_code == 403
    today = local_date(utcnow()).isoformat()
    cost = {"day": today, "amount": "1"}
    assert client.post(f"/acquisition/channels/{channel_id}/costs", data=cost).status_code == 403
    upload = {"file": (io.BytesIO(b"date,channel_code,amount\n"), "c.csv")}
    assert client.post("/acquisition/costs/import", data=upload, content_type="multipart/form-data").status_code == 403
    assert _count(app, AcquisitionChannel) == 1
    assert _count(app, ChannelCost) == 0
    assert client.get(f"/acquisition/links/{link_id}/qr.png").status_code == 200


def test_a_customer_service_agent_cannot_see_channels(client, login, seeded):
    login("agent")
    assert client.get("/acquisition/channels").status_code == 403


def test_an_anonymous_visitor_is_sent_to_sign_in_for_channel_pages(client, seeded):
    response = client.get("/acquisition/channels")
    assert response.status_code == 302
    assert "/login" in response.headers["Location"]


# ---------------------------------------------------------------- links and /t/


def test_a_marketer_creates_a_link_with_utm_and_sees_its_short_url(client, login, app, seeded):
    channel_id, _link_id, _code = seeded
    login("marketer")
    form = client.get(f"/acquisition/channels/{channel_id}/links/new")
    assert form.status_code == 200
    assert 'value="wdzj"' in form.get_data(as_text=True)  # utm_source defaults to the channel code
    response = client.post(f"/acquisition/channels/{channel_id}/links/new", data={
        "name": "贴吧帖子", "landing_url": "https://invest.example.com/newbie", "code": "tieba2026",
        "utm_source": "tieba", "utm_medium": "post", "utm_campaign": "", "utm_content": "", "utm_term": "",
    })
    assert response.status_code == 302
    text = client.get(f"/acquisition/channels/{channel_id}").get_data(as_text=True)
    assert f"{app.config['PUBLIC_BASE_URL']}/t/tieba2026" in text
    assert 'data-copy="#short-' in text


def test_a_link_with_a_bad_landing_url_is_refused_on_the_form(client, login, app, seeded):
    channel_id, _link_id, _code = seeded
    login("marketer")
    response = client.post(f"/acquisition/channels/{channel_id}/links/new",
                           data={"name": "x", "landing_url": "javascript:x"})
    assert response.status_code == 400
    assert "http://" in response.get_data(as_text=True)
    assert _count(app, TrackingLink) == 1


def test_editing_a_link_keeps_its_code(client, login, app, seeded):
    _channel_id, link_id, code = seeded
    login("marketer")
    assert client.get(f"/acquisition/links/{link_id}/edit").status_code == 200
    response = client.post(f"/acquisition/links/{link_id}/edit", data={"name": "新横幅", "landing_url": "https://b.example/",
                                                           "code": "hijack"})
    assert response.status_code == 302
    with get_db(app).session_scope() as s:
        link = s.get(TrackingLink, link_id)
        assert (link.name, link.landing_url, link.code) == ("新横幅", "https://b.example/", code)


def test_the_short_link_logs_the_click_and_redirects_with_click_id_channel_and_utm(client, app, seeded):
    _channel_id, link_id, code = seeded
    response = client.get(f"/t/{code}", headers={"User-Agent": "Mozilla/5.0 (iPhone; MicroMessenger)",
                                                 "Referer": "https://www.wdzj.com/dangan/"},
                          environ_base={"REMOTE_ADDR": "203.0.113.9"})
    assert response.status_code == 302
    assert response.headers["Cache-Control"] == "no-store"
    target = urlsplit(response.headers["Location"])
    assert (target.scheme, target.netloc, target.path, target.fragment) == ("https", "invest.example.com", "/lp", "top")
    query = parse_qs(target.query)
    with get_db(app).session_scope() as s:
        click = s.scalar(select(Click))
    assert query == {"from": ["wdzj"], "click_id": [click.click_id], "channel_code": ["wdzj"],
                     "utm_source": ["wdzj"], "utm_medium": ["banner"], "utm_campaign": ["双十一"]}
    assert re.fullmatch(r"c[A-Za-z0-9_-]{20}", click.click_id)
    assert (click.link_id, click.ip, click.user_agent, click.referrer) == (
        link_id, "203.0.113.9", "Mozilla/5.0 (iPhone; MicroMessenger)", "https://www.wdzj.com/dangan/")


def test_two_visits_are_two_clicks_with_different_ids(client, app, seeded):
    _channel_id, _link_id, code = seeded
    first = parse_qs(urlsplit(client.get(f"/t/{code}").headers["Location"]).query)["click_id"]
    second = parse_qs(urlsplit(client.get(f"/t/{code}").headers["Location"]).query)["click_id"]
    assert first != second
    assert _count(app, Click) == 2


def test_an_unknown_short_code_gets_a_friendly_404_and_logs_nothing(client, app, seeded):
    response = client.get("/t/doesnotexist")
    assert response.status_code == 404
    text = response.get_data(as_text=True)
    assert "链接不存在" in text
    assert "退出登录" not in text  # a public page, not the staff shell
    assert _count(app, Click) == 0


def test_a_deactivated_link_still_redirects_with_the_channel_but_logs_no_click(client, login, app, seeded):
    _channel_id, link_id, code = seeded
    login("marketer")
    assert client.post(f"/acquisition/links/{link_id}/active", data={"active": "0"}).status_code == 302
    response = client.get(f"/t/{code}")
    assert response.status_code == 302
    query = parse_qs(urlsplit(response.headers["Location"]).query)
    assert query["channel_code"] == ["wdzj"] and "click_id" not in query
    assert _count(app, Click) == 0


def test_recent_clicks_are_listed_and_paginated_on_the_channel_page(client, login, app, seeded):
    channel_id, link_id, _code = seeded
    now = utcnow()
    with get_db(app).session_scope(write=True) as s:
        for n in range(30):
            s.add(Click(click_id=f"cp{n:02d}", link_id=link_id, channel_id=channel_id, at=now - timedelta(minutes=n),
                        ip="198.51.100.23"))
    login("marketer")
    first = client.get(f"/acquisition/channels/{channel_id}").get_data(as_text=True)
    assert "cp00" in first and "cp29" not in first
    assert "clicks_page=2" in first
    assert "198.51.100.*" in first and "198.51.100.23" not in first  # marketers see visitor IPs masked
    second = client.get(f"/acquisition/channels/{channel_id}?clicks_page=2").get_data(as_text=True)
    assert "cp29" in second and "cp00" not in second


# ---------------------------------------------------------------- QR codes


def test_the_qr_png_downloads_as_a_png_image_of_a_real_size(client, login, seeded):
    _channel_id, link_id, code = seeded
    login("analyst")
    response = client.get(f"/acquisition/links/{link_id}/qr.png?download=1")
    assert response.status_code == 200
    assert response.mimetype == "image/png"
    assert f"qr-{code}.png" in response.headers["Content-Disposition"]
    data = response.data
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    chunks = _png_chunks(data)
    assert [kind for kind, _body in chunks][0] == b"IHDR" and chunks[-1][0] == b"IEND"
    width, height, depth, colour = struct.unpack(">IIBB", chunks[0][1][:10])
    assert width == height and 200 <= width <= 800
    pixels = zlib.decompress(b"".join(body for kind, body in chunks if kind == b"IDAT"))
    bits = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}[colour] * depth
    assert len(pixels) == height * (1 + (width * bits + 7) // 8)  # every scanline is there


def _png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    chunks, pos = [], 8
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        assert zlib.crc32(kind + body) == struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])[0]
        chunks.append((kind, body))
        pos += 12 + length
    return chunks


def test_the_qr_svg_is_served_as_svg(client, login, seeded):
    _channel_id, link_id, _code = seeded
    login("analyst")
    response = client.get(f"/acquisition/links/{link_id}/qr.svg")
    assert response.status_code == 200
    assert response.mimetype == "image/svg+xml"
    assert b"<svg" in response.data
    assert "Content-Disposition" not in response.headers  # shown inline unless download=1


def test_the_qr_of_an_unknown_link_is_not_found(client, login, seeded):
    login("analyst")
    assert client.get("/acquisition/links/999/qr.png").status_code == 404


# ---------------------------------------------------------------- costs


def test_a_marketer_enters_a_daily_cost_and_a_bad_amount_is_explained(client, login, app, seeded):
    channel_id, _link_id, _code = seeded
    today = local_date(utcnow()).isoformat()
    login("marketer")
    assert client.post(f"/acquisition/channels/{channel_id}/costs", data={"day": today, "amount": "1234.56",
                                                              "note": "首页"}).status_code == 302
    bad = client.post(f"/acquisition/channels/{channel_id}/costs", data={"day": today, "amount": "12.345"})
    assert bad.status_code == 400
    assert _invalid_feedback(bad.get_data(as_text=True)) == ["金额最多保留两位小数"]
    future = (local_date(utcnow()) + timedelta(days=2)).isoformat()
    late = client.post(f"/acquisition/channels/{channel_id}/costs", data={"day": future, "amount": "1"})
    assert late.status_code == 400
    assert _invalid_feedback(late.get_data(as_text=True)) == ["日期不能晚于今天（北京时间）"]
    client.get("/lang/en")
    english = client.post(f"/acquisition/channels/{channel_id}/costs", data={"day": future, "amount": "12.345"})
    assert _invalid_feedback(english.get_data(as_text=True)) == ["Amount may have at most 2 decimal places"]
    with get_db(app).session_scope() as s:
        assert [(c.amount_fen, c.note) for c in s.scalars(select(ChannelCost))] == [(123456, "首页")]
    assert "¥1,234.56" in client.get(f"/acquisition/channels/{channel_id}").get_data(as_text=True)


def _upload(client, text: str, channel_id: int | None = None):
    data = {"file": (io.BytesIO(text.encode("utf-8-sig")), "costs.csv")}
    if channel_id:
        data["channel_id"] = str(channel_id)
    return client.post("/acquisition/costs/import", data=data, content_type="multipart/form-data")


def _import_errors(html: str) -> list[int]:
    return [int(n) for n in re.findall(r'<td data-row="(\d+)">', html)]


def _import_messages(html: str) -> list[str]:
    return [m.strip() for m in re.findall(r'<td data-message>(.*?)</td>', html, re.S)]


def test_the_import_report_reads_in_english_only_for_an_english_reader(client, login, app, seeded):
    today = local_date(utcnow())
    sheet = ("date,channel_code,amount\n"
             f"{today},wdzj,-5\n"
             f"{today},unknown_ch,5\n"
             "2026-02-30,wdzj,1.234\n"
             f"{today},wdzj,7\n"
             f"{today},wdzj,8\n")
    login("marketer")
    client.get("/lang/en")
    html = _upload(client, sheet).get_data(as_text=True)
    assert _import_messages(html) == [
        "Amount must not be negative", "Unknown channel code: unknown_ch (create the channel first)",
        "Amount may have at most 2 decimal places", "No such date: 2026-02-30", "Same channel and date as row 5"]
    assert not any(CJK.search(m) for m in _import_messages(html))
    client.get("/lang/zh_CN")
    chinese = _import_messages(_upload(client, sheet).get_data(as_text=True))
    assert chinese == ["金额不能为负数", "未知的渠道代码：unknown_ch（请先创建渠道）", "金额最多保留两位小数",
                       "日期不存在：2026-02-30", "与第 5 行的渠道和日期重复"]
    assert not any(re.search(r"[A-Za-z]{4,}", m.replace("unknown_ch", "")) for m in chinese)


def test_a_cost_csv_import_stores_valid_rows_and_lists_bad_ones_by_row_and_is_idempotent(client, login, app, seeded):
    channel_id, _link_id, _code = seeded
    today = local_date(utcnow())
    d1, d2 = (today - timedelta(days=1)).isoformat(), (today - timedelta(days=2)).isoformat()
    sheet = ("date,channel_code,amount,note\n"
             f"{d1},wdzj,300.00,横幅\n"
             f"{d2},wdzj,-5,\n"
             f"{d2},unknown_ch,5,\n"
             f"{d2},wdzj,120.5,\n")
    login("marketer")
    first = _upload(client, sheet, channel_id)
    assert first.status_code == 200
    html = first.get_data(as_text=True)
    assert _import_errors(html) == [3, 4]
    assert _import_messages(html) == ["金额不能为负数", "未知的渠道代码：unknown_ch（请先创建渠道）"]
    assert re.search(r'data-count="created">2<', html)
    assert f'href="/acquisition/channels/{channel_id}?period=30d"' in html
    with get_db(app).session_scope() as s:
        rows = sorted((c.day.isoformat(), c.amount_fen) for c in s.scalars(select(ChannelCost)))
    assert rows == [(d2, 12050), (d1, 30000)]

    again = _upload(client, sheet, channel_id).get_data(as_text=True)
    assert re.search(r'data-count="created">0<', again)
    assert re.search(r'data-count="unchanged">2<', again)
    assert _import_errors(again) == [3, 4]
    with get_db(app).session_scope() as s:
        assert sorted((c.day.isoformat(), c.amount_fen) for c in s.scalars(select(ChannelCost))) == rows
    assert _count(app, AuditEntry, AuditEntry.action == "costs.imported") == 2


def test_an_import_without_a_file_is_refused_politely(client, login, seeded):
    login("marketer")
    response = client.post("/acquisition/costs/import", data={}, content_type="multipart/form-data",
                           follow_redirects=True)
    assert response.status_code == 200
    assert "请选择文件" in response.get_data(as_text=True)


def test_costs_export_as_csv_in_the_import_format(client, login, app, seeded):
    channel_id, _link_id, _code = seeded
    day = local_date(utcnow())
    with get_db(app).session_scope(write=True) as s:
        services.set_cost(s.get(AcquisitionChannel, channel_id), day=day, amount_fen=5005, note="n", session=s,
                          now=utcnow())
    login("analyst")
    response = client.get(f"/acquisition/channels/{channel_id}/costs.csv")
    assert response.status_code == 200
    assert response.data.startswith(b"\xef\xbb\xbf")
    assert response.get_data(as_text=True).lstrip("\ufeff").splitlines() == [
        "date,channel_code,amount,note", f"{day.isoformat()},wdzj,50.05,n"]
    template = client.get("/acquisition/costs/template.csv").get_data(as_text=True)
    assert template.lstrip("\ufeff").startswith("date,channel_code,amount,note")


def test_a_marketer_deletes_a_cost_entry(client, login, app, seeded):
    channel_id, _link_id, _code = seeded
    with get_db(app).session_scope(write=True) as s:
        cost = services.set_cost(s.get(AcquisitionChannel, channel_id), day=local_date(utcnow()), amount_fen=1,
                                 session=s, now=utcnow())
        cost_id = cost.id
    login("marketer")
    assert client.post(f"/acquisition/costs/{cost_id}/delete").status_code == 302
    assert _count(app, ChannelCost) == 0


def test_the_nav_links_to_the_channel_pages(client, login):
    login("marketer")
    assert 'href="/acquisition/channels"' in client.get("/").get_data(as_text=True)


# ---------------------------------------------------------------- old addresses, placeholders, kinds


def test_every_old_channels_address_answers_308_to_its_acquisition_page(client, login, app, seeded):
    channel_id, link_id, _code = seeded
    with get_db(app).session_scope(write=True) as s:
        cost_id = services.set_cost(s.get(AcquisitionChannel, channel_id), day=local_date(utcnow()), amount_fen=1,
                                    session=s, now=utcnow()).id
    ids = {"channel_id": channel_id, "link_id": link_id, "cost_id": cost_id}
    login("marketer")
    adapter = app.url_map.bind("localhost")
    old_rules = [r for r in app.url_map.iter_rules() if r.endpoint.startswith("acquisition.moved_")]
    assert len(old_rules) == 17
    for rule in old_rules:
        old = rule.build({k: v for k, v in ids.items() if k in rule.arguments}, append_unknown=False)[1]
        assert not old.startswith("/acquisition/")
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            response = client.open(f"{old}?period=7d", method=method)
            assert response.status_code == 308, (method, old)
            location = response.headers["Location"]
            assert location.startswith("/acquisition/") and location.endswith("?period=7d"), location
            endpoint, _args = adapter.match(location.split("?")[0], method=method)
            assert endpoint == rule.endpoint.replace("moved_", ""), (old, location)


def test_a_form_posted_to_an_old_address_still_works(client, login, app, seeded):
    channel_id, _link_id, _code = seeded
    login("marketer")
    today = local_date(utcnow()).isoformat()
    form = {"day": today, "amount": "88.00"}
    moved = client.post(f"/channels/{channel_id}/costs", data=form)
    assert moved.status_code == 308
    # A browser re-sends the same body to the new address (werkzeug's client cannot: the NUL guard read it).
    response = client.post(moved.headers["Location"], data=form, follow_redirects=True)
    assert response.status_code == 200
    assert response.request.path == f"/acquisition/channels/{channel_id}"
    with get_db(app).session_scope() as s:
        assert [c.amount_fen for c in s.scalars(select(ChannelCost))] == [8800]


def test_old_addresses_keep_their_permissions_and_the_short_link_never_moved(client, login, app, seeded):
    channel_id, _link_id, code = seeded
    assert "/login" in client.get("/channels").headers["Location"]
    login("agent")
    assert client.get("/channels").status_code == 403
    assert client.get(f"/channels/{channel_id}").status_code == 403
    rules_of_track = [r.rule for r in app.url_map.iter_rules() if r.endpoint == "acquisition.track"]
    assert rules_of_track == ["/t/<code>"]
    assert client.get(f"/t/{code}").status_code == 302  # public: printed posters point here


def test_form_placeholders_read_as_hints_not_as_values(client, login, seeded):
    channel_id, link_id, _code = seeded
    login("marketer")
    pages = [client.get(url).get_data(as_text=True) for url in (
        "/acquisition/channels", f"/acquisition/channels/{channel_id}",
        f"/acquisition/channels/{channel_id}/links/new", f"/acquisition/links/{link_id}/edit")]
    placeholders = [p for html in pages for p in re.findall(r'placeholder="([^"]*)"', html)]
    assert "如 baidu_sem" in placeholders
    assert placeholders and all(p.startswith(("如", "按")) for p in placeholders), placeholders
    amount = re.search(r'<input[^>]*name="amount"[^>]*>', pages[1]).group(0)
    assert "placeholder" not in amount
    assert "以元为单位，最多两位小数，例如 1234.56" in pages[1]


def test_the_kind_menus_offer_the_one_list_of_kinds_with_its_labels(client, login, seeded):
    from growth.acquisition.models import CHANNEL_KINDS

    expected = [(value, str(label)) for value, label in CHANNEL_KINDS.items()]
    login("marketer")
    html = client.get("/acquisition/channels").get_data(as_text=True)
    menus = re.findall(r'<select[^>]*name="kind"[^>]*>(.*?)</select>', html, re.S)
    assert len(menus) == 2  # the list filter and the new-channel form
    for menu in menus:
        options = [(v, t.strip()) for v, t in re.findall(r'<option[^>]*value="([^"]*)"[^>]*>([^<]*)<', menu) if v]
        assert options == expected
    assert "垂直门户(网贷之家/网贷天眼)" in html.split('data-code="wdzj"', 1)[1].split("</tr>", 1)[0]


@pytest.mark.parametrize(("locale", "message", "other"), [
    ("zh_CN", "日期不存在：2026-13-01", "No such date"),
    ("en", "No such date: 2026-13-01", "日期不存在"),
])
def test_a_refused_export_range_is_explained_in_the_readers_language_only(client, login, seeded, locale, message,
                                                                          other):
    login("analyst")
    client.get(f"/lang/{locale}")
    response = client.get("/acquisition/costs.csv?start=2026-13-01")
    assert response.status_code == 400
    text = response.get_data(as_text=True)
    assert message in text and other not in text


def test_an_english_reader_sees_the_period_and_the_figures_named_in_english(client, login, seeded):
    login("analyst")
    client.get("/lang/en")
    html = client.get("/acquisition/channels?period=last_month").get_data(as_text=True)
    head = re.search(r"<thead>.*?</thead>", html, re.S).group(0)
    assert ">Cost per registration<" in head and ">First investors<" in head
    menu = re.search(r'<select[^>]*name="period".*?</select>', html, re.S).group(0)
    assert 'value="last_month" selected>Last month<' in menu
    period = re.search(r'<div class="small text-muted mb-2" id="period-range">.*?</div>', html, re.S).group(0)
    for part in (head, menu, period):
        assert not CJK.search(part), part
