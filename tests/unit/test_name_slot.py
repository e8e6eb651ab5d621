"""The name slot: a message rendered with `NAME_SLOT` and filled at send time reads as if rendered with the name."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from channels.templates import NAME_SLOT, context, fill_name, has_slot, name_transformed, render

TEXTS = ["{{ investor.name }}您好，{{ reward.amount }}元红包已到账。回T退订", "{{ investor.name }}",
         "尊敬的{{ investor.name }}：{{ investor.name }}，您好", "{{ investor.name|trim }}您好", "您好"]
HTML = ["<p>{{ investor.name }}您好</p>", '<a title="{{ investor.name }}">{{ investor.name }}</a>']
NAMES = ["张三", "<b>&</b>", "O'Neil \"Jr\"", "李😀四", "", "空 格", "a{{ b }}", "&amp;"]
# Any name a person may have, short of the slot itself (an invisible separator on its own is fine).
names = st.text(max_size=30).filter(lambda n: NAME_SLOT not in n and n == n.strip())


def _vars(name: str) -> dict:
    return context(investor_name=name, masked_phone="138****0000", reward_amount="50.00")


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("template", TEXTS)
def test_a_text_filled_at_send_time_is_the_text_rendered_with_the_name(template, name):
    stored = render(template, _vars(NAME_SLOT))
    assert fill_name({"text": stored}, name)["text"] == render(template, _vars(name))


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("template", HTML)
def test_html_gets_the_name_escaped_exactly_as_autoescaping_would_have(template, name):
    stored = render(template, _vars(NAME_SLOT), html=True)
    assert NAME_SLOT in stored  # autoescaping leaves the slot whole
    assert fill_name({"html": stored}, name)["html"] == render(template, _vars(name), html=True)


@given(name=names, template=st.sampled_from(TEXTS))
def test_any_name_fills_a_text_as_rendering_it_would(name, template):
    stored = render(template, _vars(NAME_SLOT))
    assert fill_name({"text": stored}, name)["text"] == render(template, _vars(name))


@given(name=names, template=st.sampled_from(HTML))
def test_any_name_fills_html_escaped_as_rendering_it_would(name, template):
    stored = render(template, _vars(NAME_SLOT), html=True)
    assert fill_name({"html": stored}, name)["html"] == render(template, _vars(name), html=True)


def test_an_absent_name_fills_nothing_as_the_template_gave_before():
    stored = {"text": f"{NAME_SLOT}您好", "params": {"name": NAME_SLOT}}
    assert fill_name(stored, None) == fill_name(stored, "") == {"text": "您好", "params": {"name": ""}}


def test_every_string_of_every_channel_is_filled_and_only_html_is_escaped():
    name = "<b>李&四</b>"
    content = {
        "subject": f"{NAME_SLOT}，欢迎", "text": f"{NAME_SLOT}您好", "html": f"<p>{NAME_SLOT}</p>",
        "template_code": "SMS_1", "params": {"name": NAME_SLOT, "amount": "50.00"},
        "wechat_kind": "template", "data": {"first": f"{NAME_SLOT}，红包已到账", "keyword1": {"value": NAME_SLOT}},
        "url": f"https://example.com/?n={NAME_SLOT}",
        "fallbacks": [{"channel": "email", "content": {"text": NAME_SLOT, "html": NAME_SLOT}}],
    }
    filled = fill_name(content, name)
    assert filled == {
        "subject": f"{name}，欢迎", "text": f"{name}您好", "html": "<p>&lt;b&gt;李&amp;四&lt;/b&gt;</p>",
        "template_code": "SMS_1", "params": {"name": name, "amount": "50.00"},
        "wechat_kind": "template", "data": {"first": f"{name}，红包已到账", "keyword1": {"value": name}},
        "url": f"https://example.com/?n={name}",
        "fallbacks": [{"channel": "email", "content": {"text": name, "html": "&lt;b&gt;李&amp;四&lt;/b&gt;"}}],
    }
    assert has_slot(content) and not has_slot(filled)
    assert content["text"] == f"{NAME_SLOT}您好"  # the stored content is left as it was


def test_has_slot_looks_into_every_string():
    assert not has_slot({"text": "您好", "params": {"a": "1"}, "n": 3, "none": None})
    assert has_slot({"data": {"k": {"value": f"x{NAME_SLOT}"}}})
    assert has_slot({"fallbacks": [{"content": {"text": NAME_SLOT}}]})
    assert not has_slot({"text": "\u2063"})  # an invisible separator alone is not a slot


def test_the_slot_is_invisible_markup_free_and_survives_the_case_filters_and_trim():
    assert NAME_SLOT.startswith("\u2063") and NAME_SLOT.endswith("\u2063")
    assert not set(NAME_SLOT) & set("<>&'\"{}%#")
    for template in ("{{ investor.name|upper }}", "{{ investor.name|lower }}", "{{ investor.name|title }}",
                     "{{ investor.name|capitalize }}", "{{ investor.name|trim }}", "{{ investor.name|string }}"):
        assert render(template, _vars(NAME_SLOT)) == NAME_SLOT, template


@pytest.mark.parametrize(("template", "transformed"), [
    ("{{ investor.name }}您好", False), ('{{ investor["name"] }}您好', False), ("{{ campaign.name }}", False),
    ("{{ investor.masked_phone }}", False), ("{{ investor.name ", False),  # a syntax error is reported elsewhere
    ('{{ investor.name or "客户" }}您好', True), ("{% if investor.name %}{{ investor.name }}{% endif %}", True),
    ("{{ investor.name[0] }}先生", True), ("{{ investor.name|upper }}", True), ("{{ investor.name|e }}", True),
    ("{% set who = investor.name %}{{ who }}", True), ("{{ investor.name.upper() }}", True),
])
def test_a_template_that_does_more_with_the_name_than_print_it_is_told_apart(template, transformed):
    assert name_transformed(template) is transformed


def test_the_library_refuses_and_the_campaign_editor_warns_of_a_name_used_other_than_printed():
    from campaigns.compliance import check, name_problems
    from campaigns.definition import parse
    from channels.template_library import TemplateDraft
    from channels.template_library import check as check_template

    draft = TemplateDraft("回访", "sms", "service", body='{{ investor.name or "客户" }}您好', provider_template="SMS_1",
                          params={"name": "{{ investor.name[0] }}", "ok": "{{ investor.name }}"})
    assert [(p.field, p.code) for p in check_template(draft) if p.code == "name_transformed"] == [
        ("body", "name_transformed"), ("params", "name_transformed")]
    campaign = parse({"name": "回访", "type": "broadcast", "class": "service",
                      "schedule": {"at": "2026-12-03T10:00:00+08:00"},
                      "messages": [{"channel": "sms", "text": "{{ investor.name }}您好",
                                    "params": {"name": "{{ investor.name|default('客户', true) }}"},
                                    "template_code": "SMS_1"}]})
    assert [(p.path, p.code) for p in name_problems(campaign)] == [("messages[0].params.name", "name_transformed")]
    assert check(campaign) == []  # not a spec §3 code: submit does not refuse it
