"""Acquisition services on a real database: channels, links, clicks, QR codes, costs and their import."""

from __future__ import annotations

import struct
import zlib
from datetime import date, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import event, func, select

from growth.acquisition import rules, services
from growth.acquisition.models import ChannelCost, Click
from growth.audit.models import AuditEntry
from growth.errors import Conflict, DomainError, NotFound
from growth.investors.models import Investor
from growth.timeutil import local_date, utcnow


def _channel(session, code="baidu_sem", **kw):
    return services.create_channel(code=code, name=kw.pop("name", code.upper()), kind=kw.pop("kind", "sem"),
                                   session=session, by="m@example.com", **kw)


def _link(session, channel, **kw):
    return services.create_link(channel, name=kw.pop("name", "落地页"),
                                landing_url=kw.pop("landing_url", "https://invest.example.com/lp?from=ad"),
                                session=session, by="m@example.com", **kw)


def _actions(session):
    return [a for (a,) in session.execute(select(AuditEntry.action).order_by(AuditEntry.id))]


def _investor(session, n, channel):
    inv = Investor(platform_user_id=f"u_{n}", referral_code=f"R{n:07d}", channel_id=channel.id if channel else None,
                   registered_at=utcnow())
    session.add(inv)
    session.flush()
    return inv


def decode_png(data: bytes) -> tuple[int, int, bytes]:
    """Walk a PNG's chunks, check every CRC, inflate the image data; return width, height and raw pixels."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, width, height, idat, seen_end = 8, 0, 0, b"", False
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind = data[pos + 4:pos + 8]
        body = data[pos + 8:pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])
        assert zlib.crc32(kind + body) & 0xFFFFFFFF == crc, kind
        if kind == b"IHDR":
            width, height = struct.unpack(">II", body[:8])
        elif kind == b"IDAT":
            idat += body
        elif kind == b"IEND":
            seen_end = True
        pos += 12 + length
    assert seen_end
    return width, height, zlib.decompress(idat)


# ---------------------------------------------------------------- channels


def test_a_channel_is_created_and_audited(session):
    channel = _channel(session, "wdzj", name="网贷之家", kind="vertical", owner="李娜")
    assert channel.id is not None
    assert (channel.code, channel.name, channel.kind, channel.owner, channel.active) == \
        ("wdzj", "网贷之家", "vertical", "李娜", True)
    entry = session.scalar(select(AuditEntry).where(AuditEntry.action == "channel.created"))
    assert entry.actor == "m@example.com"
    assert entry.details["code"] == "wdzj"


def test_a_second_channel_with_the_same_code_is_a_conflict(session):
    _channel(session, "wdzj")
    with pytest.raises(Conflict) as err:
        _channel(session, "wdzj", name="另一个")
    assert err.value.field == "code"
    assert "wdzj" in err.value.message
    assert session.scalar(select(func.count()).select_from(services.AcquisitionChannel)) == 1


@pytest.mark.parametrize(("kwargs", "field"), [({"code": "Bad-Code"}, "code"), ({"code": "ok", "kind": "tv"}, "kind"),
                                               ({"code": "ok", "name": "  "}, "name")])
def test_an_invalid_channel_is_refused_with_the_field_at_fault(session, kwargs, field):
    kwargs = {"name": "名称", **kwargs}
    with pytest.raises(DomainError) as err:
        services.create_channel(session=session, **kwargs)
    assert err.value.field == field


def test_updating_a_channel_changes_its_details_but_never_its_code_and_audits_the_diff(session):
    channel = _channel(session, "seo", name="SEO")
    services.update_channel(channel, name="SEO优化", kind="seo", owner="王芳", notes="", session=session)
    assert (channel.code, channel.name, channel.kind, channel.owner) == ("seo", "SEO优化", "seo", "王芳")
    entry = session.scalar(select(AuditEntry).where(AuditEntry.action == "channel.updated"))
    assert entry.details["changes"]["name"] == ["SEO", "SEO优化"]
    assert "code" not in entry.details["changes"]


def test_saving_an_unchanged_channel_writes_no_audit_entry(session):
    channel = _channel(session, "seo", name="SEO", kind="seo")
    services.update_channel(channel, name="SEO", kind="seo", session=session)
    assert "channel.updated" not in _actions(session)


def test_a_reviewed_auto_created_channel_is_no_longer_marked_auto_created(session):
    channel = _channel(session, "newcode")
    channel.auto_created = True
    services.update_channel(channel, name="新渠道", kind="partner", session=session)
    assert channel.auto_created is False


def test_deactivating_and_reactivating_a_channel_is_audited_once_each(session):
    channel = _channel(session)
    services.set_channel_active(channel, False, session=session)
    services.set_channel_active(channel, False, session=session)
    services.set_channel_active(channel, True, session=session)
    assert _actions(session)[-2:] == ["channel.deactivated", "channel.reactivated"]
    assert channel.active is True


def test_an_unknown_channel_is_not_found(session):
    with pytest.raises(NotFound):
        services.get_channel(999, session=session)


# ---------------------------------------------------------------- list stats


def _count_selects(session):
    statements: list[str] = []

    def before(conn, cursor, statement, params, context, executemany):
        if statement.lstrip().upper().startswith("SELECT"):
            statements.append(statement)

    engine = session.get_bind()
    event.listen(engine, "before_cursor_execute", before)
    return statements, lambda: event.remove(engine, "before_cursor_execute", before)


def test_the_channel_list_counts_links_and_the_periods_clicks_registrations_and_costs(session):
    now = utcnow()
    today = local_date(now)
    period = rules.default_period(today)
    sem = _channel(session, "baidu_sem")
    wdzj = _channel(session, "wdzj", kind="vertical")
    idle = _channel(session, "idle", kind="other")
    sem_a, sem_b = _link(session, sem), _link(session, sem)
    _link(session, wdzj)
    services.set_link_active(sem_b, False, session=session)
    for at, link in [(now - timedelta(days=1), sem_a), (now - timedelta(days=29), sem_b),
                     (now - timedelta(days=31), sem_a), (now - timedelta(hours=1), sem_a)]:
        session.add(Click(click_id=f"c{at.timestamp()}{link.id}", link_id=link.id, channel_id=sem.id, at=at))
    for n in range(3):
        _investor(session, n, sem)
    _investor(session, 10, wdzj)
    _investor(session, 11, None)
    _investor(session, 12, wdzj).registered_at = now - timedelta(days=31)  # registered before the period
    for day, fen in [(today, 100_00), (today - timedelta(days=29), 50_00), (today - timedelta(days=30), 999_00)]:
        services.set_cost(sem, day=day, amount_fen=fen, session=session, now=now)
    services.set_cost(wdzj, day=today - timedelta(days=3), amount_fen=1_00, session=session, now=now)
    session.flush()

    statements, stop = _count_selects(session)
    try:
        rows = {r.channel.code: r for r in services.list_channels(session=session, period=period)}
    finally:
        stop()
    assert len(statements) == 1  # one query whatever the number of channels
    assert (rows["baidu_sem"].links, rows["baidu_sem"].active_links) == (2, 1)
    assert rows["baidu_sem"].clicks == 3
    assert rows["baidu_sem"].registrations == 3
    assert rows["baidu_sem"].cost_fen == 150_00  # 30 business days: today and the 29 before it
    assert rows["baidu_sem"].cost_per_registration_fen == 50_00
    assert (rows["wdzj"].links, rows["wdzj"].clicks, rows["wdzj"].registrations, rows["wdzj"].cost_fen) == \
        (1, 0, 1, 1_00)
    assert (rows["idle"].links, rows["idle"].clicks, rows["idle"].registrations, rows["idle"].cost_fen) == \
        (0, 0, 0, 0)
    assert (rows["idle"].cost_per_registration_fen, rows["idle"].cost_per_first_investor_fen) == (None, None)
    assert services.channel_stats(idle, session=session, period=period).channel.code == "idle"


def test_the_channel_list_filters_by_status_kind_and_text(session):
    now = utcnow()
    _channel(session, "baidu_sem", name="百度SEM", kind="sem")
    wdzj = _channel(session, "wdzj", name="网贷之家", kind="vertical")
    services.set_channel_active(wdzj, False, session=session)
    period = rules.default_period(local_date(now))

    def codes(**kw):  # type: ignore[no-untyped-def]
        return [r.channel.code for r in services.list_channels(session=session, period=period, **kw)]

    assert codes() == ["baidu_sem", "wdzj"]
    assert codes(active=True) == ["baidu_sem"]
    assert codes(active=False) == ["wdzj"]
    assert codes(kind="vertical") == ["wdzj"]
    assert codes(q="网贷") == ["wdzj"]
    assert codes(q="SEM") == ["baidu_sem"]


# ---------------------------------------------------------------- links and clicks


def test_a_link_gets_a_generated_short_code_and_is_audited(session):
    channel = _channel(session)
    link = _link(session, channel, utm={"utm_source": "baidu", "utm_campaign": "double11"})
    assert len(link.code) == 7
    assert link.utm_source == "baidu"
    assert link.created_by == "m@example.com"
    assert "link.created" in _actions(session)


def test_a_chosen_short_code_already_in_use_is_a_conflict(session):
    channel = _channel(session)
    _link(session, channel, code="wdzj2026")
    with pytest.raises(Conflict) as err:
        _link(session, channel, code="wdzj2026")
    assert err.value.field == "code"


def test_an_inactive_channel_gets_no_new_links(session):
    channel = _channel(session)
    services.set_channel_active(channel, False, session=session)
    with pytest.raises(DomainError):
        _link(session, channel)


def test_a_link_to_a_non_http_landing_page_is_refused(session):
    channel = _channel(session)
    with pytest.raises(DomainError) as err:
        _link(session, channel, landing_url="javascript:alert(1)")
    assert err.value.field == "landing_url"


def test_updating_a_link_keeps_its_short_code(session):
    channel = _channel(session)
    link = _link(session, channel)
    code = link.code
    services.update_link(link, name="新名字", landing_url="https://b.example/x", utm={"utm_medium": "cpc"},
                         session=session)
    assert (link.code, link.name, link.landing_url, link.utm_medium) == (code, "新名字", "https://b.example/x", "cpc")
    assert _actions(session)[-1] == "link.updated"


def test_a_click_is_stored_with_its_visitor_and_redirects_with_click_id_channel_and_utm(session):
    now = utcnow()
    channel = _channel(session, "wdzj")
    link = _link(session, channel, landing_url="https://invest.example.com/lp?from=ad#top",
                 utm={"utm_source": "wdzj", "utm_medium": "banner", "utm_campaign": "双十一"})
    click, target = services.record_click(link.code, ip="203.0.113.7", user_agent="Mozilla/5.0 (iPhone)",
                                          referrer="https://www.wdzj.com/plat", session=session, now=now)
    assert click is not None
    stored = session.scalar(select(Click).where(Click.click_id == click.click_id))
    assert (stored.ip, stored.user_agent, stored.referrer) == ("203.0.113.7", "Mozilla/5.0 (iPhone)",
                                                               "https://www.wdzj.com/plat")
    assert (stored.link_id, stored.channel_id, stored.at) == (link.id, channel.id, now)
    assert click.click_id.startswith("c") and len(click.click_id) == 21
    parts = urlsplit(target)
    query = parse_qs(parts.query)
    assert (parts.netloc, parts.path, parts.fragment) == ("invest.example.com", "/lp", "top")
    assert query == {"from": ["ad"], "click_id": [click.click_id], "channel_code": ["wdzj"],
                     "utm_source": ["wdzj"], "utm_medium": ["banner"], "utm_campaign": ["双十一"]}


def test_every_visit_gets_its_own_click_id(session):
    channel = _channel(session)
    link = _link(session, channel)
    ids = {services.record_click(link.code, ip="1.2.3.4", user_agent="", referrer=None, session=session,
                                 now=utcnow())[0].click_id for _ in range(5)}
    assert len(ids) == 5


def test_very_long_visitor_headers_are_cut_to_their_columns(session):
    channel = _channel(session)
    link = _link(session, channel)
    click, _url = services.record_click(link.code, ip="x" * 100, user_agent="u" * 900, referrer="r" * 2000,
                                        session=session, now=utcnow())
    assert (len(click.ip), len(click.user_agent), len(click.referrer)) == (64, 500, 1000)


@pytest.mark.parametrize("what", ["link", "channel"])
def test_a_visit_through_a_stopped_link_still_redirects_with_the_channel_but_logs_no_click(session, what):
    channel = _channel(session, "seo")
    link = _link(session, channel, utm={"utm_source": "google"})
    if what == "link":
        services.set_link_active(link, False, session=session)
    else:
        services.set_channel_active(channel, False, session=session)
    click, target = services.record_click(link.code, ip="1.2.3.4", user_agent="ua", referrer="", session=session,
                                          now=utcnow())
    assert click is None
    query = parse_qs(urlsplit(target).query)
    assert query["channel_code"] == ["seo"]
    assert query["utm_source"] == ["google"]
    assert "click_id" not in query
    assert session.scalar(select(func.count()).select_from(Click)) == 0


def test_an_unknown_short_code_is_not_found(session):
    with pytest.raises(NotFound):
        services.record_click("nope", ip="", user_agent="", referrer="", session=session, now=utcnow())


def test_a_channels_links_and_clicks_are_listed_with_counts_newest_first(session):
    now = utcnow()
    channel = _channel(session)
    first, second = _link(session, channel), _link(session, channel)
    for _ in range(3):
        services.record_click(first.code, ip="", user_agent="", referrer="", session=session, now=now)
    session.add(Click(click_id="cold", link_id=first.id, channel_id=channel.id, at=now - timedelta(days=40)))
    session.flush()
    in_period = services.list_links(channel, session=session, period=rules.default_period(local_date(now)))
    assert [(s.link.id, s.clicks) for s in in_period] == [(second.id, 0), (first.id, 3)]
    ever = services.list_links(channel, session=session)
    assert [(s.link.id, s.clicks) for s in ever] == [(second.id, 0), (first.id, 4)]
    page, total = services.list_clicks(channel, session=session, page=1, per_page=2)
    assert total == 4
    assert len(page) == 2
    assert page[0][1].id == first.id
    assert page[-1][0].click_id != "cold"


# ---------------------------------------------------------------- QR codes


def test_the_qr_png_is_a_valid_png_of_a_sensible_size(session):
    channel = _channel(session)
    link = _link(session, channel)
    data = services.qr_png(link, base_url="https://g.example.com", scale=10)
    width, height, pixels = decode_png(data)
    assert width == height
    assert 250 <= width <= 600  # a version 2-3 code, 4 modules of border, 10 px per module
    assert width % 10 == 0
    assert len(pixels) > height  # one filter byte per scanline plus the pixels


def test_the_qr_svg_is_an_svg_document(session):
    channel = _channel(session)
    link = _link(session, channel, name="海报A")
    svg = services.qr_svg(link, base_url="https://g.example.com").decode()
    assert "<svg" in svg
    assert "海报A" in svg


def test_a_longer_url_makes_a_bigger_qr_code(session):
    channel = _channel(session)
    link = _link(session, channel)
    small = decode_png(services.qr_png(link, base_url="https://g.cn", scale=1))[0]
    large = decode_png(services.qr_png(link, base_url="https://" + "g" * 80 + ".example.com", scale=1))[0]
    assert large > small


# ---------------------------------------------------------------- costs


def test_a_daily_cost_is_set_and_setting_it_again_replaces_it(session):
    now = utcnow()
    channel = _channel(session)
    day = local_date(now) - timedelta(days=1)
    services.set_cost(channel, day=day, amount_fen=1000_00, note="首次", session=session, now=now, by="a@x")
    cost = services.set_cost(channel, day=day, amount_fen=1200_50, note="修正", session=session, now=now, by="b@x")
    assert (cost.amount_fen, cost.note, cost.entered_by) == (1200_50, "修正", "b@x")
    assert session.scalar(select(func.count()).select_from(ChannelCost)) == 1
    entries = session.scalars(select(AuditEntry).where(AuditEntry.action == "cost.set").order_by(AuditEntry.id)).all()
    assert [(e.details["previous_fen"], e.details["amount_fen"]) for e in entries] == [(None, 1000_00),
                                                                                        (1000_00, 1200_50)]


def test_setting_the_same_cost_again_changes_and_audits_nothing(session):
    now = utcnow()
    channel = _channel(session)
    day = local_date(now)
    services.set_cost(channel, day=day, amount_fen=5, session=session, now=now)
    services.set_cost(channel, day=day, amount_fen=5, session=session, now=now)
    assert _actions(session).count("cost.set") == 1


def test_a_cost_in_the_future_or_below_zero_is_refused(session):
    now = utcnow()
    channel = _channel(session)
    with pytest.raises(DomainError) as err:
        services.set_cost(channel, day=local_date(now) + timedelta(days=1), amount_fen=1, session=session, now=now)
    assert err.value.field == "day"
    with pytest.raises(DomainError) as err:
        services.set_cost(channel, day=local_date(now), amount_fen=-1, session=session, now=now)
    assert err.value.field == "amount"


def test_a_cost_entry_can_be_deleted_and_the_deletion_is_audited(session):
    now = utcnow()
    channel = _channel(session)
    cost = services.set_cost(channel, day=local_date(now), amount_fen=1, session=session, now=now)
    assert services.delete_cost(cost.id, session=session).id == channel.id
    assert session.scalar(select(func.count()).select_from(ChannelCost)) == 0
    assert _actions(session)[-1] == "cost.deleted"
    with pytest.raises(NotFound):
        services.delete_cost(cost.id, session=session)


def _sheet(today: date) -> str:
    d = [(today - timedelta(days=n)).isoformat() for n in range(4)]
    return (
        "date,channel_code,amount,note\n"
        f"{d[1]},baidu_sem,1234.56,关键词\n"
        f"{d[2]},baidu_sem,800,\n"
        f"{d[1]},wdzj,300.5,首页横幅\n"
        f"{d[1]},nosuch,10,\n"          # row 5: unknown channel
        f"{d[3]},wdzj,12.345,\n"        # row 6: three decimals
        f"{(today + timedelta(days=1)).isoformat()},wdzj,1,\n"  # row 7: tomorrow
        f"{d[2]},BAIDU_SEM,,\n"         # row 8: no amount
    )


def test_a_cost_import_stores_valid_rows_and_reports_bad_ones_by_row_number(session):
    now = utcnow()
    today = local_date(now)
    sem, wdzj = _channel(session, "baidu_sem"), _channel(session, "wdzj")
    result = services.import_costs(_sheet(today).encode("utf-8-sig"), filename="nov.csv", session=session, now=now,
                                   by="m@example.com")
    assert (result.created, result.updated, result.unchanged, result.stored) == (3, 0, 0, 3)
    assert [(e.row, e.field) for e in result.errors] == [(5, "channel_code"), (6, "amount"), (7, "date"),
                                                         (8, "amount")]
    assert "nosuch" in result.errors[0].message
    stored = {(c.channel_id, c.day): (c.amount_fen, c.note, c.entered_by) for c in session.scalars(select(ChannelCost))}
    assert stored == {
        (sem.id, today - timedelta(days=1)): (123456, "关键词", "m@example.com"),
        (sem.id, today - timedelta(days=2)): (80000, "", "m@example.com"),
        (wdzj.id, today - timedelta(days=1)): (30050, "首页横幅", "m@example.com"),
    }
    entry = session.scalar(select(AuditEntry).where(AuditEntry.action == "costs.imported"))
    assert entry.details["filename"] == "nov.csv"
    assert (entry.details["created"], entry.details["errors"]) == (3, 4)
    assert entry.details["channels"] == ["baidu_sem", "wdzj"]


def test_importing_the_same_file_again_changes_nothing(session):
    now = utcnow()
    today = local_date(now)
    _channel(session, "baidu_sem"), _channel(session, "wdzj")
    services.import_costs(_sheet(today), session=session, now=now)
    before = sorted((c.channel_id, c.day, c.amount_fen, c.note, c.updated_at)
                    for c in session.scalars(select(ChannelCost)))
    again = services.import_costs(_sheet(today), session=session, now=now + timedelta(minutes=5))
    assert (again.created, again.updated, again.unchanged) == (0, 0, 3)
    assert len(again.errors) == 4
    after = sorted((c.channel_id, c.day, c.amount_fen, c.note, c.updated_at)
                   for c in session.scalars(select(ChannelCost)))
    assert after == before


def test_a_corrected_file_updates_the_changed_days_only(session):
    now = utcnow()
    today = local_date(now)
    sem = _channel(session, "baidu_sem")
    _channel(session, "wdzj")
    services.import_costs(_sheet(today), session=session, now=now)
    fixed = _sheet(today).replace("1234.56", "1300.00")
    result = services.import_costs(fixed, session=session, now=now)
    assert (result.created, result.updated, result.unchanged) == (0, 1, 2)
    cost = session.scalar(select(ChannelCost).where(ChannelCost.channel_id == sem.id,
                                                    ChannelCost.day == today - timedelta(days=1)))
    assert cost.amount_fen == 130000


def test_an_import_after_a_manual_entry_replaces_that_days_figure(session):
    now = utcnow()
    day = local_date(now) - timedelta(days=1)
    sem = _channel(session, "baidu_sem")
    manual = services.set_cost(sem, day=day, amount_fen=1, session=session, now=now)
    result = services.import_costs(f"date,channel_code,amount\n{day.isoformat()},baidu_sem,2.00\n", session=session,
                                   now=now)
    assert result.updated == 1
    assert manual.amount_fen == 200  # the loaded object is refreshed after the bulk upsert


def test_an_upper_case_code_in_a_sheet_finds_its_lower_case_channel(session):
    now = utcnow()
    sem = _channel(session, "baidu_sem")
    day = local_date(now)
    result = services.import_costs(f"date,channel_code,amount\n{day.isoformat()},BAIDU_SEM,5\n", session=session,
                                   now=now)
    assert result.errors == []
    assert session.scalar(select(ChannelCost.channel_id)) == sem.id


def test_a_sheet_that_is_not_a_cost_sheet_stores_nothing(session):
    now = utcnow()
    _channel(session, "baidu_sem")
    result = services.import_costs(b"name,phone\n\xe5\xbc\xa0\xe4\xb8\x89,138\n", session=session, now=now)
    assert result.stored == 0
    assert len(result.errors) == 1
    assert session.scalar(select(func.count()).select_from(ChannelCost)) == 0


def test_costs_export_in_the_import_format_and_the_export_is_audited(session):
    now = utcnow()
    day = local_date(now)
    sem, wdzj = _channel(session, "baidu_sem"), _channel(session, "wdzj")
    services.set_cost(sem, day=day, amount_fen=123405, note="a", session=session, now=now)
    services.set_cost(wdzj, day=day, amount_fen=7, session=session, now=now)
    rows = services.export_costs(session=session, channel=sem)
    assert rows == [["date", "channel_code", "amount", "note"], [day.isoformat(), "baidu_sem", "1234.05", "a"]]
    assert len(services.export_costs(session=session)) == 3
    assert _actions(session)[-1] == "costs.exported"


@pytest.mark.postgres_only
def test_two_people_creating_the_same_channel_code_at_once_get_one_channel_and_one_conflict(app):
    import threading

    from growth.db import get_db
    from growth.errors import Conflict

    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def create() -> None:
        try:
            with get_db(app).session_scope(write=True) as s:
                barrier.wait()
                services.create_channel(code="race_code", name="并发", session=s)
            outcomes.append("created")
        except Conflict:
            outcomes.append("conflict")

    threads = [threading.Thread(target=create) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["conflict", "created"]
