"""Preview counts the audience, the holdout and the messages that would go now, per channel and fallback chain."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from campaigns.definition import parse
from campaigns.preview import preview
from campaigns.segments import in_holdout
from channels.models import ConsentState, Unreachable
from channels.services import contact_digest
from tests.factories import make_investor

NOW = datetime(2026, 12, 3, 4, 0, tzinfo=UTC)
SMS = {"channel": "sms", "text": "{{ investor.name }}，红包已到账。回T退订"}
EMAIL = {"channel": "email", "subject": "您好", "text": "红包已到账"}


def definition(**changes: Any):  # type: ignore[no-untyped-def]
    doc = {"name": "预览", "type": "broadcast", "class": "marketing", "schedule": {"at": "2026-12-05T10:00:00+08:00"},
           "messages": [SMS, EMAIL], **changes}
    return parse(doc)


def people(session, n: int, **fields: Any) -> list[Any]:  # type: ignore[no-untyped-def]
    return [make_investor(session, registered_at=NOW - timedelta(days=3), **fields) for _ in range(n)]


def consent(session, investor, channel: str, granted: bool = True) -> None:  # type: ignore[no-untyped-def]
    session.add(ConsentState(investor_id=investor.id, channel=channel, granted=granted, occurred_at=NOW,
                             source="event"))


def test_marketing_counts_only_members_who_consented_and_have_an_address(session):
    both = people(session, 3, email="a@example.com")
    sms_only = people(session, 2)
    refused = people(session, 1)
    withdrawn = people(session, 1)
    for p in both:
        consent(session, p, "sms")
        consent(session, p, "email")
    for p in [*sms_only, *refused]:
        consent(session, p, "sms")
        consent(session, p, "email")  # consent, but no e-mail address
    consent(session, withdrawn[0], "sms", granted=False)
    session.add(Unreachable(investor_id=refused[0].id, channel="sms", contact_digest=contact_digest(refused[0].phone),
                            code="isv.MOBILE_NUMBER_ILLEGAL", reason="x", since=NOW))
    session.flush()
    result = preview(definition(), campaign_id=1, session=session, now=NOW, chunk=2)
    assert result.audience == 7 and result.holdout == 0
    assert dict(result.messages) == {"sms": 5, "email": 3}


def test_service_messages_need_no_consent(session):
    people(session, 4)
    result = preview(definition(**{"class": "service"}, messages=[SMS]), campaign_id=1, session=session, now=NOW)
    assert dict(result.messages) == {"sms": 4}


def test_a_fallback_message_goes_only_to_members_no_earlier_message_reached(session):
    emailable = people(session, 2, email="x@example.com")
    phone_only = people(session, 3)
    for p in [*emailable, *phone_only]:
        consent(session, p, "sms")
        consent(session, p, "email")
    session.flush()
    chain = definition(messages=[EMAIL, {**SMS, "fallback": True}])
    assert dict(preview(chain, campaign_id=1, session=session, now=NOW).messages) == {"email": 2, "sms": 3}


def test_holdout_members_get_nothing(session):
    everyone = people(session, 40)
    for p in everyone:
        consent(session, p, "sms")
    session.flush()
    result = preview(definition(holdout_percent=30, messages=[SMS]), campaign_id=9, session=session, now=NOW, chunk=7)
    held = sum(in_holdout(9, p.platform_user_id, 30) for p in everyone)
    assert result.audience == 40 and result.holdout == held and 0 < held < 40
    assert result.messages["sms"] == 40 - held


def test_sms_parts_samples_and_compliance_come_with_it(session):
    long_text = "{{ investor.name }}您好，" + "这是一条很长的活动通知。" * 8 + "回T退订"
    result = preview(definition(messages=[{"channel": "sms", "text": long_text}]), campaign_id=1, session=session,
                     now=NOW, sign_name="投资人增长")
    assert result.sms_parts == 2
    assert result.samples[0]["text"].startswith("【投资人增长】张三您好")
    assert result.compliance == []
    banned = preview(definition(messages=[{"channel": "sms", "text": "保本理财。回T退订"}]), campaign_id=1,
                     session=session, now=NOW)
    assert [p.code for p in banned.compliance] == ["banned_phrase"]


def test_fallback_chains_are_the_messages_before_them():
    from campaigns.preview import sent_channels
    wechat = {"channel": "wechat", "kind": "mass", "text": "红包到账"}
    d = definition(messages=[wechat, {**SMS, "fallback": True}, EMAIL])
    assert sent_channels(d.messages, {"sms", "email"}) == ["sms", "email"]
    assert sent_channels(d.messages, {"wechat", "sms", "email"}) == ["wechat", "email"]
    assert sent_channels(d.messages, {"wechat"}) == ["wechat"]
