"""Routes providers and investors call without a login (spec §1, §6): receipts, replies, WeChat, unsubscribe.

Thin: read the request, call one service in `channels.receipts`, answer what the caller expects —
Aliyun `{"code": 0, "msg": "成功"}`, WeChat the plain text `success`, people a small page. The
composition root registers the blueprint and exempts it from CSRF (nobody here has a session).
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
from flask import Blueprint, Response, current_app, render_template, request

from channels import receipts, settings
from channels.adapters.wechat_callback import CallbackRejected, parse_callback, verify_handshake
from channels.models import CHANNEL_LABELS
from channels.recipients import directory_of
from channels.unsubscribe import InvalidUnsubscribeToken
from growth.auth.permissions import public
from growth.db import request_session
from growth.request_size import max_body
from growth.timeutil import utcnow

bp = Blueprint("channels_callbacks", __name__)
log = logging.getLogger("channels.callbacks")

CALLBACK_MAX_BODY = 512 * 1024  # a provider push of a few hundred items; far below the app's default
UNSUBSCRIBE_MAX_BODY = 8 * 1024  # `List-Unsubscribe=One-Click` or the page's one-field form


def _json(body: dict[str, Any], status: int = 200) -> Response:
    return Response(orjson.dumps(body), status=status, mimetype="application/json")


def _malformed(message: str) -> Response:
    """The house error shape (spec conventions) for a body that is not what the provider sends."""
    return _json({"error": message, "errors": [{"path": "", "code": "malformed", "message": message}]}, 400)


def _plain(text: str, status: int = 200) -> Response:
    return Response(text, status=status, mimetype="text/plain")


def _body_json() -> Any:
    return orjson.loads(request.get_data(cache=False))


# --- Aliyun SMS -------------------------------------------------------------------------------------


@bp.route("/sms/aliyun/report", methods=["POST"])
@public  # Aliyun's message-receipt push carries no signature; each report must match our message and BizId
@max_body(CALLBACK_MAX_BODY)
def aliyun_report() -> Response:
    """Apply Aliyun SMS delivery reports (SmsReport) to their messages."""
    try:
        reports = receipts.read_sms_reports(_body_json())
    except orjson.JSONDecodeError:
        return _malformed("the body is not JSON")
    except receipts.MalformedCallback as err:
        return _malformed(str(err))
    tally = receipts.apply_sms_reports(reports, session=request_session(), directory=directory_of(current_app),
                                       now=utcnow())
    log.info("aliyun sms reports: %s", tally.as_json())
    return _json(receipts.ALIYUN_ACCEPTED)


@bp.route("/sms/aliyun/uplink", methods=["POST"])
@public  # replies can only withdraw consent, never grant it
@max_body(CALLBACK_MAX_BODY)
def aliyun_uplink() -> Response:
    """Read investors' SMS replies (SmsUp); one that asks to stop withdraws their SMS consent."""
    try:
        replies = receipts.read_sms_replies(_body_json())
    except orjson.JSONDecodeError:
        return _malformed("the body is not JSON")
    except receipts.MalformedCallback as err:
        return _malformed(str(err))
    tally = receipts.apply_sms_replies(replies, session=request_session(), directory=directory_of(current_app),
                                       now=utcnow())
    log.info("aliyun sms replies: %s", tally.as_json())
    return _json(receipts.ALIYUN_ACCEPTED)


# --- WeChat -----------------------------------------------------------------------------------------


@bp.route("/wechat/callback", methods=["GET", "POST"])
@public  # authenticated by WeChat's signature (and, in safe mode, the AES message signature)
@max_body(CALLBACK_MAX_BODY)
def wechat_callback() -> Response:
    """Answer WeChat's URL check (GET) or apply one server callback (POST); `success` to every authentic one."""
    config = settings.load(session=request_session(), environment=current_app.config["CHANNEL_ENV"])
    token = config["wechat_token"]
    if not token:  # without a token nothing can be verified: every callback is refused
        return _plain("not configured", 403)
    args = request.args
    if request.method == "GET":
        try:
            return _plain(verify_handshake(token, args.get("signature", ""), args.get("timestamp", ""),
                                           args.get("nonce", ""), args.get("echostr", "")))
        except CallbackRejected:
            return _plain("forbidden", 403)
    try:
        callback = parse_callback(
            request.get_data(cache=False), token=token, signature=args.get("signature", ""),
            timestamp=args.get("timestamp", ""), nonce=args.get("nonce", ""), now=utcnow(),
            encrypt_type=args.get("encrypt_type", ""), msg_signature=args.get("msg_signature", ""),
            aes_key=config["wechat_aes_key"], appid=config["wechat_appid"],
        )
    except CallbackRejected as err:
        log.warning("wechat callback refused: %s", err)
        return _plain("forbidden", 403)
    outcome = receipts.apply_wechat_callback(callback, session=request_session(),
                                             directory=directory_of(current_app), now=utcnow())
    log.info("wechat callback %s: %s", callback.event, outcome)
    return _plain("success")


# --- unsubscribe links (RFC 8058) -------------------------------------------------------------------


def _page(template: str, status: int = 200, **context: Any) -> tuple[str, int, dict[str, str]]:
    # The token is a credential: keep the page out of search engines and its URL out of Referer headers.
    headers = {"X-Robots-Tag": "noindex", "Referrer-Policy": "no-referrer"}
    return render_template(template, **context), status, headers


def _label(channel: str) -> str:
    return str(CHANNEL_LABELS.get(channel, channel))


@bp.route("/unsubscribe/<token>", methods=["GET"])
@public
def unsubscribe_page(token: str) -> tuple[str, int, dict[str, str]]:
    """Show the confirmation page; a GET changes nothing (mail scanners open links)."""
    try:
        link = receipts.read_unsubscribe_link(token, secret=current_app.config["SECRET_KEY"])
    except InvalidUnsubscribeToken:
        return _page("channels/unsubscribe_invalid.html", 404)
    return _page("channels/unsubscribe.html", token=token, channel=link.channel, channel_label=_label(link.channel))


@bp.route("/unsubscribe/<token>", methods=["POST"])
@public  # the signed token in the URL is the authority (no login; CSRF-exempt with the blueprint)
@max_body(UNSUBSCRIBE_MAX_BODY)
def unsubscribe_confirm(token: str) -> tuple[str, int, dict[str, str]]:
    """Withdraw consent for the token's channel: one-click from a mail client, or the page's button."""
    one_click = request.form.get("List-Unsubscribe") == "One-Click"
    try:
        link = receipts.unsubscribe(token, secret=current_app.config["SECRET_KEY"], session=request_session(),
                                    directory=directory_of(current_app), now=utcnow(), one_click=one_click)
    except InvalidUnsubscribeToken:
        return _page("channels/unsubscribe_invalid.html", 404)
    return _page("channels/unsubscribe_done.html", channel=link.channel, channel_label=_label(link.channel))
