"""The investor 360 timeline on SQLite and PostgreSQL: every source, newest first, filters, windowed pages,
masked message texts, one query per source, and every query on an index."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from flask import Flask
from sqlalchemy import event, text

from channels.templates import NAME_SLOT
from growth.crm import timeline
from growth.crm.models import CrmCall, CrmNote
from growth.db import Base, get_db
from growth.investors.models import Investor
from tests.factories import make_investor, make_message
from tests.investor360 import DAY, EMAIL, NAME, NOW, make_rich_investor

EXPECTED_KINDS = {"milestone": 4, "investment": 6, "funds": 2, "reward": 2, "message": 2, "campaign": 1, "call": 1,
                  "note": 1, "task": 3}


@pytest.fixture
def rich(app: Flask):  # type: ignore[no-untyped-def]
    with get_db(app).session_scope(write=True) as s:
        return make_rich_investor(s)


@contextmanager
def _read(app: Flask) -> Iterator:  # type: ignore[type-arg]
    """A session inside a request context (the sources translate their titles)."""
    with app.test_request_context(), get_db(app).session_scope() as s:
        yield s


def _page(app: Flask, s, investor_id: int, **kw) -> timeline.TimelinePage:  # type: ignore[no-untyped-def]
    investor = s.get(Investor, investor_id)
    return timeline.timeline(investor, session=s, sources=timeline.sources_of(app), now=NOW, **kw)


def test_the_timeline_holds_every_kind_newest_first_with_the_coming_maturity_on_top(app, rich):
    with _read(app) as s:
        page = _page(app, s, rich.investor_id, per_page=100)
    entries = page.entries
    assert Counter(e.kind for e in entries) == EXPECTED_KINDS
    assert [e.at for e in entries] == sorted((e.at for e in entries), reverse=True)
    assert entries[0].kind == "investment" and entries[0].upcoming and "2026-12-07" in entries[0].title
    assert entries[-1].kind == "milestone" and entries[-1].at == NOW - 40 * DAY
    assert not page.has_more


def test_each_source_says_what_happened(app, rich):
    with _read(app) as s:
        entries = _page(app, s, rich.investor_id, per_page=100).entries
    by_kind: dict[str, list[timeline.Entry]] = {}
    for e in entries:
        by_kind.setdefault(e.kind, []).append(e)
    titles = " | ".join(e.title for e in entries)
    assert "投资 ¥10,000.00" in titles and "赎回 ¥5,000.00" in titles and "到期 ¥10,000.00" in titles
    assert "充值 ¥20,000.00" in titles and "提现 ¥3,000.00" in titles
    assert {e.status for e in by_kind["reward"]} == {"发放", "使用"}
    assert by_kind["reward"][0].link == timeline.Link("rewards.detail", {"reward_id": rich.reward_id})
    sms = next(e for e in by_kind["message"] if e.link and e.link.values["message_id"] == rich.message_id)
    assert sms.title == "短信 · 营销" and sms.status == "已送达" and f"活动 #{rich.campaign_id}" in sms.detail
    assert "模板 SMS_123" in sms.detail
    email = next(e for e in by_kind["message"] if e is not sms)
    assert email.status == "失败" and email.tone == "danger" and "550" in email.detail
    (member,) = by_kind["campaign"]
    assert member.title == "进入活动「双十二加息」" and "对照组" in member.detail and member.status == "对照组"
    assert member.link == timeline.Link("campaigns.detail", {"campaign_id": rich.campaign_id})
    (call,) = by_kind["call"]
    assert call.title == "通话：接通-有意向" and "想了解新手标" in call.detail and "下次回访" in call.detail
    assert call.link == timeline.Link("crm.task", {"task_id": rich.task_closed})
    assert by_kind["note"][0].detail == "客户偏好短期产品"
    assert [e.title for e in by_kind["task"]] == ["新任务：约定回访", "任务关闭：投资即将到期", "新任务：投资即将到期"]
    assert [m.title for m in by_kind["milestone"]] == ["达成里程碑：首投", "达成里程碑：首次充值",
                                                       "达成里程碑：实名认证", "达成里程碑：注册"]


def test_message_texts_are_masked_names_phones_and_emails(app, rich):
    with _read(app) as s:
        messages = [e for e in _page(app, s, rich.investor_id, per_page=100).entries if e.kind == "message"]
    shown = " ".join(e.detail for e in messages)
    assert NAME not in shown and "三丰" not in shown and "13800138000" not in shown and EMAIL not in shown
    assert "张**" in shown and "****8000" in shown and "****@example.com" in shown


def test_a_stored_name_slot_shows_as_the_masked_name_and_a_mass_send_without_a_name(app):
    with get_db(app).session_scope(write=True) as s:
        investor = make_investor(s, name=NAME)
        make_message(s, investor_id=investor.id, created_at=NOW - DAY,
                     content={"text": f"{NAME_SLOT}您好，红包已到账。回T退订"})
        make_message(s, investor_id=investor.id, channel="wechat", created_at=NOW - 2 * DAY,
                     content={"wechat_kind": "mass", "text": f"{NAME_SLOT}您好，理财节来了"})
        investor_id = investor.id
    with _read(app) as s:
        shown = [e.detail for e in _page(app, s, investor_id).entries if e.kind == "message"]
    assert any("张**您好，红包已到账。回T退订" in d for d in shown)
    assert any(d.endswith("您好，理财节来了") and "张" not in d for d in shown)  # it went to everyone with ""
    assert not any("\u2063" in d or NAME in d for d in shown)


def test_kinds_filter_the_timeline(app, rich):
    with _read(app) as s:
        page = _page(app, s, rich.investor_id, kinds=frozenset({"call", "note"}), per_page=100)
    assert [e.kind for e in page.entries] == ["note", "call"]
    assert page.kinds == {"call", "note"}
    assert timeline.parse_kinds(["call", "nope", "campaign"], timeline.sources_of(app)) == {"call", "campaign"}


def test_pages_read_a_window_and_together_give_the_whole_timeline_in_order(app, rich):
    with _read(app) as s:
        whole = _page(app, s, rich.investor_id, per_page=100).entries
        pages = [_page(app, s, rich.investor_id, page=n, per_page=5) for n in range(1, 6)]
    assert [p.has_more for p in pages] == [True, True, True, True, False]
    assert [(e.at, e.kind, e.title) for p in pages for e in p.entries] == [(e.at, e.kind, e.title) for e in whole]


def test_an_investor_with_nothing_has_no_entries(app):
    with get_db(app).session_scope(write=True) as s:
        investor_id = make_investor(s, registered_at=None).id
    with _read(app) as s:
        page = _page(app, s, investor_id)
    assert page.entries == [] and not page.has_more


def test_a_kind_registered_twice_is_refused(app):
    with pytest.raises(ValueError, match="twice"):
        timeline.register_source(app, "campaign", lambda ctx: [], label="x")
    with pytest.raises(ValueError, match="twice"):
        timeline.register_source(app, "call", lambda ctx: [], label="x")
    assert [s.kind for s in timeline.sources_of(app)] == ["milestone", "investment", "funds", "reward", "message",
                                                          "campaign", "call", "note", "task"]


def _statements(app: Flask, investor_id: int) -> list[tuple[str, object]]:
    seen: list[tuple[str, object]] = []

    def before(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        if statement.lstrip().upper().startswith("SELECT"):
            seen.append((statement, parameters))

    engine = get_db(app).engine
    with _read(app) as s:
        investor = s.get(Investor, investor_id)
        event.listen(engine, "before_cursor_execute", before)
        try:
            timeline.timeline(investor, session=s, sources=timeline.sources_of(app), now=NOW)
        finally:
            event.remove(engine, "before_cursor_execute", before)
    return seen


def test_the_timeline_costs_one_query_per_source_however_many_rows(app, rich):
    few = len(_statements(app, rich.investor_id))
    with get_db(app).session_scope(write=True) as s:
        for n in range(30):
            at = NOW - n * DAY / 10
            make_message(s, investor_id=rich.investor_id, created_at=at, updated_at=at)
            s.add(CrmCall(investor_id=rich.investor_id, agent_id=rich.agent_id, outcome="no_answer", created_at=at))
            s.add(CrmNote(investor_id=rich.investor_id, author_id=rich.agent_id, body=f"n{n}", created_at=at))
    assert len(_statements(app, rich.investor_id)) == few == 9  # investments twice, every other source once


def _pg_full_scans(plan: str, tables: set[str], leading: dict[str, str]) -> list[str]:
    """Return what a PostgreSQL plan reads whole: a Seq Scan of a table, or an index whose Index Cond does not
    hold the index's leading column (a scan of the whole index)."""
    nodes = re.split(r"\n(?=\s*(?:->\s*)?[A-Z][\w ]*Scan)", plan)
    full = []
    for node in nodes:
        seq = re.search(r"Seq Scan on (\w+)", node)
        if seq and seq.group(1) in tables:
            full.append(seq.group(1))
        index = re.search(r"(?:Index Scan|Index Only Scan) using (\w+) on|Bitmap Index Scan on (\w+)", node)
        if index:
            name = index.group(1) or index.group(2)
            cond = re.search(r"Index Cond: (.*)", node)
            if not cond or not re.search(rf"\b{re.escape(leading.get(name, '?'))}\b", cond.group(1)):
                full.append(name)
    return full


def test_every_timeline_query_reads_an_index_not_a_whole_table(app, rich, db_kind):
    tables = set(Base.metadata.tables)
    statements = _statements(app, rich.investor_id)
    engine = get_db(app).engine
    problems = []
    with engine.connect() as conn:
        leading = {}
        if db_kind == "postgresql":  # each index's first column, which an index search must constrain
            for name, definition in conn.execute(text("SELECT indexname, indexdef FROM pg_indexes")):
                leading[name] = definition.split("(", 1)[1].split(",")[0].split(")")[0].strip().strip('"')
        raw = conn.connection.driver_connection
        for statement, parameters in statements:
            cursor = raw.cursor()
            if db_kind == "sqlite":
                cursor.execute("EXPLAIN QUERY PLAN " + statement, parameters)
                plan = "\n".join(str(row[-1]) for row in cursor.fetchall())
                scanned = [t for t in re.findall(r"\bSCAN (\w+)", plan) if t in tables]
            else:
                cursor.execute("SET enable_seqscan = off")
                cursor.execute("EXPLAIN " + statement, parameters)
                plan = "\n".join(str(row[0]) for row in cursor.fetchall())
                scanned = _pg_full_scans(plan, tables, leading)
            if scanned:
                problems.append((scanned, statement, plan))
    assert problems == []
