"""WeChat parametric QR codes: one permanent code per scene (an acquisition channel's code), and its followers.

WeChat answers `qrcode/create` with a ticket and the URL the code encodes; the image is drawn here with
segno from that URL, so no page ever loads anything from mp.weixin.qq.com. A follow or a scan through
the code carries the scene back in the callback (`channels.receipts`), which is how a follower gets
their acquisition channel.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import segno
from flask import Flask
from flask_babel import gettext as _
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from channels import settings
from channels.adapters.port import EXTENSION, Channel
from channels.adapters.wechat import MAX_SCENE_LENGTH, WechatApiError
from channels.models import WechatFollower, WechatSceneQr
from growth.errors import DomainError


@dataclass(frozen=True, slots=True)
class SceneSummary:
    """What the acquisition channel page shows about a scene: the code, whether WeChat is set up, followers."""

    scene: str
    configured: bool
    qr: WechatSceneQr | None
    following: int  # followers who came by this scene and still follow
    unfollowed: int  # … and those who have left since


def wechat_configured(*, session: Session, app: Flask) -> bool:
    """Tell whether the official account is configured (appid and secret), so a QR code can be made."""
    return _config(session=session, app=app).provider("wechat") is not None


def scene_qr(scene: str, *, session: Session) -> WechatSceneQr | None:
    """Return the stored QR code of a scene, if one was made."""
    return session.scalar(select(WechatSceneQr).where(WechatSceneQr.scene == scene))


def followers_by_scene(scenes: list[str], *, session: Session) -> dict[str, tuple[int, int]]:
    """Return (still following, unfollowed) per scene, counting followers by the scene of their first follow."""
    if not scenes:
        return {}
    query = (select(WechatFollower.first_scene, WechatFollower.subscribed, func.count())
             .where(WechatFollower.first_scene.in_(scenes))
             .group_by(WechatFollower.first_scene, WechatFollower.subscribed))
    counts = {scene: [0, 0] for scene in scenes}
    for scene, subscribed, n in session.execute(query):
        if scene in counts:
            counts[scene][0 if subscribed else 1] += n
    return {scene: (a, b) for scene, (a, b) in counts.items()}


def scene_summary(scene: str, *, session: Session, app: Flask) -> SceneSummary:
    """Return the QR code, configuration state and follower counts of one scene."""
    following, unfollowed = followers_by_scene([scene], session=session)[scene]
    return SceneSummary(scene=scene, configured=wechat_configured(session=session, app=app),
                        qr=scene_qr(scene, session=session), following=following, unfollowed=unfollowed)


def create_scene_qr(scene: str, *, session: Session, app: Flask, now: datetime,
                    by: str = "") -> tuple[WechatSceneQr, bool]:
    """Have WeChat make (or return) the permanent QR code of a scene and keep its ticket and URL.

    Returns the row and whether WeChat's answer differs from the code kept before. The caller audits it
    (the audit log names its targets from the domain modules, which channels does not import).
    """
    if not scene or len(scene) > MAX_SCENE_LENGTH:
        raise DomainError(_("二维码场景值须为 1 到 %(n)s 个字符", n=MAX_SCENE_LENGTH))
    config = _config(session=session, app=app)
    if config.provider("wechat") is None:
        raise DomainError(_("微信公众号尚未配置（需要 AppID 和 AppSecret），无法生成带参二维码。"))
    adapter = app.extensions[EXTENSION].build(Channel.WECHAT, "wechat", config.adapter_settings("wechat"))
    create: Callable[[str], tuple[str, str]] | None = getattr(adapter, "create_scene_qr", None)
    if create is None:
        raise DomainError(_("当前微信通道不支持生成带参二维码。"))
    try:
        ticket, url = create(scene)
    except WechatApiError as err:
        code = f" ({err.result.code})" if err.result.code else ""
        raise DomainError(_("微信接口未能生成二维码%(code)s：%(detail)s", code=code,
                            detail=err.result.detail or _("请稍后再试"))) from None
    row = scene_qr(scene, session=session)
    if row is None:
        try:
            with session.begin_nested():
                row = WechatSceneQr(scene=scene, ticket=ticket, url=url, created_by=by, created_at=now)
                session.add(row)
        except IntegrityError:  # two people pressed the button at once: WeChat gave both the same code
            row = scene_qr(scene, session=session)
            if row is None:
                raise
    changed = (row.ticket, row.url) != (ticket, url)
    row.ticket, row.url, row.created_by, row.created_at = ticket, url, by, now
    session.flush()
    return row, changed


def qr_png(url: str, *, scale: int = 8) -> bytes:
    """Draw the PNG of a QR code for the URL WeChat returned (locally: nothing is fetched from WeChat)."""
    buf = io.BytesIO()
    segno.make(url, error="m").save(buf, kind="png", scale=scale, border=4)
    return buf.getvalue()


def _config(*, session: Session, app: Flask) -> settings.ChannelConfig:
    return settings.load(session=session, environment=app.config["CHANNEL_ENV"])
