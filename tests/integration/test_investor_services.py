"""Investor services on a real database: search, filters, pagination, query count, events, export."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import event

from growth.acquisition.models import AcquisitionChannel
from growth.audit.models import AuditEntry
from growth.errors import DomainError, NotFound
from growth.events.models import PlatformEvent
from growth.investors import services
from growth.investors.rules import search_terms
from tests.factories import make_investor

T0 = datetime(2026, 3, 1, 2, 0, tzinfo=UTC)


def _ids(rows: list[services.InvestorRow]) -> list[str]:
    return [row.investor.platform_user_id for row in rows]


def _search(session, q: str | None = None, may_see_pii: bool = True, **kwargs):  # type: ignore[no-untyped-def]
    terms = search_terms(q, may_see_pii=may_see_pii)
    rows, total = services.search_investors(session=session, terms=terms, **kwargs)
    return _ids(rows), total


@contextmanager
def count_statements(engine) -> Iterator[list[str]]:  # type: ignore[no-untyped-def]
    """Collect the SQL statements sent to the database, leaving out transaction control."""
    statements: list[str] = []

    def _before(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        if not statement.strip().upper().startswith(("BEGIN", "COMMIT", "ROLLBACK")):
            statements.append(statement)

    event.listen(engine, "before_cursor_execute", _before)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", _before)


def test_an_exact_platform_user_id_finds_that_investor(session):
    make_investor(session, platform_user_id="u_100", registered_at=T0)
    make_investor(session, platform_user_id="x_200", registered_at=T0)
    assert _search(session, q="u_100") == (["u_100"], 1)


def test_a_platform_user_id_prefix_finds_every_investor_starting_with_it(session):
    make_investor(session, platform_user_id="u_100", registered_at=T0)
    make_investor(session, platform_user_id="u_101", registered_at=T0 + timedelta(hours=1))
    make_investor(session, platform_user_id="x_102", registered_at=T0)
    assert _search(session, q="u_10") == (["u_101", "u_100"], 2)


def test_like_wildcards_in_the_query_are_taken_literally(session):
    make_investor(session, platform_user_id="u_100", registered_at=T0)
    make_investor(session, platform_user_id="ua100", registered_at=T0)
    assert _search(session, q="u_") == (["u_100"], 1)
    assert _search(session, q="%") == ([], 0)


def test_a_bare_mainland_mobile_is_normalised_before_matching(session):
    make_investor(session, platform_user_id="a", phone="+8613800138000")
    make_investor(session, platform_user_id="b", phone="+8613900139000")
    assert _search(session, q="138 0013 8000") == (["a"], 1)
    assert _search(session, q="+86 138-0013-8000") == (["a"], 1)


def test_the_last_four_digits_of_a_phone_find_the_investor(session):
    make_investor(session, platform_user_id="a", phone="+8613800138000")
    make_investor(session, platform_user_id="b", phone="+8613900139001")
    assert _search(session, q="8000") == (["a"], 1)


def test_fewer_than_four_digits_do_not_match_phones(session):
    make_investor(session, platform_user_id="a", phone="+8613800138000")
    assert _search(session, q="000") == ([], 0)


def test_a_name_finds_investors_with_that_whole_name_whatever_its_case_spaces_or_width(session):
    make_investor(session, platform_user_id="a", name="张三丰", registered_at=T0)
    make_investor(session, platform_user_id="b", name="张三", registered_at=T0 + timedelta(hours=1))
    make_investor(session, platform_user_id="c", name="李三", registered_at=T0)
    make_investor(session, platform_user_id="d", name="Zhang San", registered_at=T0)
    assert _search(session, q="张三") == (["b"], 1)
    assert _search(session, q="张 三丰") == (["a"], 1)
    assert _search(session, q="zhang san") == (["d"], 1)
    assert _search(session, q="ＺＨＡＮＧ san") == (["d"], 1)  # full-width letters
    # Names are encrypted: a keyed hash finds a whole name, never its beginning or a fragment.
    assert _search(session, q="zhang s") == ([], 0)
    assert _search(session, q="三") == ([], 0)


def test_an_email_finds_investors_by_the_whole_address_in_any_letter_case(session):
    make_investor(session, platform_user_id="a", email="Zhang.San@Example.com")
    make_investor(session, platform_user_id="b", email="li@example.com")
    assert _search(session, q="zhang.san@example.com") == (["a"], 1)
    assert _search(session, q=" ZHANG.SAN@EXAMPLE.COM ") == (["a"], 1)
    assert _search(session, q="ZHANG.SAN@ex") == ([], 0)
    assert _search(session, q="@example.com") == ([], 0)


def test_the_last_four_digits_find_a_short_foreign_phone_only_for_a_role_that_may_see_it(session):
    make_investor(session, platform_user_id="us", phone="+14155552671")  # masked: +*******671 (3 digits shown)
    make_investor(session, platform_user_id="cn", phone="+8613800132671")
    found, total = _search(session, q="2671", may_see_pii=True)
    assert sorted(found) == ["cn", "us"] and total == 2
    assert _search(session, q="2671", may_see_pii=False) == (["cn"], 1)


def test_a_longer_phone_tail_finds_the_phones_ending_with_it(session):
    make_investor(session, platform_user_id="a", phone="+8613800138000")
    make_investor(session, platform_user_id="b", phone="+8613900148000")
    assert _search(session, q="38000") == (["a"], 1)


def test_the_search_keys_follow_a_changed_profile(session):
    investor = make_investor(session, platform_user_id="a", phone="+8613800138000", name="张三")
    investor.phone, investor.name = "+8613900139999", "李四"
    session.flush()
    assert _search(session, q="8000") == ([], 0) and _search(session, q="张三") == ([], 0)
    assert _search(session, q="9999") == (["a"], 1) and _search(session, q="李四") == (["a"], 1)


def test_the_channel_filter_keeps_only_that_channels_investors(session):
    sem = AcquisitionChannel(code="baidu_sem", name="百度SEM")
    wx = AcquisitionChannel(code="wechat_mp", name="微信公众号")
    session.add_all([sem, wx])
    session.flush()
    make_investor(session, platform_user_id="a", channel_id=sem.id)
    make_investor(session, platform_user_id="b", channel_id=wx.id)
    make_investor(session, platform_user_id="c")
    assert _search(session, channel_id=sem.id) == (["a"], 1)


def test_the_milestone_filter_keeps_investors_who_reached_it(session):
    make_investor(session, platform_user_id="reg", registered_at=T0)
    make_investor(session, platform_user_id="kyc", registered_at=T0 + timedelta(hours=1), kyc_verified_at=T0)
    make_investor(session, platform_user_id="card", registered_at=T0 + timedelta(hours=2), kyc_verified_at=T0,
                  card_bound_at=T0)
    assert _search(session, milestone="kyc_verified") == (["card", "kyc"], 2)


def test_stalled_keeps_only_investors_who_have_not_reached_the_next_milestone(session):
    make_investor(session, platform_user_id="reg", registered_at=T0)
    make_investor(session, platform_user_id="kyc", registered_at=T0, kyc_verified_at=T0)
    make_investor(session, platform_user_id="card", registered_at=T0, kyc_verified_at=T0, card_bound_at=T0)
    assert _search(session, milestone="kyc_verified", stalled=True) == (["kyc"], 1)


def test_stalled_at_the_last_milestone_keeps_everyone_who_reached_it(session):
    make_investor(session, platform_user_id="rep", repeat_investment_at=T0)
    make_investor(session, platform_user_id="one", first_investment_at=T0)
    assert _search(session, milestone="repeat_investment", stalled=True) == (["rep"], 1)


def test_an_unknown_milestone_is_refused(session):
    with pytest.raises(DomainError):
        services.search_investors(session=session, milestone="bankrupt")


def test_newest_registrations_come_first_and_unregistered_investors_last(session):
    make_investor(session, platform_user_id="old", registered_at=T0)
    make_investor(session, platform_user_id="none", registered_at=None)
    make_investor(session, platform_user_id="new", registered_at=T0 + timedelta(days=1))
    assert _search(session) == (["new", "old", "none"], 3)


def test_pages_split_the_results_and_the_total_counts_them_all(session):
    for i in range(5):
        make_investor(session, platform_user_id=f"p{i}", registered_at=T0 + timedelta(minutes=i))
    assert _search(session, page=1, per_page=2) == (["p4", "p3"], 5)
    assert _search(session, page=3, per_page=2) == (["p0"], 5)
    assert _search(session, page=4, per_page=2) == ([], 5)


def test_the_list_takes_a_fixed_number_of_queries_whatever_the_page_size(app, session):
    channels = [AcquisitionChannel(code=f"ch{i}", name=f"渠道{i}") for i in range(3)]
    session.add_all(channels)
    session.flush()
    for i in range(12):
        make_investor(session, channel_id=channels[i % 3].id, registered_at=T0 + timedelta(minutes=i))
    session.commit()
    session.expunge_all()  # nothing cached: the channels must come from the list's own query

    from growth.db import get_db

    with count_statements(get_db(app).engine) as statements:
        rows, total = services.search_investors(session=session, page=1, per_page=10)
        names = [row.channel.name for row in rows if row.channel]
        totals = [row.investor.investment_total_fen for row in rows]
    assert total == 12 and len(names) == 10 and len(totals) == 10
    assert len(statements) <= 3, statements


def test_get_investor_raises_not_found_for_an_unknown_id(session):
    with pytest.raises(NotFound):
        services.get_investor(999_999, session=session)


def test_investor_events_are_the_users_raw_events_newest_first(session):
    investor = make_investor(session, platform_user_id="u_1")
    for i, user in enumerate(["u_1", "u_1", "u_2", "u_1"]):
        session.add(PlatformEvent(event_id=f"e{i}", type="user.kyc_verified", occurred_at=T0 + timedelta(hours=i),
                                  user_id=user, payload=json.dumps({"id": f"e{i}"})))
    session.flush()
    events, total = services.investor_events(investor, session=session, page=1, per_page=2)
    assert total == 3
    assert [e.event_id for e in events] == ["e3", "e1"]
    events, _ = services.investor_events(investor, session=session, page=2, per_page=2)
    assert [e.event_id for e in events] == ["e0"]


def test_pretty_payload_masks_the_users_contact_details_unless_revealed():
    raw = json.dumps({"user": {"id": "u_1", "phone": "+8613800138000", "name": "张三丰", "email": "zhang@example.com"}})
    masked = services.pretty_payload(raw)
    assert "138****8000" in masked and "张**" in masked and "z****@example.com" in masked
    assert "13800138000" not in masked and "zhang@" not in masked
    assert "+8613800138000" in services.pretty_payload(raw, masked=False)


def test_pretty_payload_hides_text_that_is_not_json_unless_unmasked():
    assert services.pretty_payload("not json {") == "****"
    assert services.pretty_payload("not json {", masked=False) == "not json {"


def test_the_export_masks_contact_details_and_writes_an_audit_entry(session):
    make_investor(session, platform_user_id="a", phone="+8613800138000", name="张三丰", email="zhang@example.com",
                  registered_at=T0, kyc_verified_at=T0, investment_total_fen=123_456)
    make_investor(session, platform_user_id="b", name="李四")
    rows = services.export_investors_csv(session=session, terms=search_terms("张三丰", may_see_pii=True), q="张三丰")
    assert len(rows) == 1
    row = dict(zip(services.EXPORT_COLUMNS, rows[0], strict=True))
    assert row["phone"] == "+86 138****8000" and row["name"] == "张**" and row["email"] == "z****@example.com"
    assert row["registered_at"] == "2026-03-01 10:00:00"  # Asia/Shanghai
    assert row["milestones"] == "registered kyc_verified"
    assert row["investment_total"] == "1234.56"
    entry = session.query(AuditEntry).filter_by(action="investor.exported").one()
    assert entry.details["rows"] == 1 and entry.details["filters"]["q"] == "张**"  # a name, kept masked
    assert entry.details["unmasked"] is False


def test_an_unmasked_export_carries_the_full_contact_details(session):
    make_investor(session, platform_user_id="a", phone="+8613800138000", name="张三丰")
    rows = services.export_investors_csv(session=session, unmasked=True)
    row = dict(zip(services.EXPORT_COLUMNS, rows[0], strict=True))
    assert row["phone"] == "+86 13800138000" and row["name"] == "张三丰"


def test_revealing_contact_details_writes_an_audit_entry(session):
    investor = make_investor(session, phone="+8613800138000")
    contact = services.reveal_contact_details(investor, reason="identity", session=session)
    assert contact.phone == "+86 13800138000"
    entry = session.query(AuditEntry).filter_by(action="investor.pii_revealed").one()
    assert entry.target_id == str(investor.id)
    assert entry.details == {"platform_user_id": investor.platform_user_id, "reason": "identity"}
