"""The two ways a notice leaves the service: e-mail over SMTP and a JSON POST to an incoming webhook.

Each raises ``NoticeNotSentError`` with a short reason when the other side refuses or does not answer; the
reason never carries the webhook's URL (such URLs hold a token) or the SMTP password. The webhook's body has
a plain ``text`` field, which is what Slack- and Teams-style incoming webhooks show, next to the structured
fields of the notice. HTTP goes through the standard library: ``requests`` is the GenAuth client's alone
(docs/architecture.md, "Layers").
"""

from __future__ import annotations

import json
import smtplib
import socket
import ssl
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any

from service.notices.errors import NoticeNotSentError
from service.settings import SmtpServer

MAX_ANSWER = 200
"""Characters of an SMTP or HTTP refusal kept as the notice's last error."""


def send_email(server: SmtpServer, *, sender: str, to: Sequence[str], subject: str, body: str, timeout: float) -> None:
    """Send one plain-text e-mail to ``to`` through ``server`` (plain, STARTTLS or TLS, as its URL said)."""
    message = EmailMessage()
    message["From"] = sender
    message["To"] = ", ".join(to)
    message["Subject"] = subject
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or None)
    message.set_content(body)
    try:
        if server.security == "ssl":
            client: smtplib.SMTP = smtplib.SMTP_SSL(
                server.host, server.port, timeout=timeout, context=ssl.create_default_context()
            )
        else:
            client = smtplib.SMTP(server.host, server.port, timeout=timeout)
        with client:
            if server.security == "starttls":
                client.starttls(context=ssl.create_default_context())
            if server.username:
                client.login(server.username, server.password)
            client.send_message(message)
    except smtplib.SMTPResponseException as error:
        answer = error.smtp_error.decode(errors="replace") if isinstance(error.smtp_error, bytes) else error.smtp_error
        raise NoticeNotSentError(f"the SMTP server refused: {error.smtp_code} {str(answer)[:MAX_ANSWER]}") from error
    except smtplib.SMTPRecipientsRefused as error:
        raise NoticeNotSentError(f"the SMTP server refused {len(error.recipients)} recipient(s)") from error
    except (smtplib.SMTPException, OSError) as error:
        raise NoticeNotSentError(f"the SMTP server {server.host}:{server.port} failed: {_why(error)}") from error


def post_webhook(url: str, payload: Mapping[str, Any], *, timeout: float) -> None:
    """POST ``payload`` as JSON to ``url``; any answer but 2xx is a refusal."""
    body = json.dumps(payload, ensure_ascii=False).encode()
    request = urllib.request.Request(  # noqa: S310 - the operator's http(s) URL (settings checks the scheme)
        url, data=body, method="POST", headers={"Content-Type": "application/json", "User-Agent": "mfa-enforcer"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:  # noqa: S310 - as above
            answer.read(1024)
    except urllib.error.HTTPError as error:
        raise NoticeNotSentError(f"the notification webhook answered HTTP {error.code}") from error
    except (urllib.error.URLError, OSError) as error:
        raise NoticeNotSentError(f"the notification webhook failed: {_why(error)}") from error


def _why(error: Exception) -> str:
    if isinstance(error, urllib.error.URLError) and isinstance(error.reason, Exception):
        error = error.reason
    if isinstance(error, socket.timeout | TimeoutError):
        return "no answer in time"
    return type(error).__name__ + (f": {error.strerror}" if isinstance(error, OSError) and error.strerror else "")
