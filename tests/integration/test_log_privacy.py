"""Logs in JSON mode: one object a line with the request id, and no full phone number, email or name in any line."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime

import orjson
import pytest
from flask.logging import default_handler
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from channels.adapters.port import Channel, MessageClass
from channels.delivery import Deliverer
from channels.outbox import NewMessage, enqueue
from growth.events.processor import drain
from growth.investors.models import Investor
from growth.observability.logs import MaskFilter
from growth.timeutil import utcnow
from tests.events import event, post_events

PHONE, NAME, EMAIL = "13812345678", "欧阳修远", "ouyang.xiuyuan@example.com"
JSON_LOGS = {"LOG_FORMAT": "json", "LOG_LEVEL": "DEBUG"}


@pytest.fixture
def json_logs() -> Iterator[None]:
    """Put the process's logging back as it was after the JSON-mode app changed it."""
    root = logging.getLogger()
    level = root.level
    yield
    for handler in [h for h in root.handlers if getattr(h, "_growth_handler", False)]:
        root.removeHandler(handler)
    root.setLevel(level)
    logging.getLogger("growth").addHandler(default_handler)


def _lines(captured: str) -> list[dict]:
    return [orjson.loads(line) for line in captured.splitlines() if line.strip()]


@pytest.mark.parametrize("app_config", [JSON_LOGS])
def test_a_realistic_flow_logs_json_lines_that_hold_no_full_phone_email_or_name(app, client, session, capsys,
                                                                                json_logs, db_kind):
    at = datetime.now(UTC)
    posted = post_events(client, [
        event("user.registered", "privacy-u1", at, phone=f"+86{PHONE}", name=NAME, email=EMAIL),
        event("user.consent_changed", "privacy-u1", at, {"channel": "sms", "granted": True}),
    ], )
    assert posted.json["accepted"] == 2
    drain(app)
    investor = session.scalars(select(Investor).where(Investor.platform_user_id == "privacy-u1")).one()
    enqueue(NewMessage(sender="system", cause="privacy-test", channel=Channel.SMS, message_class=MessageClass.SERVICE,
                       investor_id=investor.id, user_id="privacy-u1", content={"text": f"{NAME}您好，红包已到账"}),
            session=session, now=utcnow())
    session.commit()
    app.config["CHANNEL_ENV"] = {}
    assert Deliverer(app).run_once() == 1
    # What goes wrong in production: a constraint broken with personal data in the statement, a provider's
    # error text, a payload logged as it came.
    log = logging.getLogger("growth.privacy_test")
    try:
        session.add(Investor(platform_user_id="privacy-u1", referral_code=investor.referral_code,
                             phone=f"+86{PHONE}", name=NAME, registered_at=at))
        session.flush()
    except IntegrityError:
        log.exception("could not store investor privacy-u1")
        session.rollback()
    try:
        raise RuntimeError(f"provider refused {PHONE} / {EMAIL}")
    except RuntimeError:
        log.exception("send failed for %s", f"+86 {PHONE}")
    log.warning("event payload %s", orjson.dumps({"user": {"phone": PHONE, "name": NAME, "email": EMAIL}}).decode(),
                extra={"investor": {"name": NAME, "phone": PHONE}, "email": EMAIL})
    with app.test_request_context("/api/v1/events", headers={"X-Request-ID": "req-privacy-1"}):
        app.preprocess_request()
        log.info("request for name=%s", NAME)

    out = capsys.readouterr()
    lines = _lines(out.err)

    assert len(lines) >= 5  # the console SMS, the four above
    for line in lines:
        assert {"time", "level", "logger", "message", "request_id"} <= set(line)
    text = out.err + out.out
    for secret in (PHONE, NAME, EMAIL, NAME[1:]):
        assert secret not in text
    assert "138****5678" in text
    assert any(line["request_id"] == "req-privacy-1" for line in lines)
    assert any(line.get("investor") == {"name": "欧***", "phone": "138****5678"} for line in lines)
    assert any("Traceback" in line.get("exception", "") for line in lines)


def test_the_masking_filter_also_guards_the_default_text_output(app, db_kind):
    assert any(isinstance(f, MaskFilter) for f in default_handler.filters)
    record = logging.LogRecord("growth.x", logging.WARNING, __file__, 1, "call %s or mail %s", (PHONE, EMAIL), None)

    MaskFilter().filter(record)

    assert record.getMessage() == "call 138****5678 or mail o***@example.com"
