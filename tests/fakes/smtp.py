"""A real SMTP server on 127.0.0.1 (aiosmtpd) that records what it receives and answers as told.

`FakeSmtp.start(...)` runs it plain, with STARTTLS (`tls_context`, `starttls=True`) or implicit TLS
(`tls_context`, `implicit_tls=True`), optionally requiring AUTH. Set `rcpt_answers[address]` to refuse
a recipient (`"550 5.1.1 no such user"`), `data_answer` to answer the DATA command with a code of choice.
"""

from __future__ import annotations

import socket
import ssl
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default as default_policy
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session


@dataclass
class Received:
    """One message the server accepted."""

    mail_from: str
    rcpt_tos: list[str]
    raw: bytes
    login: str | None

    @property
    def message(self) -> EmailMessage:
        parsed = message_from_bytes(self.raw, policy=default_policy)
        assert isinstance(parsed, EmailMessage)
        return parsed


@dataclass
class FakeSmtpHandler:
    """The aiosmtpd handler: records messages, answers RCPT and DATA as configured."""

    messages: list[Received] = field(default_factory=list)
    rcpt_answers: dict[str, str] = field(default_factory=dict)
    data_answer: str = "250 2.0.0 Message accepted"
    mail_answer: str | None = None  # answer MAIL FROM with this instead of accepting the sender
    logins: list[tuple[str, str]] = field(default_factory=list)

    async def handle_MAIL(self, server: SMTP, session: Session, envelope: Envelope, address: str,
                          mail_options: list[str]) -> str:
        if self.mail_answer is not None:
            return self.mail_answer
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 OK"

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope, address: str,
                          rcpt_options: list[str]) -> str:
        answer = self.rcpt_answers.get(address)
        if answer is not None:
            return answer
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.data_answer.startswith("250"):
            login = session.auth_data.decode() if isinstance(session.auth_data, bytes) else None
            content = envelope.original_content or b""
            self.messages.append(Received(str(envelope.mail_from), list(envelope.rcpt_tos), content, login))
        return self.data_answer


def free_port() -> int:
    """Return a port on 127.0.0.1 that was free a moment ago (aiosmtpd's controller cannot bind port 0)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class FakeSmtp:
    """A running fake SMTP server; `stop()` it (the fixture does)."""

    def __init__(self, *, tls_context: ssl.SSLContext | None = None, starttls: bool = False,
                 implicit_tls: bool = False, users: dict[str, str] | None = None) -> None:
        self.handler = FakeSmtpHandler()
        self.users = users
        self.host = "127.0.0.1"
        self.port = free_port()
        kwargs: dict[str, Any] = {"hostname": self.host, "port": self.port, "server_hostname": "fake.smtp.test"}
        if implicit_tls:
            kwargs["ssl_context"] = tls_context
        if starttls:
            kwargs["tls_context"] = tls_context
            kwargs["require_starttls"] = True
        if users is not None:
            kwargs["authenticator"] = self._authenticate
            kwargs["auth_required"] = True
            kwargs["auth_require_tls"] = starttls  # aiosmtpd counts only STARTTLS as TLS here
        self.controller = Controller(self.handler, **kwargs)

    def _authenticate(self, server: SMTP, session: Session, envelope: Envelope, mechanism: str,
                      auth_data: Any) -> AuthResult:
        if not isinstance(auth_data, LoginPassword) or self.users is None:
            return AuthResult(success=False, handled=False)
        login, password = auth_data.login.decode(), auth_data.password.decode()
        self.handler.logins.append((login, password))
        ok = self.users.get(login) == password
        return AuthResult(success=ok, handled=False, auth_data=auth_data.login if ok else None)

    def start(self) -> FakeSmtp:
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()

    @property
    def messages(self) -> list[Received]:
        return self.handler.messages

    @property
    def rcpt_answers(self) -> dict[str, str]:
        return self.handler.rcpt_answers

    def answer_data(self, answer: str) -> None:
        self.handler.data_answer = answer


def silent_server() -> tuple[socket.socket, int]:
    """Return a listening socket that accepts connections and never says a word (for timeouts)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    return sock, int(sock.getsockname()[1])
