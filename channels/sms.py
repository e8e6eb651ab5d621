"""SMS rules: plain functions over plain data (length and segments, opt-out wording, reply keywords).

Length: a text all in the GSM 03.38 alphabet is GSM-7 (160 characters in one message, 153 per part of a
long one; the extension characters `^{}\\[~]|€` and form feed take two); anything else is UCS-2 (70 in
one, 67 per part, counted in UTF-16 code units so an emoji takes two). The signature 【…】 the carrier
adds counts (and, being outside GSM-7, makes the text UCS-2). A two-unit character never straddles parts.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from enum import StrEnum

GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = frozenset("\f^{}\\[~]|€")

GSM7_SINGLE, GSM7_PART = 160, 153
UCS2_SINGLE, UCS2_PART = 70, 67

OPT_OUT_WORDS = ("退订", "拒收")
WITHDRAW_KEYWORDS = frozenset({"T", "TD", "退订", "N", "R"})


class SmsEncoding(StrEnum):
    GSM7 = "gsm7"
    UCS2 = "ucs2"


@dataclass(frozen=True, slots=True)
class SmsLength:
    """How an SMS is billed: its encoding, its length in that encoding's units, and its segment count."""

    encoding: SmsEncoding
    units: int  # GSM-7 septets or UTF-16 code units
    segments: int


def signed_text(text: str, sign_name: str = "") -> str:
    """Return the text as the carrier delivers it: `【sign_name】text` (unchanged without a signature)."""
    return f"【{sign_name}】{text}" if sign_name else text


def is_gsm7(text: str) -> bool:
    """Tell whether every character of the text is in the GSM 03.38 alphabet (basic or extension table)."""
    return all(c in GSM7_BASIC or c in GSM7_EXTENSION for c in text)


def _unit_costs(text: str) -> tuple[SmsEncoding, list[int]]:
    if is_gsm7(text):
        return SmsEncoding.GSM7, [2 if c in GSM7_EXTENSION else 1 for c in text]
    return SmsEncoding.UCS2, [2 if ord(c) > 0xFFFF else 1 for c in text]


def sms_length(text: str, sign_name: str = "") -> SmsLength:
    """Return the encoding, units and segment count of the text with its signature (an empty text: 0 segments)."""
    encoding, costs = _unit_costs(signed_text(text, sign_name))
    units = sum(costs)
    single, part = (GSM7_SINGLE, GSM7_PART) if encoding is SmsEncoding.GSM7 else (UCS2_SINGLE, UCS2_PART)
    if units == 0:
        return SmsLength(encoding, 0, 0)
    if units <= single:
        return SmsLength(encoding, units, 1)
    segments, used = 1, 0
    for cost in costs:
        if used + cost > part:
            segments, used = segments + 1, 0
        used += cost
    return SmsLength(encoding, units, segments)


def has_opt_out(text: str) -> bool:
    """Tell whether a marketing text carries an opt-out phrase (`回T退订`, `拒收请回复R`, any with 退订 or 拒收)."""
    normalised = re.sub(r"\s+", "", unicodedata.normalize("NFKC", text))
    return any(word in normalised for word in OPT_OUT_WORDS)


def normalise_reply(reply: str) -> str:
    """Return an SMS reply as a keyword: NFKC (full-width → half-width), no whitespace or closing punctuation, upper."""
    text = unicodedata.normalize("NFKC", reply)
    text = re.sub(r"\s+", "", text)
    text = text.strip(".。!！,，;；~～'\"“”‘’")
    return text.upper()


def reply_withdraws_consent(reply: str) -> bool:
    """Tell whether an uplink SMS reply withdraws SMS consent (T, TD, 退订, N, R; case, space, width tolerant)."""
    return normalise_reply(reply) in WITHDRAW_KEYWORDS
