"""Compliance checks on a campaign's wording (spec §3 codes): plain functions over a parsed definition.

A draft may break these rules (they are shown while editing and under `compliance` in the API); submit
and approve refuse a campaign that breaks any. The banned phrases are matched on a normalised text —
full-width folded to half-width (NFKC), case folded, and every space, punctuation mark, symbol and
invisible character removed — so `保 本`, `保，本`, `保\u200b本` and `ｓ稳赚` all count, and HTML tags
are stripped first so `保<b>本</b>` does too. Only the spec's codes are compliance: the budget's own
warnings (`definition.budget_problems`) and a name used other than printed (`name_problems`) are the
editor's, shown beside these but never refusing a submit.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator

from flask_babel import lazy_gettext as _l

from campaigns.definition import Definition, EmailMessage, Message, SmsMessage, WechatMessage
from channels.sms import has_opt_out
from channels.templates import NAME_TRANSFORMED, name_transformed, unknown_variables
from growth.errors import Problem

BANNED_PHRASES = ("保本", "保息", "保本保息", "100%本息保障", "本息全额保障", "刚性兑付", "零风险", "无风险", "稳赚",
                  "稳赚不赔", "保收益", "保证收益")
RISK_WARNING = "投资有风险"
CODES = ("banned_phrase", "risk_warning_missing", "unknown_variable", "wechat_template_marketing",
         "sms_opt_out_missing")

_TAG = re.compile(r"<[^>]*>")
# A rate or a yield: a percentage, or the words people use for one.
_RATE = re.compile(r"\d+(?:\.\d+)?\s*%|年化|收益|利率|利息|回报率|加息|APR|APY|yield", re.IGNORECASE)


def normalise(text: str) -> str:
    """Return text folded for phrase matching: NFKC, case folded, only letters and digits kept."""
    folded = unicodedata.normalize("NFKC", _TAG.sub("", text)).casefold()
    return "".join(c for c in folded if unicodedata.category(c)[0] in "LN")


_BANNED = sorted({normalise(p): p for p in BANNED_PHRASES}.items(), key=lambda kv: -len(kv[0]))
_WARNING = normalise(RISK_WARNING)


def banned_phrases(text: str) -> list[str]:
    """Return the banned phrases a text contains (the longest match of overlapping ones, each once)."""
    plain = normalise(text)
    found: list[str] = []
    for key, phrase in _BANNED:
        if key in plain:
            found.append(phrase)
            plain = plain.replace(key, "\x00")  # 稳赚不赔 is reported as itself, not also as 稳赚
    return found


def mentions_rate(text: str) -> bool:
    """Tell whether a text mentions a rate or a yield (a percentage, 年化, 收益, 利率, 加息 …)."""
    return _RATE.search(unicodedata.normalize("NFKC", _TAG.sub("", text))) is not None


def has_risk_warning(text: str) -> bool:
    """Tell whether a text carries the risk warning 投资有风险 (spacing and punctuation ignored)."""
    return _WARNING in normalise(text)


def _message_fields(message: Message) -> Iterator[tuple[str, str]]:
    """Yield (field path within the message, template text) for every field a message renders."""
    if isinstance(message, SmsMessage):
        yield "text", message.text
        for name, expr in (message.params or {}).items():
            yield f"params.{name}", expr
    elif isinstance(message, EmailMessage):
        yield "subject", message.subject
        yield "text", message.text
        if message.html is not None:
            yield "html", message.html
    elif isinstance(message, WechatMessage):
        for name, expr in (message.data or {}).items():
            yield f"data.{name}", expr
        if message.text is not None:
            yield "text", message.text
        if message.url is not None:
            yield "url", message.url


def name_problems(definition: Definition) -> list[Problem]:
    """Return the fields that do more with `investor.name` than print it: the editor's warnings, never a refusal.

    Messages are queued with the name slot and filled when sent (`channels.templates.NAME_SLOT`), so such a
    field would test, cut or filter the slot, not the name. Not a spec §3 code: submit does not refuse it.
    """
    return [Problem(f"messages[{i}].{name}", "name_transformed", NAME_TRANSFORMED)
            for i, message in enumerate(definition.messages)
            for name, text in _message_fields(message) if name_transformed(text)]


def check(definition: Definition) -> list[Problem]:
    """Return every problem submit and approve refuse: the wording's, in document order, then the budget's."""
    problems: list[Problem] = []
    for phrase in banned_phrases(definition.name):
        problems.append(Problem("name", "banned_phrase", _l("含禁用语“%(phrase)s”", phrase=phrase)))
    for i, message in enumerate(definition.messages):
        at = f"messages[{i}]"
        fields = list(_message_fields(message))
        for name, text in fields:
            for phrase in banned_phrases(text):
                problems.append(Problem(f"{at}.{name}", "banned_phrase", _l("含禁用语“%(phrase)s”", phrase=phrase)))
            for variable in unknown_variables(text):
                problems.append(Problem(f"{at}.{name}", "unknown_variable",
                                        _l("未知变量：%(name)s", name=variable)))
        # The warning may sit in any part of the same message (the SMS text, the mail's body …).
        whole = "\n".join(text for _name, text in fields)
        if mentions_rate(whole) and not has_risk_warning(whole):
            problems.append(Problem(at, "risk_warning_missing",
                                    _l("提到了利率或收益，须同时提示“%(warning)s”", warning=RISK_WARNING)))
        if definition.marketing and isinstance(message, WechatMessage) and message.kind == "template":
            problems.append(Problem(f"{at}.kind", "wechat_template_marketing",
                                    _l("微信模板消息只能用于服务通知；营销消息请用群发（mass）")))
        if definition.marketing and isinstance(message, SmsMessage) and not has_opt_out(message.text):
            problems.append(Problem(f"{at}.text", "sms_opt_out_missing",
                                    _l("营销短信须含退订方式，如“回T退订”或“拒收请回复R”（运营商要求）")))
    return problems
