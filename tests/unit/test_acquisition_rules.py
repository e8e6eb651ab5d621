"""Pure acquisition rules: channel codes, landing URLs, short codes, cost amounts and cost sheets."""

from __future__ import annotations

import csv
import io
import re
import string
from datetime import UTC, date, datetime
from urllib.parse import parse_qsl, urlsplit

import pytest
from flask_babel import LazyString

from growth.acquisition import rules

# 16:30 UTC on 30 Nov is already 00:30 on 1 Dec in Shanghai.
NOW = datetime(2026, 11, 30, 16, 30, tzinfo=UTC)
CJK = re.compile(r"[\u4e00-\u9fff]")


@pytest.mark.parametrize("code", ["ab", "baidu_sem", "so360", "a" * 64, "0_9"])
def test_a_lowercase_code_of_2_to_64_characters_is_a_valid_channel_code(code):
    assert rules.validate_channel_code(code) == code
    assert rules.channel_code_error(code) is None


def test_surrounding_blanks_are_trimmed_from_a_channel_code():
    assert rules.validate_channel_code("  wdzj ") == "wdzj"


@pytest.mark.parametrize("code", ["a", "a" * 65, "Baidu", "baidu-sem", "百度", "baidu sem", ""])
def test_a_channel_code_with_other_characters_or_lengths_is_refused_with_one_chinese_message_id(code):
    with pytest.raises(rules.RuleError) as err:
        rules.validate_channel_code(code)
    message = str(err.value)
    assert message.startswith("渠道代码")
    assert " / " not in message and not re.search(r"[A-Za-z]{3,}", message)
    assert isinstance(err.value.message, LazyString)  # translated when shown, in the reader's language


def test_an_unknown_kind_is_refused_and_a_known_one_kept():
    assert rules.validate_kind("vertical") == "vertical"
    with pytest.raises(rules.RuleError):
        rules.validate_kind("tv")


def test_landing_url_gets_the_tracking_parameters_after_its_own_query_and_before_its_fragment():
    url = rules.build_landing_url(
        "https://invest.example.com/lp/newbie?ch=old&x=a%20b#signup",
        rules.tracking_params(click_id="cABC", channel_code="baidu_sem",
                              utm={"utm_source": "baidu", "utm_campaign": "双十一", "utm_medium": ""}),
    )
    parts = urlsplit(url)
    assert parts.fragment == "signup"
    assert parts.query.startswith("ch=old&x=a%20b&")  # the existing query is kept byte for byte
    assert parse_qsl(parts.query) == [("ch", "old"), ("x", "a b"), ("click_id", "cABC"),
                                      ("channel_code", "baidu_sem"), ("utm_source", "baidu"),
                                      ("utm_campaign", "双十一")]


def test_our_parameters_replace_existing_ones_of_the_same_name():
    url = rules.build_landing_url("https://x.example/p?utm_source=old&keep=1&channel_code=zzz",
                                  [("channel_code", "wdzj"), ("utm_source", "new")])
    assert parse_qsl(urlsplit(url).query) == [("keep", "1"), ("channel_code", "wdzj"), ("utm_source", "new")]


def test_a_landing_url_without_a_query_gets_one():
    assert rules.build_landing_url("https://x.example/p", {"channel_code": "seo"}) == \
        "https://x.example/p?channel_code=seo"


def test_without_a_click_the_parameters_carry_only_the_channel_and_utm():
    pairs = rules.tracking_params(click_id=None, channel_code="seo", utm={"utm_source": "google"})
    assert [k for k, v in pairs if v] == ["channel_code", "utm_source"]


@pytest.mark.parametrize("url", ["javascript:alert(1)", "/relative/path", "ftp://x.example/", "https://",
                                 "https://x.example/a b", "", "https://x.example/" + "a" * 1000])
def test_a_landing_url_that_is_not_an_absolute_http_url_is_refused(url):
    with pytest.raises(rules.RuleError):
        rules.validate_landing_url(url)


def test_an_absolute_https_landing_url_is_accepted():
    assert rules.validate_landing_url(" https://x.example/p?a=1 ") == "https://x.example/p?a=1"


def test_generated_short_codes_use_only_unambiguous_characters():
    codes = {rules.new_link_code() for _ in range(200)}
    assert len(codes) == 200
    for code in codes:
        assert len(code) == rules.LINK_CODE_LENGTH
        assert not set(code) & set("01ilo")
        assert set(code) <= set(rules.LINK_CODE_ALPHABET)


def test_a_short_code_comes_from_the_random_source_given():
    assert rules.new_link_code(lambda alphabet: alphabet[0], length=4) == "2222"


@pytest.mark.parametrize("code", ["wdzj2026", "Spring-Promo", "a_b"])
def test_a_chosen_short_code_may_use_letters_digits_dash_and_underscore(code):
    assert rules.validate_link_code(code) == code


@pytest.mark.parametrize("code", ["ab", "a" * 33, "有中文", "a/b", "a b"])
def test_a_chosen_short_code_outside_the_rules_is_refused(code):
    with pytest.raises(rules.RuleError):
        rules.validate_link_code(code)


def test_a_click_id_is_c_and_20_url_safe_characters():
    ids = {rules.new_click_id() for _ in range(100)}
    assert len(ids) == 100
    allowed = set(string.ascii_letters + string.digits + "-_")
    for click_id in ids:
        assert len(click_id) == 21
        assert click_id[0] == "c"
        assert set(click_id[1:]) <= allowed


def test_the_short_url_joins_the_public_base_and_the_code():
    assert rules.short_url("https://g.example.com/", "ab3d") == "https://g.example.com/t/ab3d"


def test_a_visitor_ip_is_masked_to_its_network():
    assert rules.mask_ip("203.0.113.7") == "203.0.113.*"
    assert rules.mask_ip("2001:db8:85a3:0:0:8a2e:370:7334") == "2001:db8:85a3:*"
    assert rules.mask_ip("") == ""


@pytest.mark.parametrize(("text", "fen"), [("1234.56", 123456), ("0", 0), ("0.00", 0), ("12.5", 1250),
                                           ("7", 700), (" 1,234.50 ", 123450), ("¥99.90", 9990)])
def test_a_yuan_amount_is_parsed_into_fen(text, fen):
    assert rules.parse_cost_amount(text) == fen


@pytest.mark.parametrize(("text", "needle"), [("-1", "负数"), ("1.234", "两位小数"), ("abc", "以元为单位"),
                                              ("", "请填写金额"), ("1e5", "以元为单位"), ("01.5", "以元为单位")])
def test_a_bad_amount_is_refused_with_a_reason(text, needle):
    with pytest.raises(rules.RuleError) as err:
        rules.parse_cost_amount(text)
    assert needle in str(err.value)


def test_a_cost_for_today_in_shanghai_is_fine_but_tomorrow_is_in_the_future():
    assert rules.cost_errors(date(2026, 12, 1), 100, NOW) == []
    problems = rules.cost_errors(date(2026, 12, 2), 100, NOW)
    assert [field for field, _message in problems] == ["day"]
    assert str(problems[0][1]) == "日期不能晚于今天（北京时间）"


def test_a_negative_cost_is_refused():
    assert [f for f, _m in rules.cost_errors(date(2026, 11, 1), -1, NOW)] == ["amount"]


@pytest.mark.parametrize(("text", "day"), [("2026-11-30", date(2026, 11, 30)), ("2026/1/5", date(2026, 1, 5))])
def test_cost_dates_are_read_as_iso_or_as_excel_writes_them(text, day):
    assert rules.parse_cost_date(text) == day


@pytest.mark.parametrize("text", ["2026-02-30", "30/11/2026", "20261130", "yesterday"])
def test_a_bad_cost_date_is_refused(text):
    with pytest.raises(rules.RuleError):
        rules.parse_cost_date(text)


def test_a_cost_sheet_gives_its_valid_rows_and_reports_bad_ones_by_row_number():
    sheet = rules.parse_cost_csv(
        "date,channel_code,amount,note\n"
        "2026-11-28,baidu_sem,1234.56,双十一加投\n"
        "2026-11-28,wdzj,abc,\n"
        "2026-13-01,wdzj,10,\n"
        "2026-11-29,,10,\n"
        "2026-12-02,wdzj,10,\n"
        "2026-11-29,wdzj,0\n",
        now=NOW,
    )
    assert [(r.row, r.day, r.channel_code, r.amount_fen, r.note) for r in sheet.rows] == [
        (2, date(2026, 11, 28), "baidu_sem", 123456, "双十一加投"),
        (7, date(2026, 11, 29), "wdzj", 0, ""),
    ]
    assert [(e.row, e.field) for e in sheet.errors] == [(3, "amount"), (4, "date"), (5, "channel_code"),
                                                       (6, "date")]
    for error in sheet.errors:
        assert " / " not in str(error.message) and CJK.search(str(error.message))


def test_a_row_with_several_problems_reports_each_of_them():
    sheet = rules.parse_cost_csv("date,channel_code,amount\nnope,,-5\n", now=NOW)
    assert sheet.rows == []
    assert sorted(e.field for e in sheet.errors) == ["amount", "channel_code", "date"]
    assert {e.row for e in sheet.errors} == {2}


def test_a_cost_sheet_without_its_header_row_is_refused_as_a_whole():
    sheet = rules.parse_cost_csv("2026-11-28,baidu_sem,100\n", now=NOW)
    assert sheet.rows == []
    assert len(sheet.errors) == 1
    assert sheet.errors[0].row == 1
    assert str(sheet.errors[0].message) == (
        "第一行须为表头，包含 date, channel_code, amount（可选 note）；缺少：date, channel_code, amount")


def test_an_empty_sheet_and_a_header_only_sheet_are_reported():
    assert str(rules.parse_cost_csv("", now=NOW).errors[0].message) == "文件是空的"
    only_header = rules.parse_cost_csv("date,channel_code,amount\n\n", now=NOW)
    assert only_header.rows == []
    assert str(only_header.errors[0].message) == "文件中没有数据行"


def test_chinese_headers_in_any_order_a_bom_and_extra_columns_are_understood():
    text = "\ufeff金额（元）,备注,渠道代码,日期,经办人\n88.80,test,so360,2026-11-01,张三\n"
    sheet = rules.parse_cost_csv(text.encode("utf-8"), now=NOW)
    assert sheet.errors == []
    assert sheet.rows == [rules.CostRow(2, date(2026, 11, 1), "so360", 8880, "test")]


def test_a_sheet_saved_by_chinese_excel_in_gbk_is_decoded():
    data = "日期,渠道代码,金额,备注\n2026-11-01,so360,10,线下物料\n".encode("gbk")
    sheet = rules.parse_cost_csv(data, now=NOW)
    assert sheet.errors == []
    assert sheet.rows[0].note == "线下物料"


def test_row_numbers_count_blank_lines_and_quoted_line_breaks_as_excel_does():
    text = 'date,channel_code,amount,note\n\n2026-11-01,seo,1,"two\nlines"\n2026-11-02,seo,x,\n'
    sheet = rules.parse_cost_csv(text, now=NOW)
    assert [r.row for r in sheet.rows] == [3]
    assert [e.row for e in sheet.errors] == [4]


def test_a_second_row_for_the_same_channel_and_day_is_refused_and_the_first_stands():
    sheet = rules.parse_cost_csv("date,channel_code,amount\n2026-11-01,seo,1\n2026-11-01,seo,2\n", now=NOW)
    assert [(r.row, r.amount_fen) for r in sheet.rows] == [(2, 100)]
    assert [e.row for e in sheet.errors] == [3]
    assert str(sheet.errors[0].message) == "与第 2 行的渠道和日期重复"


def test_a_note_longer_than_200_characters_is_refused():
    sheet = rules.parse_cost_csv(f"date,channel_code,amount,note\n2026-11-01,seo,1,{'x' * 201}\n", now=NOW)
    assert sheet.rows == []
    assert [e.field for e in sheet.errors] == ["note"]


def test_an_exported_sheet_parses_back_to_the_same_rows():
    rows = [(date(2026, 11, 1), "seo", 123405, "a,b"), (date(2026, 11, 2), "wdzj", 0, "")]
    exported = rules.cost_csv_rows(rows)
    assert exported[0] == ["date", "channel_code", "amount", "note"]
    assert exported[1] == ["2026-11-01", "seo", "1234.05", "a,b"]
    buf = io.StringIO()
    csv.writer(buf).writerows(exported)
    sheet = rules.parse_cost_csv(buf.getvalue(), now=NOW)
    assert [(r.day, r.channel_code, r.amount_fen, r.note) for r in sheet.rows] == rows


# ---------------------------------------------------------------- the reporting period

TODAY = date(2026, 11, 20)


@pytest.mark.parametrize(("key", "start", "end"), [
    ("7d", date(2026, 11, 14), date(2026, 11, 20)),
    ("30d", date(2026, 10, 22), date(2026, 11, 20)),
    ("90d", date(2026, 8, 23), date(2026, 11, 20)),
    ("this_month", date(2026, 11, 1), date(2026, 11, 20)),
    ("last_month", date(2026, 10, 1), date(2026, 10, 31)),
    (None, date(2026, 10, 22), date(2026, 11, 20)),
    ("", date(2026, 10, 22), date(2026, 11, 20)),
])
def test_each_named_period_covers_its_business_days_up_to_today(key, start, end):
    period = rules.resolve_period(key, today=TODAY)
    assert (period.start, period.end) == (start, end)
    assert period.days == (end - start).days + 1
    assert period.url_args() == {"period": key or "30d"}


def test_last_month_in_january_is_december_of_the_year_before():
    period = rules.resolve_period("last_month", today=date(2027, 1, 1))
    assert (period.start, period.end) == (date(2026, 12, 1), date(2026, 12, 31))
    assert rules.resolve_period("this_month", today=date(2027, 1, 1)).days == 1


def test_a_custom_period_keeps_its_dates_in_the_url_and_dates_alone_mean_custom():
    period = rules.resolve_period("custom", "2026-11-01", "2026/11/15", today=TODAY)
    assert (period.key, period.start, period.end, period.days) == ("custom", date(2026, 11, 1), date(2026, 11, 15), 15)
    assert period.url_args() == {"period": "custom", "start": "2026-11-01", "end": "2026-11-15"}
    assert rules.resolve_period(None, "2026-11-01", "2026-11-02", today=TODAY).key == "custom"
    assert rules.resolve_period("7d", "2020-01-01", "2020-01-02", today=TODAY).start == date(2026, 11, 14)


@pytest.mark.parametrize(("key", "start", "end", "message"), [
    ("custom", "", "2026-11-01", "自定义期间须填写开始和结束日期"),
    ("custom", "2026-11-15", "2026-11-01", "开始日期不能晚于结束日期"),
    ("custom", "2026-02-30", "2026-03-01", "日期不存在：2026-02-30"),
    ("custom", "1999-12-31", "2026-03-01", "日期须在 2000-01-01 至 2027-11-21 之间"),
    ("custom", "2026-01-01", "2028-01-01", "日期须在 2000-01-01 至 2027-11-21 之间"),
    ("custom", "2000-01-01", "2026-11-20", "自定义期间最长 3660 天"),
    ("forever", None, None, "未知的统计期间：forever"),
])
def test_a_period_that_makes_no_sense_is_refused_with_a_reason(key, start, end, message):
    with pytest.raises(rules.RuleError) as err:
        rules.resolve_period(key, start, end, today=TODAY)
    assert str(err.value) == message


@pytest.mark.parametrize(("cost", "count", "per"), [(123456, 2, 61728), (100, 3, 33), (200, 3, 67), (1, 2, 1),
                                                    (0, 5, 0), (100, 0, None), (5, -1, None)])
def test_cost_per_unit_rounds_half_up_and_is_none_without_a_divisor(cost, count, per):
    assert rules.cost_per(cost, count) == per
