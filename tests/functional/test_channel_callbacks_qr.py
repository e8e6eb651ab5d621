"""The WeChat parametric QR code of an acquisition channel, made through wechatpy against the fake WeChat API."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from channels.models import WechatFollower, WechatSceneQr
from growth.acquisition.services import create_channel
from growth.audit.models import AuditEntry
from growth.db import get_db
from tests.fakes.wechat import FakeWechat

QR = "qrcode/create"


@pytest.fixture
def fake() -> Iterator[FakeWechat]:
    server = FakeWechat(appid="wx_app", secret="s3cret").start()
    yield server
    server.stop()


@pytest.fixture
def app_config(fake: FakeWechat) -> dict:
    return {"CHANNEL_ENV": {"GROWTH_WECHAT_APPID": "wx_app", "GROWTH_WECHAT_SECRET": "s3cret",
                            "GROWTH_WECHAT_TOKEN": "cb-token", "GROWTH_WECHAT_API_BASE": fake.api_base,
                            "GROWTH_WECHAT_TIMEOUT": "2"}}


def channel(app: Flask, code: str = "wechat_ad") -> int:
    with get_db(app).session_scope(write=True) as s:
        return create_channel(code=code, name="微信广告", kind="wechat", owner="", notes="", session=s, by="test").id


def fresh(session: Session) -> None:
    session.commit()
    session.expire_all()


def test_a_marketer_creates_the_channels_qr_code_and_the_page_draws_it_without_loading_wechat(
        app: Flask, client: FlaskClient, session: Session, login, fake: FakeWechat, db_kind: str) -> None:  # type: ignore[no-untyped-def]
    channel_id = channel(app)
    login("marketer")

    response = client.post(f"/acquisition/channels/{channel_id}/wechat-qr")

    assert response.status_code == 302
    sent = fake.calls(QR)[0].body
    assert sent == {"action_name": "QR_LIMIT_STR_SCENE", "action_info": {"scene": {"scene_str": "wechat_ad"}}}
    fresh(session)
    qr = session.scalar(select(WechatSceneQr))
    assert qr is not None and (qr.scene, qr.ticket) == ("wechat_ad", fake.qrcodes["wechat_ad"])
    audit = session.scalar(select(AuditEntry).where(AuditEntry.action == "channel.wechat_qr_created"))
    assert audit is not None and (audit.target_type, audit.target_id) == ("channel", str(channel_id))
    page = client.get(f"/acquisition/channels/{channel_id}").get_data(as_text=True)
    assert 'id="wechat-qr-image"' in page
    assert "weixin.qq.com" not in page
    png = client.get("/acquisition/wechat-qr/wechat_ad.png")
    assert (png.status_code, png.mimetype) == (200, "image/png")
    assert png.data.startswith(b"\x89PNG")


def test_asking_again_keeps_one_code_per_scene(app: Flask, client: FlaskClient, session: Session, login,  # type: ignore[no-untyped-def]
                                               fake: FakeWechat, db_kind: str) -> None:
    channel_id = channel(app)
    login("admin")

    for _ in range(2):
        assert client.post(f"/acquisition/channels/{channel_id}/wechat-qr").status_code == 302

    fresh(session)
    assert len(session.scalars(select(WechatSceneQr)).all()) == 1


def test_a_wechat_refusal_is_shown_and_nothing_is_kept(app: Flask, client: FlaskClient, session: Session, login,  # type: ignore[no-untyped-def]
                                                      fake: FakeWechat, db_kind: str) -> None:
    channel_id = channel(app)
    login("admin")
    fake.fail(QR, 45009)

    response = client.post(f"/acquisition/channels/{channel_id}/wechat-qr", follow_redirects=True)

    assert "45009" in response.get_data(as_text=True)
    fresh(session)
    assert session.scalar(select(WechatSceneQr)) is None


def test_an_expired_token_is_refreshed_once_for_a_qr_code(app: Flask, client: FlaskClient, login,  # type: ignore[no-untyped-def]
                                                          fake: FakeWechat, db_kind: str) -> None:
    channel_id = channel(app)
    login("admin")
    client.post(f"/acquisition/channels/{channel_id}/wechat-qr")
    fake.expire_tokens()

    client.post(f"/acquisition/channels/{channel_id}/wechat-qr")

    assert len(fake.calls("token")) == 2
    assert [c.answer.get("ticket") is not None for c in fake.calls(QR)] == [True, False, True]


def test_roles_that_only_view_channels_cannot_create_a_qr_code(app: Flask, client: FlaskClient, login,  # type: ignore[no-untyped-def]
                                                               fake: FakeWechat, db_kind: str) -> None:
    channel_id = channel(app)
    login("analyst")

    assert client.post(f"/acquisition/channels/{channel_id}/wechat-qr").status_code == 403
    assert 'id="create-wechat-qr"' not in client.get(f"/acquisition/channels/{channel_id}").get_data(as_text=True)
    assert fake.calls(QR) == []


@pytest.mark.parametrize("app_config", [{"CHANNEL_ENV": {}}])
def test_without_a_configured_official_account_the_button_is_disabled_with_a_hint(
        app: Flask, client: FlaskClient, login, db_kind: str) -> None:  # type: ignore[no-untyped-def]
    channel_id = channel(app)
    login("admin")

    page = client.get(f"/acquisition/channels/{channel_id}").get_data(as_text=True)
    refused = client.post(f"/acquisition/channels/{channel_id}/wechat-qr", follow_redirects=True)

    assert 'id="create-wechat-qr" disabled' in page and 'id="wechat-qr-hint"' in page
    assert "微信公众号尚未配置" in refused.get_data(as_text=True)
    assert client.get("/acquisition/wechat-qr/wechat_ad.png").status_code == 404


def test_the_channel_page_counts_the_followers_its_scene_brought(
        app: Flask, client: FlaskClient, session: Session, login, db_kind: str) -> None:  # type: ignore[no-untyped-def]
    channel_id = channel(app)
    now = datetime.now(UTC)
    session.add_all([
        WechatFollower(openid="o1", subscribed=True, scene="wechat_ad", first_scene="wechat_ad", changed_at=now),
        WechatFollower(openid="o2", subscribed=True, scene="other", first_scene="wechat_ad", changed_at=now),
        WechatFollower(openid="o3", subscribed=False, scene="wechat_ad", first_scene="wechat_ad", changed_at=now),
        WechatFollower(openid="o4", subscribed=True, scene="wechat_ad", first_scene="other", changed_at=now),
    ])
    session.commit()
    login("analyst")

    page = client.get(f"/acquisition/channels/{channel_id}").get_data(as_text=True)

    assert "微信关注 2" in page and "已取关 1" in page
