"""SMS rules: length and segments (GSM-7 / UCS-2, the signature counts), opt-out wording, reply keywords."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from channels.sms import (
    GSM7_BASIC,
    GSM7_EXTENSION,
    SmsEncoding,
    SmsLength,
    has_opt_out,
    is_gsm7,
    reply_withdraws_consent,
    signed_text,
    sms_length,
)

gsm7_text = st.text(alphabet=st.sampled_from(sorted(GSM7_BASIC)), max_size=1000)
chinese_text = st.text(alphabet=st.characters(min_codepoint=0x4E00, max_codepoint=0x9FFF), max_size=500)


@pytest.mark.parametrize(("text", "sign", "expected"), [
    ("", "", SmsLength(SmsEncoding.GSM7, 0, 0)),
    ("a" * 160, "", SmsLength(SmsEncoding.GSM7, 160, 1)),
    ("a" * 161, "", SmsLength(SmsEncoding.GSM7, 161, 2)),
    ("a" * 306, "", SmsLength(SmsEncoding.GSM7, 306, 2)),  # 2 × 153
    ("a" * 307, "", SmsLength(SmsEncoding.GSM7, 307, 3)),
    ("€" * 80, "", SmsLength(SmsEncoding.GSM7, 160, 1)),  # extension characters take two septets
    ("a" + "€" * 80, "", SmsLength(SmsEncoding.GSM7, 161, 2)),  # a + 76 € fill part 1 (153), 4 € in part 2
    # aa + 75 € = 152 in part 1 (a € cannot straddle), 76 € = 152 in part 2, the last € in part 3
    ("aa" + "€" * 152, "", SmsLength(SmsEncoding.GSM7, 306, 3)),
    ("中" * 70, "", SmsLength(SmsEncoding.UCS2, 70, 1)),
    ("中" * 71, "", SmsLength(SmsEncoding.UCS2, 71, 2)),
    ("中" * 134, "", SmsLength(SmsEncoding.UCS2, 134, 2)),  # 2 × 67
    ("中" * 135, "", SmsLength(SmsEncoding.UCS2, 135, 3)),
    ("a" * 69 + "中", "", SmsLength(SmsEncoding.UCS2, 70, 1)),  # one Chinese character makes it all UCS-2
    ("😀" * 35, "", SmsLength(SmsEncoding.UCS2, 70, 1)),  # outside the BMP: two UTF-16 units each
    ("中" * 63, "投资人增长", SmsLength(SmsEncoding.UCS2, 70, 1)),  # 【投资人增长】 is 7 units
    ("中" * 64, "投资人增长", SmsLength(SmsEncoding.UCS2, 71, 2)),
    ("Hello", "Growth", SmsLength(SmsEncoding.UCS2, 13, 1)),  # 【】 is not GSM-7
])
def test_length_and_segments_of_hand_counted_texts(text: str, sign: str, expected: SmsLength) -> None:
    assert sms_length(text, sign) == expected


def test_the_campaign_example_is_one_ucs2_message_with_its_signature() -> None:
    text = "张三您好，50.00元投资红包已到账，30天内有效。投资有风险，理财需谨慎。回T退订"

    assert sms_length(text, "投资人增长") == SmsLength(SmsEncoding.UCS2, len(text) + 7, 1)


def test_the_signature_goes_in_front_in_lenticular_brackets() -> None:
    assert signed_text("您好", "投资人增长") == "【投资人增长】您好"
    assert signed_text("您好") == "您好"


def test_gsm7_knows_its_alphabet() -> None:
    assert is_gsm7("Hello @£$ {}[]€")
    assert not is_gsm7("Hello 中")
    assert not is_gsm7("`")  # the backtick is not in GSM 03.38


@given(gsm7_text)
def test_gsm7_segments_follow_160_single_and_153_per_part(text: str) -> None:
    length = sms_length(text)
    n = len(text)
    assert length.encoding is SmsEncoding.GSM7
    assert length.units == n
    assert length.segments == (0 if n == 0 else 1 if n <= 160 else math.ceil(n / 153))


@given(chinese_text)
def test_ucs2_segments_follow_70_single_and_67_per_part(text: str) -> None:
    length = sms_length(text)
    n = len(text)
    assert length.encoding is SmsEncoding.UCS2 or n == 0
    assert length.segments == (0 if n == 0 else 1 if n <= 70 else math.ceil(n / 67))


@given(st.text(max_size=400), st.text(max_size=400))
def test_a_longer_text_never_needs_fewer_segments(text: str, more: str) -> None:
    assert sms_length(text + more).segments >= sms_length(text).segments


@given(st.text(alphabet=st.sampled_from(sorted(GSM7_BASIC | GSM7_EXTENSION)), max_size=800))
def test_every_part_holds_whole_characters_within_the_part_size(text: str) -> None:
    length = sms_length(text)
    if length.segments > 1:
        assert math.ceil(length.units / 153) <= length.segments <= math.ceil(length.units / 152)


@pytest.mark.parametrize("text", [
    "红包已到账，回T退订", "红包已到账。拒收请回复R", "退订回TD", "如不想再收到，请回复 退 订", "回Ｔ退订",
])
def test_marketing_text_with_an_opt_out_phrase_passes(text: str) -> None:
    assert has_opt_out(text)


@pytest.mark.parametrize("text", ["红包已到账", "回T", "请回复R", "订阅成功", ""])
def test_marketing_text_without_an_opt_out_phrase_fails(text: str) -> None:
    assert not has_opt_out(text)


@given(st.text(max_size=100), st.sampled_from(["回T退订", "拒收请回复R", "退订", "拒收"]), st.text(max_size=100))
def test_an_opt_out_phrase_anywhere_in_the_text_is_found(before: str, phrase: str, after: str) -> None:
    assert has_opt_out(before + phrase + after)


@pytest.mark.parametrize("reply", [
    "T", "t", " T ", "Ｔ", "ｔｄ", "TD", "Td", "退订", " 退订。", "退 订", "N", "n", "R", "ｒ", "T\n",
    "\u3000TD\u3000", "TD!",
])
def test_these_replies_withdraw_sms_consent(reply: str) -> None:
    assert reply_withdraws_consent(reply)


@pytest.mark.parametrize("reply", ["", "Y", "好的", "TT", "RT", "不要退订", "T退订了", "NO", "谢谢"])
def test_other_replies_do_not(reply: str) -> None:
    assert not reply_withdraws_consent(reply)


@given(st.sampled_from(["T", "TD", "退订", "N", "R"]), st.sampled_from(["", " ", "\t", "\u3000", "\n"]),
       st.booleans())
def test_keywords_withdraw_whatever_their_case_padding_or_width(keyword: str, pad: str, full_width: bool) -> None:
    if full_width:
        keyword = "".join(chr(ord(c) + 0xFEE0) if c.isascii() else c for c in keyword)
    assert reply_withdraws_consent(pad + keyword.lower() + pad)
