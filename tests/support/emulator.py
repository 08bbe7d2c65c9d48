"""Raw clients of the GenAuth emulator for its own tests, and a loopback webhook receiver.

``Api`` shows raw HTTP status and bodies; ``Signer`` signs requests the way the AK/SK SDKs do; ``receiving``
serves a Flask app that records each webhook delivery it gets (and can answer slowly or with an error).
"""

from __future__ import annotations

import base64
import email.utils
import hashlib
import hmac
import json
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import requests
from flask import Flask, request

from genauth_emulator import EmulatorServer
from tests.support.serving import serve_in_thread, wsgi_server


class Api:
    """A bare-bones management API client over one session: tests see raw HTTP status and bodies."""

    def __init__(self, server: EmulatorServer) -> None:
        self.server = server
        self.session = requests.Session()
        self._token: str | None = None

    def token(self, access_key_id: str | None = None, access_key_secret: str | None = None) -> requests.Response:
        state = self.server.state
        return self.session.post(
            f"{self.server.url}/api/v3/get-management-token",
            json={
                "accessKeyId": access_key_id or state.access_key_id,
                "accessKeySecret": access_key_secret or state.access_key_secret,
            },
            timeout=5,
        )

    def bearer(self) -> dict[str, str]:
        if self._token is None:
            self._token = self.token().json()["data"]["access_token"]
        return {"authorization": f"Bearer {self._token}"}

    def get(self, endpoint: str, params: Any = None, headers: dict[str, str] | None = None) -> requests.Response:
        return self.session.get(
            f"{self.server.url}/api/v3/{endpoint}",
            params=params,
            headers=headers if headers is not None else self.bearer(),
            timeout=5,
        )

    def post(self, endpoint: str, body: Any, headers: dict[str, str] | None = None) -> requests.Response:
        return self.session.post(
            f"{self.server.url}/api/v3/{endpoint}",
            json=body,
            headers=headers if headers is not None else self.bearer(),
            timeout=5,
        )

    def data(self, endpoint: str, params: Any = None) -> Any:
        """GET and return `data`, asserting the call succeeded."""
        envelope = self.get(endpoint, params).json()
        assert envelope["statusCode"] == 200, envelope
        return envelope["data"]


@dataclass
class Delivery:
    headers: dict[str, str]
    content_type: str
    raw: bytes
    form: list[tuple[str, str]]


@dataclass
class Receiver:
    """A loopback Flask app that records each webhook delivery it gets; it answers `status` after `delay`
    seconds (200 at once unless a test changes them)."""

    url: str
    deliveries: list[Delivery] = field(default_factory=list)
    status: int = 200
    delay: float = 0.0


@contextmanager
def receiving() -> Iterator[Receiver]:
    """A ``Receiver`` served on loopback at ``/hook`` until the block ends."""
    app = Flask("receiver")
    recorded = Receiver(url="")

    @app.post("/hook")
    def hook() -> tuple[dict[str, bool], int]:
        recorded.deliveries.append(
            Delivery(
                headers={key.lower(): value for key, value in request.headers.items()},
                content_type=request.content_type or "",
                raw=request.get_data(),
                form=list(request.form.items(multi=True)),
            )
        )
        if recorded.delay:
            threading.Event().wait(recorded.delay)  # a slow receiver, on purpose
        return {"success": recorded.status < 300}, recorded.status

    with serve_in_thread(wsgi_server(app)) as http:
        recorded.url = f"http://127.0.0.1:{http.port}/hook"
        yield recorded


class Signer:
    """Signs management API requests the way the AK/SK SDKs do, written from their description (not their code):
    `brand` picks `GenAuth`/`x-genauth-` or `authing`/`x-authing-`; `java=True` renders like the Java SDK
    (epoch-millisecond date, nulls left out, an empty value as a bare key)."""

    def __init__(self, server: EmulatorServer, brand: str = "GenAuth", *, java: bool = False) -> None:
        self.server = server
        self.brand = brand
        self.prefix = f"x-{brand.lower()}-"
        self.java = java
        self.session = requests.Session()

    def headers(
        self,
        method: str,
        path: str,
        pairs: dict[str, Any],
        *,
        secret: str | None = None,
        nonce: str | None = None,
        date: str | None = None,
        overrides: dict[str, str | None] | None = None,
    ) -> dict[str, str]:
        state = self.server.state
        if date is None:
            now = state._clock()  # the emulator's (possibly fake) clock
            date = str(int(now * 1000)) if self.java else email.utils.formatdate(now, usegmt=True)
        headers: dict[str, str | None] = {
            f"{self.prefix}signature-nonce": nonce or secrets.token_hex(16),
            f"{self.prefix}signature-method": "HMAC-SHA1",
            f"{self.prefix}signature-version": "1.0",
            f"{self.prefix}sdk-version": "test-signer:1.0",
            f"{self.prefix}lang": "en-US",
            "date": date,
        }
        headers.update(overrides or {})
        sent = {name: value for name, value in headers.items() if value is not None}
        lines = "".join(f"{name}:{sent[name]}\n" for name in sorted(sent))
        parts = []
        for key in sorted(pairs):
            value = pairs[key]
            if self.java and value is None:
                continue
            if self.java and value == "":
                parts.append(key)
                continue
            if isinstance(value, bool):
                text = "true" if value else "false"
            elif value is None:
                text = "null"
            elif isinstance(value, dict | list):
                text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
            else:
                text = str(value)
            parts.append(f"{key}={text}")
        resource = f"{path}?{'&'.join(parts)}" if parts else path
        string_to_sign = f"{method}\n{lines}{resource}"
        digest = hmac.new((secret or state.access_key_secret).encode(), string_to_sign.encode(), hashlib.sha1).digest()
        authorization = f"{self.brand} {state.access_key_id}:{base64.b64encode(digest).decode()}"
        return {**sent, ("Authorization" if self.java else "authorization"): authorization}

    def get(self, endpoint: str, params: list[tuple[str, str]], signed: dict[str, Any] | None = None, **kw: Any) -> Any:
        """GET with `params` on the wire; `signed` (default: the params as a dict) is what the signature covers."""
        path = f"/api/v3/{endpoint}"
        headers = self.headers("GET", path, dict(params) if signed is None else signed, **kw)
        return self.session.get(f"{self.server.url}{path}", params=params, headers=headers, timeout=5).json()

    def post(self, endpoint: str, body: dict[str, Any], signed: dict[str, Any] | None = None, **kw: Any) -> Any:
        """POST `body` as JSON; `signed` (default: the body) is what the signature covers."""
        path = f"/api/v3/{endpoint}"
        headers = self.headers("POST", path, body if signed is None else signed, **kw)
        headers["content-type"] = "application/json"
        data = json.dumps(body, ensure_ascii=False).encode()
        return self.session.post(f"{self.server.url}{path}", data=data, headers=headers, timeout=5).json()
