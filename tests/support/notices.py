"""Real receivers for notices on loopback: an SMTP server (aiosmtpd) that keeps every message it accepts, and an
HTTP endpoint that keeps every JSON body posted to it; either can be told to refuse."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from tests.support.processes import free_port
from tests.support.serving import serve_in_thread, wsgi_server


@dataclass
class Mail:
    sender: str
    to: list[str]
    message: Message

    @property
    def subject(self) -> str:
        return str(self.message["Subject"])

    @property
    def body(self) -> str:
        payload = self.message.get_payload(decode=True)
        assert isinstance(payload, bytes)
        return payload.decode()


@dataclass
class Mailbox:
    """The SMTP server's handler: ``refuse`` (e.g. ``"451 try later"``) answers every message with it."""

    received: list[Mail] = field(default_factory=list)
    refuse: str | None = None
    logins: list[tuple[str, str]] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.refuse:
            return self.refuse
        content = envelope.content if isinstance(envelope.content, bytes) else envelope.content.encode()
        self.received.append(Mail(envelope.mail_from, list(envelope.rcpt_tos), message_from_bytes(content)))
        return "250 OK"

    def authenticate(self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
        if isinstance(data, LoginPassword):
            self.logins.append((data.login.decode(), data.password.decode()))
            return AuthResult(success=True)
        return AuthResult(success=False, handled=False)


@contextmanager
def smtp_server() -> Iterator[tuple[Mailbox, int]]:
    """An SMTP server on 127.0.0.1 (plain, AUTH allowed without TLS) and its port."""
    box = Mailbox()
    port = free_port()
    controller = Controller(
        box, hostname="127.0.0.1", port=port, authenticator=box.authenticate, auth_require_tls=False
    )
    controller.start()
    try:
        yield box, port
    finally:
        controller.stop()


@dataclass
class Hook:
    """The HTTP receiver's state: every JSON body, and the status to answer with."""

    bodies: list[dict[str, Any]] = field(default_factory=list)
    status: int = 200
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        size = int(environ.get("CONTENT_LENGTH") or 0)
        body = json.loads(environ["wsgi.input"].read(size))
        with self.lock:
            if self.status < 300:
                self.bodies.append(body)
        start_response(f"{self.status} X", [("Content-Type", "text/plain")])
        return [b"ok"]


@contextmanager
def webhook_receiver() -> Iterator[tuple[Hook, str]]:
    """An HTTP receiver on 127.0.0.1 and its URL."""
    hook = Hook()
    with serve_in_thread(wsgi_server(hook)) as server:
        yield hook, f"http://127.0.0.1:{server.port}/hook"
