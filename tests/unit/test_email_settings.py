from __future__ import annotations

import pytest

from channels.adapters.email import (
    PLAIN,
    STARTTLS,
    TLS,
    EmailSettings,
    SmtpUrl,
    message_id_header,
    parse_mail_from,
    parse_smtp_url,
)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("smtp://mail.example.com:2525", SmtpUrl("mail.example.com", 2525, PLAIN)),
        ("smtp://mail.example.com", SmtpUrl("mail.example.com", 25, PLAIN)),
        ("smtp://u:p@mail.example.com:587?starttls=true", SmtpUrl("mail.example.com", 587, STARTTLS, "u", "p")),
        ("smtp://mail.example.com:587?starttls=false", SmtpUrl("mail.example.com", 587, PLAIN)),
        ("smtps://u:p@mail.example.com", SmtpUrl("mail.example.com", 465, TLS, "u", "p")),
        ("SMTPS://mail.example.com:1465", SmtpUrl("mail.example.com", 1465, TLS)),
        ("smtp://apikey@127.0.0.1:25", SmtpUrl("127.0.0.1", 25, PLAIN, "apikey", "")),
    ],
)
def test_smtp_urls_parse_into_host_port_security_and_credentials(url: str, expected: SmtpUrl) -> None:
    assert parse_smtp_url(url) == expected


def test_percent_encoded_user_and_password_are_decoded() -> None:
    parsed = parse_smtp_url("smtps://hello%40example.com:p%40ss%3Aw%2Frd%20%25@smtp.example.com:465")
    assert parsed.username == "hello@example.com"
    assert parsed.password == "p@ss:w/rd %"
    assert parsed.host == "smtp.example.com"


def test_a_non_ascii_password_is_decoded_as_utf8() -> None:
    assert parse_smtp_url("smtp://u:%E5%AF%86%E7%A0%81@h:25").password == "密码"


@pytest.mark.parametrize(
    "url",
    [
        "http://mail.example.com",
        "smtp://",
        "smtp://mail.example.com:notaport",
        "smtp://mail.example.com:99999",
        "smtps://mail.example.com?starttls=true",
        "smtp://mail.example.com?starttls=maybe",
        "smtp://mail.example.com?tls=true",
        "smtp://mail.example.com/path",
        "smtp://:secret@mail.example.com",
    ],
)
def test_malformed_smtp_urls_are_refused(url: str) -> None:
    with pytest.raises(ValueError):
        parse_smtp_url(url)


def test_the_password_never_shows_in_the_repr() -> None:
    assert "hunter2" not in repr(parse_smtp_url("smtp://u:hunter2@h:25"))


def test_a_chinese_display_name_parses_with_its_address() -> None:
    addr = parse_mail_from("投资人增长 <hello@example.com>")
    assert (addr.display_name, addr.addr_spec, addr.domain) == ("投资人增长", "hello@example.com", "example.com")


def test_a_bare_address_is_a_sender_without_display_name() -> None:
    addr = parse_mail_from("hello@example.com")
    assert (addr.display_name, addr.addr_spec) == ("", "hello@example.com")


@pytest.mark.parametrize("value", ["", "投资人增长", "<nobody>", "a b@example.com"])
def test_a_sender_without_an_address_is_refused(value: str) -> None:
    with pytest.raises(ValueError):
        parse_mail_from(value)


def test_settings_build_from_the_spec_names() -> None:
    settings = EmailSettings.from_mapping({"smtp_url": "smtp://h:2525", "mail_from": "x@example.com",
                                           "smtp_timeout": "5", "smtp_ca_file": "/tmp/ca.pem"})
    assert settings.smtp.port == 2525
    assert settings.timeout == 5.0
    assert settings.ca_file == "/tmp/ca.pem"


def test_the_message_id_header_carries_our_id_in_safe_characters() -> None:
    assert message_id_header("msg_42", "example.com") == "<growth.msg_42@example.com>"
    assert message_id_header("a b<c>@d", "example.com") == "<growth.a-b-c--d@example.com>"
