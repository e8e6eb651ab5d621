"""What a new user tripped on: raw codes, JSON details, numbers without separators, cut user agents."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from growth.acquisition import services as acquisition
from growth.audit.services import record
from growth.db import get_db
from growth.events.models import PlatformEvent
from growth.events.rules import EVENT_TYPE_LABELS, EVENT_TYPES
from growth.investors.models import MILESTONE_LABELS, MILESTONES


def test_each_value_list_has_its_labels_beside_it_and_dashboards_import_no_views_for_them():
    assert set(EVENT_TYPE_LABELS) == EVENT_TYPES
    assert tuple(MILESTONE_LABELS) == MILESTONES
    import pathlib

    for path in pathlib.Path("dashboards").glob("*.py"):
        assert not re.search(r"from growth\.\w+\.views import|import growth\.\w+\.views", path.read_text()), path


def test_the_audit_log_shows_labelled_details_in_chinese_with_money_in_yuan_and_linked_targets(app, client, login):
    with get_db(app).session_scope(write=True) as s:
        channel = acquisition.create_channel(code="baidu_sem", name="百度SEM", session=s, by="test")
        # As the acquisition package records a daily cost (amounts in fen).
        record("cost.set", session=s, target_type="channel", target_id=channel.id, actor="test",
               details={"code": "baidu_sem", "day": "2026-11-30", "amount_fen": 123456789, "note": "春节投放",
                        "previous_fen": None})
        channel_id = channel.id
    login("admin")

    text = client.get("/admin/audit/?action=cost.set").get_data(as_text=True)

    row = re.search(r'<tr data-action="cost.set">(.*?)</tr>', text, re.S).group(1)
    assert "录入渠道成本" in row
    assert f'href="/acquisition/channels/{channel_id}"' in row and "百度SEM" in row
    assert re.search(r"金额</dt>\s*<dd[^>]*>¥1,234,567.89</dd>", row)
    assert "春节投放" in row and "\\u" not in row and "amount_fen" not in row.replace('data-field="amount_fen"', "")

    csv = client.get("/admin/audit/export.csv?action=cost.set").get_data(as_text=True)
    assert '""amount_fen"": 123456789' in csv and "春节投放" in csv  # the export keeps the full details


def test_a_role_change_reads_as_role_names(app, client, login):
    admin = login("admin")
    with get_db(app).session_scope(write=True) as s:
        record("user.role_changed", session=s, target_type="staff_user", target_id=admin.id, actor="test",
               details={"email": admin.email, "from": "agent", "to": "analyst"})

    row = re.search(r'<tr data-action="user.role_changed">(.*?)</tr>',
                    client.get("/admin/audit/").get_data(as_text=True), re.S).group(1)

    assert "客服" in row and "管理层/分析" in row and "修改角色" in row


def test_the_event_log_shows_type_labels_and_counts_with_separators(app, client, login):
    at = datetime(2026, 11, 30, tzinfo=UTC)
    with get_db(app).session_scope(write=True) as s:
        s.add_all([PlatformEvent(event_id=f"e{i}", type="funds.deposited", occurred_at=at, user_id=f"u{i}",
                                 payload="{}") for i in range(1234)])
    login("agent")

    text = client.get("/events/").get_data(as_text=True)

    assert re.search(r'id="events-total">1,234<', text)
    assert "共 1,234 条" in text
    assert re.search(r'<td class="text-nowrap" title="funds.deposited">充值</td>', text)
    assert '<option value="funds.deposited" >充值 · funds.deposited</option>' in text


def test_a_long_user_agent_is_cut_at_a_word_with_the_full_value_in_its_title(app, client, login):
    ua = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
          "Mobile/15E148 MicroMessenger/8.0.47(0x18002f2c) NetType/WIFI Language/zh_CN")
    with get_db(app).session_scope(write=True) as s:
        channel = acquisition.create_channel(code="wx", name="微信", session=s, by="test")
        link = acquisition.create_link(channel, name="落地页", landing_url="https://example.com/lp", session=s)
        channel_id, code = channel.id, link.code
    client.get(f"/t/{code}", headers={"User-Agent": ua})
    login("marketer")

    text = client.get(f"/acquisition/channels/{channel_id}").get_data(as_text=True)

    cell = re.search(r'<td class="small" title="([^"]*)">([^<]*)</td>', text)
    assert cell.group(1) == ua
    shown = cell.group(2)
    assert shown.endswith("…") and len(shown) <= 61
    assert ua.startswith(shown[:-1]) and ua[len(shown) - 1] == " "  # cut where a word ends

