"""Email over SMTP (`smtplib`): multipart text + HTML, RFC 8058 one-click unsubscribe for marketing.

Settings come from `GROWTH_SMTP_URL` (`smtp://[user:pass@]host:port`, `?starttls=true`, or
`smtps://...` for implicit TLS; user and password percent-encoded) and `GROWTH_MAIL_FROM`
(`投资人增长 <hello@example.com>`). SMTP replies map to outcomes: 2xx sent; 4xx, connection errors and
timeouts retry; a recipient refused with 550/551/553 is unreachable; other 5xx fail; a refused login
(or a server that cannot do what the URL asks: STARTTLS, AUTH, a certificate we trust) fails and pauses
the channel.
"""

from __future__ import annotations

import base64
import re
import smtplib
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.utils import formatdate, parseaddr
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from channels.adapters.port import AdapterRegistry, Channel, MessageClass, Outcome, Outgoing, SendResult

PLAIN = "plain"
STARTTLS = "starttls"
TLS = "tls"  # implicit TLS (smtps)
_DEFAULT_PORTS = {"smtp": 25, "smtps": 465}
_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}
UNREACHABLE_CODES = frozenset({550, 551, 553})


@dataclass(frozen=True, slots=True)
class SmtpUrl:
    """Where and how to reach the SMTP server (the parsed `GROWTH_SMTP_URL`)."""

    host: str
    port: int
    security: str = PLAIN  # PLAIN, STARTTLS or TLS
    username: str = ""
    password: str = ""

    def __repr__(self) -> str:  # never print the password
        return (f"SmtpUrl(host={self.host!r}, port={self.port}, security={self.security!r}, "
                f"username={self.username!r}, password={'***' if self.password else ''!r})")


def parse_smtp_url(url: str) -> SmtpUrl:
    """Parse `smtp://[user:pass@]host[:port][?starttls=true]` or `smtps://...`; raise ValueError if malformed."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise ValueError(f"SMTP URL scheme must be smtp or smtps, not {parts.scheme!r}")
    if not parts.hostname:
        raise ValueError("SMTP URL has no host")
    if parts.path not in ("", "/") or parts.fragment:
        raise ValueError("SMTP URL takes no path or fragment")
    try:
        port = parts.port or _DEFAULT_PORTS[scheme]
    except ValueError:
        raise ValueError("SMTP URL port is not a number between 0 and 65535") from None
    security = TLS if scheme == "smtps" else PLAIN
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key.lower() != "starttls":
            raise ValueError(f"unknown SMTP URL option {key!r}")
        flag = value.lower()
        if flag not in _TRUE | _FALSE:
            raise ValueError(f"starttls must be true or false, not {value!r}")
        if flag in _TRUE:
            if scheme == "smtps":
                raise ValueError("smtps already uses TLS; starttls=true is for smtp://")
            security = STARTTLS
    username = unquote(parts.username) if parts.username is not None else ""
    password = unquote(parts.password) if parts.password is not None else ""
    if password and not username:
        raise ValueError("SMTP URL has a password without a user")
    return SmtpUrl(host=parts.hostname, port=port, security=security, username=username, password=password)


def parse_mail_from(value: str) -> Address:
    """Parse `GROWTH_MAIL_FROM` (`投资人增长 <hello@example.com>` or a bare address); raise ValueError if malformed."""
    name, addr = parseaddr(value.strip())
    local, sep, domain = addr.rpartition("@")
    if not sep or not local or not domain or any(c.isspace() for c in addr):
        raise ValueError(f"not a mail address: {value!r}")
    return Address(display_name=name, username=local, domain=domain)


@dataclass(frozen=True, slots=True)
class EmailSettings:
    """The email adapter's configuration."""

    smtp: SmtpUrl
    mail_from: Address
    timeout: float = 30.0  # seconds, for the connection and each reply
    ca_file: str = ""  # a CA bundle to trust instead of the system's (tests, private relays)
    local_hostname: str | None = None  # our name in EHLO (default: the machine's FQDN)

    @classmethod
    def from_mapping(cls, settings: Mapping[str, Any]) -> EmailSettings:
        """Build from `smtp_url`, `mail_from` and optional `smtp_timeout`, `smtp_ca_file`, `smtp_local_hostname`."""
        return cls(
            smtp=parse_smtp_url(str(settings["smtp_url"])),
            mail_from=parse_mail_from(str(settings["mail_from"])),
            timeout=float(settings.get("smtp_timeout") or 30.0),
            ca_file=str(settings.get("smtp_ca_file") or ""),
            local_hostname=settings.get("smtp_local_hostname") or None,
        )


def message_id_header(message_id: str, domain: str) -> str:
    """Return the Message-ID for our message id: `<growth.{id}@{domain}>`, the id reduced to safe characters."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "-", message_id) or "message"
    return f"<growth.{safe}@{domain}>"


def build_message(message: Outgoing, mail_from: Address) -> EmailMessage:
    """Build the MIME message: text (and HTML as an alternative), headers, one-click unsubscribe for marketing."""
    if message.message_class is MessageClass.MARKETING and not message.unsubscribe_url:
        raise ValueError("marketing email needs an unsubscribe_url")
    msg = EmailMessage(policy=SMTP_POLICY)
    msg["From"] = mail_from
    msg["To"] = _recipients(message)
    msg["Subject"] = message.subject
    msg["Date"] = formatdate(localtime=False, usegmt=True)
    msg["Message-ID"] = message_id_header(message.message_id, mail_from.domain)
    if message.message_class is MessageClass.MARKETING:
        msg["List-Unsubscribe"] = f"<{message.unsubscribe_url}>"
        msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    msg.set_content(message.text or "")
    if message.html:
        msg.add_alternative(message.html, subtype="html")
    return msg


def _recipients(message: Outgoing) -> list[str]:
    return [message.to] if isinstance(message.to, str) else list(message.to)


_ADDRESS = re.compile(r"[^\s<>\"',;:()\[\]]+@[^\s<>\"',;:()\[\]]+")


def redact(text: str) -> str:
    """Remove mail addresses from a server's reply text (servers echo the recipient: personal data)."""
    return _ADDRESS.sub("<address>", text)


def _by_code(code: int, text: str, *, recipient: bool = False) -> SendResult:
    """Map an SMTP reply code to an outcome (`recipient`: the refusal was of RCPT TO)."""
    detail = redact(text)[:200]
    if 200 <= code < 300:
        return SendResult(Outcome.SENT, code=str(code), detail=detail)
    if 400 <= code < 500:
        return SendResult(Outcome.RETRY, code=str(code), detail=detail)
    if recipient and code in UNREACHABLE_CODES:
        return SendResult(Outcome.UNREACHABLE, code=str(code), detail=detail)
    if 500 <= code < 600:
        return SendResult(Outcome.FAILED, code=str(code), detail=detail)
    return SendResult(Outcome.RETRY, code=str(code), detail=detail)


def _reply_text(resp: bytes | str) -> str:
    return resp.decode("utf-8", "replace") if isinstance(resp, bytes) else str(resp)


def _login(smtp: smtplib.SMTP, username: str, password: str) -> None:
    """Log in; credentials beyond ASCII go as UTF-8 AUTH PLAIN (RFC 4616), which smtplib cannot encode."""
    if (username + password).isascii():
        smtp.login(username, password)
        return
    smtp.ehlo_or_helo_if_needed()
    if not smtp.has_extn("auth") or "PLAIN" not in smtp.esmtp_features["auth"].upper().split():
        raise smtplib.SMTPNotSupportedError("the server offers no AUTH PLAIN for UTF-8 credentials")
    blob = base64.b64encode(b"\0" + username.encode() + b"\0" + password.encode()).decode("ascii")
    code, resp = smtp.docmd("AUTH", "PLAIN " + blob)
    if code != 235:
        raise smtplib.SMTPAuthenticationError(code, resp)


class SmtpEmailAdapter:
    """Sends one email per `send` over a fresh SMTP connection."""

    channel = Channel.EMAIL
    provider = "smtp"

    def __init__(self, settings: EmailSettings) -> None:
        self.settings = settings
        self._tls_context: ssl.SSLContext | None = None

    def tls_context(self) -> ssl.SSLContext:
        """Return the TLS context (certificate and host name checked; `ca_file` replaces the system CAs)."""
        if self._tls_context is None:
            self._tls_context = ssl.create_default_context(cafile=self.settings.ca_file or None)
        return self._tls_context

    def _connect(self) -> smtplib.SMTP:
        smtp_url = self.settings.smtp
        if smtp_url.security == TLS:
            return smtplib.SMTP_SSL(smtp_url.host, smtp_url.port, local_hostname=self.settings.local_hostname,
                                    timeout=self.settings.timeout, context=self.tls_context())
        return smtplib.SMTP(smtp_url.host, smtp_url.port, local_hostname=self.settings.local_hostname,
                            timeout=self.settings.timeout)

    def send(self, message: Outgoing) -> SendResult:
        """Send the message; map every SMTP outcome to a `SendResult` (never raises for the server's answers)."""
        try:
            msg = build_message(message, self.settings.mail_from)
        except ValueError as exc:
            return SendResult(Outcome.FAILED, code="invalid", detail=str(exc))
        provider_id = str(msg["Message-ID"])
        if self.settings.smtp.security != PLAIN:
            try:
                self.tls_context()
            except (OSError, ssl.SSLError) as exc:  # the CA file is missing or unreadable: a setting to fix
                return SendResult(Outcome.FAILED, code="tls_ca_file", detail=type(exc).__name__, pause_channel=True)
        smtp: smtplib.SMTP | None = None
        talking = True  # the server still answers: say QUIT rather than just hang up
        try:
            smtp = self._connect()
            if self.settings.smtp.security == STARTTLS:
                smtp.starttls(context=self.tls_context())
            if self.settings.smtp.username:
                _login(smtp, self.settings.smtp.username, self.settings.smtp.password)
            smtp.send_message(msg, from_addr=self.settings.mail_from.addr_spec, to_addrs=_recipients(message))
        except smtplib.SMTPAuthenticationError as exc:
            if 400 <= exc.smtp_code < 500:
                return SendResult(Outcome.RETRY, code=str(exc.smtp_code), detail="login refused for now")
            return SendResult(Outcome.FAILED, code=str(exc.smtp_code), detail="login refused", pause_channel=True)
        except smtplib.SMTPRecipientsRefused as exc:
            code, resp = next(iter(exc.recipients.values()))
            return _by_code(code, _reply_text(resp), recipient=True)
        except smtplib.SMTPSenderRefused as exc:  # our own From: every message would meet the same refusal
            result = _by_code(exc.smtp_code, _reply_text(exc.smtp_error))
            if result.outcome is Outcome.FAILED:
                return SendResult(Outcome.FAILED, code=result.code, detail=result.detail, pause_channel=True)
            return result
        except smtplib.SMTPNotSupportedError as exc:
            return SendResult(Outcome.FAILED, code="not_supported", detail=str(exc)[:200], pause_channel=True)
        except smtplib.SMTPResponseException as exc:  # sender refused, DATA refused, HELO refused, ...
            return _by_code(exc.smtp_code, _reply_text(exc.smtp_error))
        except ssl.SSLCertVerificationError as exc:
            return SendResult(Outcome.FAILED, code="tls_certificate", detail=str(exc.verify_message)[:200],
                              pause_channel=True)
        except TimeoutError:
            talking = False
            return SendResult(Outcome.RETRY, code="timeout", detail="the SMTP server did not answer in time")
        except (smtplib.SMTPException, OSError) as exc:  # disconnects, refused connections, TLS errors
            talking = False
            if isinstance(exc.__context__, TimeoutError):  # smtplib reports a read timeout as a disconnect
                return SendResult(Outcome.RETRY, code="timeout", detail="the SMTP server did not answer in time")
            return SendResult(Outcome.RETRY, code="connection", detail=type(exc).__name__)
        finally:
            if smtp is not None:
                try:
                    if talking:
                        smtp.quit()
                except (smtplib.SMTPException, OSError):
                    pass
                smtp.close()
        return SendResult(Outcome.SENT, code="250", provider_id=provider_id)


def build_email_adapter(settings: Mapping[str, Any]) -> SmtpEmailAdapter:
    """Build the SMTP adapter from settings (`smtp_url`, `mail_from`, optional `smtp_*`)."""
    return SmtpEmailAdapter(EmailSettings.from_mapping(settings))


def register_email(registry: AdapterRegistry) -> None:
    """Register the SMTP email adapter."""
    registry.register(Channel.EMAIL, SmtpEmailAdapter.provider, build_email_adapter)
