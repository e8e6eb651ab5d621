"""Attribution of registrations: click, then channel code, then referral, else organic; late referrers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from growth.acquisition.models import AcquisitionChannel, Click, TrackingLink
from growth.events.processor import drain
from growth.investors.models import Investor
from growth.investors.rules import referral_code_for
from tests.events import event, post_events
from tests.projection_state import wipe

T0 = datetime(2026, 10, 1, 2, 0, tzinfo=UTC)
H = timedelta(hours=1)


def ingest(app, client, events: list[dict[str, Any]]) -> None:  # type: ignore[no-untyped-def]
    response = post_events(client, events)
    assert response.status_code == 200 and response.json["rejected"] == [], response.get_data(as_text=True)
    drain(app)


def registered(uid: str, at: datetime = T0, **data: str) -> dict[str, Any]:
    return event("user.registered", uid, at, data)


def attribution(session, uid: str) -> tuple[str | None, str | None]:  # type: ignore[no-untyped-def]
    """Return (channel code, referrer's platform user id) of an investor as committed now."""
    session.rollback()
    inv = session.scalars(select(Investor).where(Investor.platform_user_id == uid)).one()
    channel = session.get(AcquisitionChannel, inv.channel_id) if inv.channel_id else None
    referrer = session.get(Investor, inv.referrer_id) if inv.referrer_id else None
    return (channel.code if channel else None, referrer.platform_user_id if referrer else None)


def make_channel(session, code: str, name: str, kind: str = "sem") -> AcquisitionChannel:  # type: ignore[no-untyped-def]
    channel = AcquisitionChannel(code=code, name=name, kind=kind)
    session.add(channel)
    session.flush()
    return channel


def make_click(session, channel: AcquisitionChannel, click_id: str) -> Click:  # type: ignore[no-untyped-def]
    link = TrackingLink(channel_id=channel.id, code=f"l{click_id}"[:32], name="落地页",
                        landing_url="https://example.com/")
    session.add(link)
    session.flush()
    click = Click(click_id=click_id, link_id=link.id, channel_id=channel.id, at=T0 - H)
    session.add(click)
    session.flush()
    return click


def test_a_known_click_decides_the_channel_even_when_a_channel_code_and_referral_code_come_too(app, client, session):
    baidu = make_channel(session, "baidu_sem", "百度SEM")
    make_channel(session, "wdzj", "网贷之家", kind="vertical")
    make_click(session, baidu, "clk_1")
    session.commit()
    ingest(app, client, [registered("ref", T0 - H),
                         registered("u1", click_id="clk_1", channel_code="wdzj", referral_code="ref")])
    assert attribution(session, "u1") == ("baidu_sem", "ref")


def test_an_unknown_click_falls_back_to_the_channel_code(app, client, session):
    make_channel(session, "wdzj", "网贷之家", kind="vertical")
    session.commit()
    ingest(app, client, [registered("u1", click_id="clk_nobody_knows", channel_code="wdzj")])
    assert attribution(session, "u1") == ("wdzj", None)
    assert session.scalar(select(func.count()).select_from(AcquisitionChannel)) == 1


def test_an_unknown_channel_code_creates_a_channel_named_after_it(app, client, session):
    ingest(app, client, [registered("u1", channel_code="new_forum"), registered("u2", channel_code="new_forum")])
    assert attribution(session, "u1") == ("new_forum", None)
    assert attribution(session, "u2") == ("new_forum", None)
    channel = session.scalars(select(AcquisitionChannel).where(AcquisitionChannel.code == "new_forum")).one()
    assert (channel.name, channel.auto_created) == ("new_forum", True)


def test_a_referral_code_of_a_known_investor_makes_a_referral_with_its_referrer(app, client, session):
    ingest(app, client, [registered("ref", T0 - H)])
    ingest(app, client, [registered("u1", referral_code=referral_code_for("ref")),
                         registered("u2", referral_code="ref")])  # the platform user id works as a code too
    assert attribution(session, "u1") == ("referral", "ref")
    assert attribution(session, "u2") == ("referral", "ref")
    referral = session.scalars(select(AcquisitionChannel).where(AcquisitionChannel.code == "referral")).one()
    assert referral.auto_created is False


def test_a_channel_code_beats_a_referral_but_the_referrer_is_still_recorded(app, client, session):
    ingest(app, client, [registered("ref", T0 - H), registered("u1", channel_code="wdzj", referral_code="ref")])
    assert attribution(session, "u1") == ("wdzj", "ref")


def test_an_invalid_referral_code_leaves_the_registration_organic(app, client, session):
    ingest(app, client, [registered("ref", T0 - H), registered("u1", referral_code="NOT_A_CODE"),
                         registered("u2")])
    assert attribution(session, "u1") == ("organic", None)
    assert attribution(session, "u2") == ("organic", None)


def test_nobody_refers_themselves(app, client, session):
    ingest(app, client, [registered("u1", referral_code=referral_code_for("u1"))])
    assert attribution(session, "u1") == ("organic", None)


def test_a_referral_registered_before_its_referrer_arrives_is_attributed_when_the_referrer_appears(
        app, client, session):
    ingest(app, client, [registered("u1", T0, referral_code=referral_code_for("ref")),
                         registered("u2", T0, referral_code="ref")])
    assert attribution(session, "u1") == ("organic", None)
    assert attribution(session, "u2") == ("organic", None)

    ingest(app, client, [registered("ref", T0 + H)])
    assert attribution(session, "u1") == ("referral", "ref")
    assert attribution(session, "u2") == ("referral", "ref")


def test_a_referrer_first_seen_through_another_event_still_completes_the_waiting_referral(app, client, session):
    ingest(app, client, [registered("u1", T0, referral_code="ref")])
    ingest(app, client, [event("user.kyc_verified", "ref", T0 + H)])
    assert attribution(session, "u1") == ("referral", "ref")


def test_a_referrer_arriving_in_the_same_batch_after_the_referral_is_found(app, client, session):
    ingest(app, client, [registered("u1", T0, referral_code="ref"), registered("ref", T0 + H)])
    assert attribution(session, "u1") == ("referral", "ref")


def test_the_earliest_registration_decides_attribution_whichever_arrives_first(app, client, session):
    ingest(app, client, [registered("u1", T0 + H, channel_code="later_code")])
    assert attribution(session, "u1") == ("later_code", None)
    ingest(app, client, [registered("u1", T0, channel_code="earlier_code")])
    assert attribution(session, "u1") == ("earlier_code", None)
    ingest(app, client, [registered("u1", T0 + 2 * H, channel_code="latest_code")])
    assert attribution(session, "u1") == ("earlier_code", None)
    session.rollback()
    inv = session.scalars(select(Investor).where(Investor.platform_user_id == "u1")).one()
    assert (inv.registered_at, inv.channel_code_given) == (T0, "earlier_code")


def test_an_earlier_registration_without_a_referral_removes_the_referral(app, client, session):
    ingest(app, client, [registered("ref", T0 - H), registered("u1", T0 + H, referral_code="ref")])
    assert attribution(session, "u1") == ("referral", "ref")
    ingest(app, client, [registered("u1", T0)])
    assert attribution(session, "u1") == ("organic", None)


def test_two_registrations_at_the_same_instant_give_one_attribution_in_either_arrival_order(app, client, session):
    a = registered("u1", T0, channel_code="code_a")
    b = registered("u1", T0, channel_code="code_b", device_id="d1")
    ingest(app, client, [a])
    ingest(app, client, [b])
    first = attribution(session, "u1")
    wipe(app, investors=True)
    ingest(app, client, [b])
    ingest(app, client, [a])
    assert attribution(session, "u1") == first
