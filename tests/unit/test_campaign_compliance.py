"""Compliance rules on campaign wording (spec §3 codes), over parsed definitions."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from campaigns.compliance import BANNED_PHRASES, banned_phrases, check, has_risk_warning, mentions_rate
from campaigns.definition import parse

BASE: dict[str, Any] = {
    "name": "双12加息",
    "type": "rate_boost",
    "class": "marketing",
    "trigger": {"on": "registered"},
    "rewards": [{"kind": "rate_boost", "annual_rate": "0.0100", "max_days": 30, "valid_days": 7}],
    "messages": [{"channel": "sms", "text": "{{ investor.name }}您好，加息券已到账。投资有风险，理财需谨慎。回T退订"}],
}


def codes(**changes: Any) -> list[tuple[str, str]]:
    document = copy.deepcopy(BASE)
    document.update(changes)
    return [(p.path, p.code) for p in check(parse(document))]


def sms(text: str) -> list[dict[str, Any]]:
    return [{"channel": "sms", "text": text}]


def test_a_clean_marketing_campaign_has_no_problem():
    assert codes() == []


@pytest.mark.parametrize("phrase", BANNED_PHRASES)
def test_every_banned_phrase_is_found(phrase: str):
    assert banned_phrases(f"本产品{phrase}，欢迎投资") == [phrase]


@pytest.mark.parametrize("disguised", [
    "保 本", "保，本", "保\u200b本", "保\u3000本", "保-本", "保<b>本</b>", "保\u2060本", "保\ufeff本", "保\u00ad本",
])
def test_banned_phrases_are_found_through_spaces_punctuation_tags_and_invisible_characters(disguised: str):
    assert banned_phrases(f"放心{disguised}产品") == ["保本"]


def test_full_width_forms_are_folded_before_matching():
    assert banned_phrases("１００％本息保障") == ["100%本息保障"]
    assert banned_phrases("１００％ 本息 保障") == ["100%本息保障"]


def test_an_overlapping_longer_phrase_is_reported_once_as_itself():
    assert banned_phrases("稳赚不赔") == ["稳赚不赔"]
    assert banned_phrases("保本保息") == ["保本保息"]


def test_text_without_a_banned_phrase_passes():
    assert banned_phrases("风险自担，理性投资") == []
    assert banned_phrases("") == []


def test_a_banned_phrase_anywhere_in_a_message_or_the_name_is_a_problem_at_its_path():
    found = codes(name="稳赚活动", messages=[
        {"channel": "email", "subject": "零 风 险", "text": "hi", "html": "<p>刚性<i>兑付</i></p>"},
        {"channel": "sms", "text": "保本！回T退订", "params": {"n": "{{ investor.name }}无风险"}},
    ])
    assert found == [
        ("name", "banned_phrase"),
        ("messages[0].subject", "banned_phrase"),
        ("messages[0].html", "banned_phrase"),
        ("messages[1].text", "banned_phrase"),
        ("messages[1].params.n", "banned_phrase"),
    ]


@pytest.mark.parametrize("text", ["年化8%", "预期收益高", "8.5 ％ 的回报", "限时加息", "利率上调"])
def test_a_rate_or_yield_without_the_risk_warning_is_a_problem(text: str):
    assert mentions_rate(text)
    assert codes(messages=sms(f"{text}。回T退订")) == [("messages[0]", "risk_warning_missing")]


def test_the_risk_warning_may_be_spaced_or_in_another_part_of_the_same_message():
    assert has_risk_warning("投资 有风险，理财需谨慎")
    assert codes(messages=[{"channel": "email", "subject": "年化8%", "text": "投资有风险"}]) == []


def test_text_without_a_rate_needs_no_risk_warning():
    assert not mentions_rate("红包已到账，快来看看")
    assert codes(messages=sms("红包已到账。回T退订")) == []


def test_unknown_template_variables_are_problems_at_their_field():
    found = codes(messages=sms("{{ investor.nickname }}，{{ foo }}。回T退订"))
    assert found == [("messages[0].text", "unknown_variable"), ("messages[0].text", "unknown_variable")]
    messages = check(parse({**BASE, "messages": sms("{{ investor.nickname }}回T退订")}))
    assert "investor.nickname" in str(messages[0].message)


def test_known_variables_are_not_problems():
    text = ("{{ investor.name }}{{ investor.masked_phone }}{{ reward.amount }}{{ reward.expires_on }}"
            "{{ reward.kind_label }}{{ campaign.name }}{{ unsubscribe_url }}回T退订")
    assert codes(messages=sms(text)) == []


def test_a_marketing_campaign_may_not_use_a_wechat_template():
    template = [{"channel": "wechat", "kind": "template", "template_id": "t1", "data": {"first": "红包到账"}}]
    assert codes(messages=template) == [("messages[0].kind", "wechat_template_marketing")]
    assert codes(**{"class": "service"}, messages=template) == []
    assert codes(messages=[{"channel": "wechat", "kind": "mass", "text": "红包到账"}]) == []


def test_a_marketing_sms_needs_an_opt_out_phrase_and_a_service_sms_does_not():
    assert codes(messages=sms("红包已到账")) == [("messages[0].text", "sms_opt_out_missing")]
    for opt_out in ("回T退订", "拒收请回复R", "退订回N"):
        assert codes(messages=sms(f"红包已到账，{opt_out}")) == []
    assert codes(**{"class": "service"}, messages=sms("您的红包已到账")) == []
