"""The SMTP adapter against a real SMTP server on loopback (aiosmtpd): plain, STARTTLS, implicit TLS, AUTH."""

from __future__ import annotations

import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from channels.adapters.email import EmailSettings, SmtpEmailAdapter, build_email_adapter, register_email
from channels.adapters.port import AdapterRegistry, Channel, MessageClass, Outcome, Outgoing
from tests.fakes.smtp import FakeSmtp, free_port, silent_server

FROM = "投资人增长 <hello@example.com>"


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def ca_file(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)


@pytest.fixture(scope="module")
def server_tls(ca: trustme.CA) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(ctx)
    return ctx


@pytest.fixture
def smtp_server() -> Iterator[FakeSmtp]:
    server = FakeSmtp().start()
    yield server
    server.stop()


def adapter_for(url: str, *, ca_file: str = "", timeout: float = 5.0) -> SmtpEmailAdapter:
    return build_email_adapter({"smtp_url": url, "mail_from": FROM, "smtp_ca_file": ca_file,
                                "smtp_timeout": timeout, "smtp_local_hostname": "growth.test"})


def outgoing(message_class: MessageClass = MessageClass.MARKETING, **kw: object) -> Outgoing:
    fields: dict = {
        "message_id": "msg_1001",
        "channel": Channel.EMAIL,
        "message_class": message_class,
        "to": "investor@example.org",
        "subject": "欢迎加入投资人增长",
        "text": "张三您好，50.00元投资红包已到账。",
        "html": "<p>张三您好，<b>50.00</b>元投资红包已到账。</p>",
        "unsubscribe_url": "https://growth.example.com/unsubscribe/tok.en-123",
    }
    fields.update(kw)
    return Outgoing(**fields)


def test_a_marketing_mail_arrives_with_both_parts_and_one_click_unsubscribe(smtp_server: FakeSmtp) -> None:
    result = adapter_for(f"smtp://127.0.0.1:{smtp_server.port}").send(outgoing())

    assert result.outcome is Outcome.SENT
    assert result.provider_id == "<growth.msg_1001@example.com>"
    [received] = smtp_server.messages
    assert received.mail_from == "hello@example.com"
    assert received.rcpt_tos == ["investor@example.org"]
    msg = received.message
    assert str(msg["Subject"]) == "欢迎加入投资人增长"
    assert msg["From"].addresses[0].display_name == "投资人增长"
    assert msg["From"].addresses[0].addr_spec == "hello@example.com"
    assert msg["To"] == "investor@example.org"
    assert msg["Message-ID"] == "<growth.msg_1001@example.com>"
    assert msg["Date"]
    assert msg["List-Unsubscribe"] == "<https://growth.example.com/unsubscribe/tok.en-123>"
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert msg.get_content_type() == "multipart/alternative"
    assert msg.get_body(("plain",)).get_content().strip() == "张三您好，50.00元投资红包已到账。"
    assert msg.get_body(("html",)).get_content().strip() == "<p>张三您好，<b>50.00</b>元投资红包已到账。</p>"


def test_headers_on_the_wire_are_ascii_with_the_chinese_encoded(smtp_server: FakeSmtp) -> None:
    adapter_for(f"smtp://127.0.0.1:{smtp_server.port}").send(outgoing())
    raw = smtp_server.messages[0].raw
    head = raw.split(b"\r\n\r\n", 1)[0]
    head.decode("ascii")  # raises if a header went out unencoded
    assert b"=?utf-8?" in head.lower()


def test_a_service_mail_has_no_unsubscribe_headers(smtp_server: FakeSmtp) -> None:
    result = adapter_for(f"smtp://127.0.0.1:{smtp_server.port}").send(
        outgoing(MessageClass.SERVICE, unsubscribe_url=""))
    assert result.outcome is Outcome.SENT
    msg = smtp_server.messages[0].message
    assert msg["List-Unsubscribe"] is None
    assert msg["List-Unsubscribe-Post"] is None


def test_a_text_only_mail_is_a_single_text_part(smtp_server: FakeSmtp) -> None:
    adapter_for(f"smtp://127.0.0.1:{smtp_server.port}").send(outgoing(html=""))
    msg = smtp_server.messages[0].message
    assert msg.get_content_type() == "text/plain"
    assert "50.00元" in msg.get_content()


def test_a_marketing_mail_without_an_unsubscribe_url_is_refused_before_connecting(smtp_server: FakeSmtp) -> None:
    result = adapter_for(f"smtp://127.0.0.1:{smtp_server.port}").send(outgoing(unsubscribe_url=""))
    assert result.outcome is Outcome.FAILED
    assert smtp_server.messages == []


@pytest.mark.parametrize(("answer", "outcome"), [
    ("550 5.1.1 mailbox unavailable", Outcome.UNREACHABLE),
    ("551 5.1.6 user not local", Outcome.UNREACHABLE),
    ("553 5.1.3 mailbox name not allowed", Outcome.UNREACHABLE),
    ("552 5.2.2 mailbox full", Outcome.FAILED),
    ("554 5.7.1 relay denied", Outcome.FAILED),
    ("450 4.2.1 try again later", Outcome.RETRY),
    ("451 4.3.0 local error", Outcome.RETRY),
])
def test_a_refused_recipient_maps_to_its_outcome(smtp_server: FakeSmtp, answer: str, outcome: Outcome) -> None:
    smtp_server.rcpt_answers["investor@example.org"] = answer
    result = adapter_for(f"smtp://127.0.0.1:{smtp_server.port}").send(outgoing())
    assert result.outcome is outcome
    assert result.code == answer[:3]
    assert smtp_server.messages == []


@pytest.mark.parametrize(("answer", "outcome"), [
    ("451 4.7.1 greylisted, try later", Outcome.RETRY),
    ("550 5.7.1 message content rejected", Outcome.FAILED),
    ("554 5.6.0 transaction failed", Outcome.FAILED),
])
def test_a_refused_message_body_maps_to_its_outcome(smtp_server: FakeSmtp, answer: str, outcome: Outcome) -> None:
    smtp_server.answer_data(answer)
    result = adapter_for(f"smtp://127.0.0.1:{smtp_server.port}").send(outgoing())
    assert (result.outcome, result.code) == (outcome, answer[:3])


@pytest.mark.parametrize(("answer", "outcome", "pause"), [
    ("553 5.7.1 sender address rejected", Outcome.FAILED, True),
    ("451 4.3.0 try later", Outcome.RETRY, False),
])
def test_a_refused_sender_fails_and_pauses_unless_temporary(smtp_server: FakeSmtp, answer: str, outcome: Outcome,
                                                             pause: bool) -> None:
    smtp_server.handler.mail_answer = answer
    result = adapter_for(f"smtp://127.0.0.1:{smtp_server.port}").send(outgoing())
    assert (result.outcome, result.code, result.pause_channel) == (outcome, answer[:3], pause)


@pytest.mark.parametrize("field", ["subject", "unsubscribe_url"])
def test_a_line_break_in_a_header_value_fails_instead_of_injecting_headers(smtp_server: FakeSmtp, field: str) -> None:
    result = adapter_for(f"smtp://127.0.0.1:{smtp_server.port}").send(
        outgoing(**{field: "hello\r\nBcc: victim@example.net"}))
    assert (result.outcome, result.code) == (Outcome.FAILED, "invalid")
    assert smtp_server.messages == []


def test_the_refusal_detail_does_not_repeat_the_recipient_address(smtp_server: FakeSmtp) -> None:
    smtp_server.rcpt_answers["investor@example.org"] = "550 5.1.1 <investor@example.org>: Recipient address rejected"
    result = adapter_for(f"smtp://127.0.0.1:{smtp_server.port}").send(outgoing())
    assert result.outcome is Outcome.UNREACHABLE
    assert "investor@example.org" not in result.detail
    assert "Recipient address rejected" in result.detail


def test_a_missing_ca_file_fails_and_pauses_the_channel(tmp_path: Path) -> None:
    result = adapter_for("smtps://127.0.0.1:1", ca_file=str(tmp_path / "missing.pem")).send(outgoing())
    assert (result.outcome, result.code, result.pause_channel) == (Outcome.FAILED, "tls_ca_file", True)


def test_a_server_that_is_not_there_means_retry() -> None:
    result = adapter_for(f"smtp://127.0.0.1:{free_port()}").send(outgoing())
    assert result.outcome is Outcome.RETRY


def test_a_server_that_never_answers_times_out_into_a_retry() -> None:
    sock, port = silent_server()
    try:
        started = time.monotonic()
        result = adapter_for(f"smtp://127.0.0.1:{port}", timeout=0.5).send(outgoing())
    finally:
        sock.close()
    assert result.outcome is Outcome.RETRY
    assert result.code == "timeout"
    assert time.monotonic() - started < 5


def test_starttls_with_login_delivers_over_tls(ca_file: str, server_tls: ssl.SSLContext) -> None:
    server = FakeSmtp(tls_context=server_tls, starttls=True, users={"hello@example.com": "p@ss:wörd"}).start()
    try:
        url = f"smtp://hello%40example.com:p%40ss%3Aw%C3%B6rd@127.0.0.1:{server.port}?starttls=true"
        result = adapter_for(url, ca_file=ca_file).send(outgoing())
    finally:
        server.stop()
    assert result.outcome is Outcome.SENT
    assert server.handler.logins == [("hello@example.com", "p@ss:wörd")]
    assert server.messages[0].login == "hello@example.com"
    assert str(server.messages[0].message["Subject"]) == "欢迎加入投资人增长"


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")
def test_implicit_tls_with_login_delivers(ca_file: str, server_tls: ssl.SSLContext) -> None:
    server = FakeSmtp(tls_context=server_tls, implicit_tls=True, users={"apikey": "s3cret"}).start()
    try:
        result = adapter_for(f"smtps://apikey:s3cret@127.0.0.1:{server.port}", ca_file=ca_file).send(outgoing())
    finally:
        server.stop()
    assert result.outcome is Outcome.SENT
    assert server.handler.logins == [("apikey", "s3cret")]
    assert len(server.messages) == 1


def test_implicit_tls_without_login_delivers(ca_file: str, server_tls: ssl.SSLContext) -> None:
    server = FakeSmtp(tls_context=server_tls, implicit_tls=True).start()
    try:
        result = adapter_for(f"smtps://127.0.0.1:{server.port}", ca_file=ca_file).send(outgoing())
    finally:
        server.stop()
    assert result.outcome is Outcome.SENT
    assert len(server.messages) == 1


def test_a_certificate_we_do_not_trust_fails_and_pauses_the_channel(server_tls: ssl.SSLContext) -> None:
    server = FakeSmtp(tls_context=server_tls, implicit_tls=True).start()
    try:
        result = adapter_for(f"smtps://127.0.0.1:{server.port}").send(outgoing())  # system CAs only
    finally:
        server.stop()
    assert (result.outcome, result.pause_channel) == (Outcome.FAILED, True)
    assert server.messages == []


def test_a_wrong_password_fails_and_pauses_the_channel(ca_file: str, server_tls: ssl.SSLContext) -> None:
    server = FakeSmtp(tls_context=server_tls, starttls=True, users={"hello": "right"}).start()
    try:
        result = adapter_for(f"smtp://hello:wrong@127.0.0.1:{server.port}?starttls=true",
                             ca_file=ca_file).send(outgoing())
    finally:
        server.stop()
    assert result.outcome is Outcome.FAILED
    assert result.pause_channel is True
    assert result.code == "535"
    assert "wrong" not in result.detail
    assert server.messages == []


def test_a_server_that_requires_starttls_refuses_plain_mail_without_retry_storms(server_tls: ssl.SSLContext) -> None:
    server = FakeSmtp(tls_context=server_tls, starttls=True).start()
    try:
        result = adapter_for(f"smtp://127.0.0.1:{server.port}").send(outgoing())
    finally:
        server.stop()
    assert result.outcome is Outcome.FAILED
    assert server.messages == []


def test_the_adapter_is_registered_as_the_smtp_email_provider() -> None:
    registry = AdapterRegistry()
    register_email(registry)
    adapter = registry.build(Channel.EMAIL, "smtp", {"smtp_url": "smtp://h:25", "mail_from": FROM})
    assert isinstance(adapter, SmtpEmailAdapter)
    assert isinstance(adapter.settings, EmailSettings)
    assert (adapter.channel, adapter.provider) == (Channel.EMAIL, "smtp")


def test_building_an_adapter_does_no_io(tmp_path: Path) -> None:
    adapter = adapter_for("smtps://127.0.0.1:1", ca_file=str(tmp_path / "missing.pem"))
    assert adapter.settings.ca_file.endswith("missing.pem")
