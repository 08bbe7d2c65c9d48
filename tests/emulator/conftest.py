"""Fixtures for the emulator's own tests: a seeded pool, the emulator served on loopback, a small raw API
client, a controllable clock, and a loopback webhook receiver that records what it was sent."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests
from flask import Flask, request
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from genauth_emulator import EmulatorServer, EmulatorState, seed_sandbox


class FakeClock:
    """A clock tests move by hand, so token expiry needs no waiting."""

    def __init__(self, start: float = 1_760_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def state(clock: FakeClock) -> EmulatorState:
    return EmulatorState(access_key_secret="test-secret", clock=clock)


@pytest.fixture
def ids(state: EmulatorState) -> dict[str, str]:
    return seed_sandbox(state)


@pytest.fixture
def server(state: EmulatorState, ids: dict[str, str]) -> Iterator[EmulatorServer]:
    with EmulatorServer(state) as running:
        yield running


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


@pytest.fixture
def api(server: EmulatorServer) -> Iterator[Api]:
    client = Api(server)
    yield client
    client.session.close()


@dataclass
class Delivery:
    headers: dict[str, str]
    content_type: str
    raw: bytes
    form: list[tuple[str, str]]


@dataclass
class Receiver:
    """A loopback Flask app that records each webhook delivery it gets."""

    url: str
    deliveries: list[Delivery] = field(default_factory=list)


class _Quiet(WSGIRequestHandler):
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    app = Flask("receiver")
    recorded = Receiver(url="")

    @app.post("/hook")
    def hook() -> dict[str, bool]:
        recorded.deliveries.append(
            Delivery(
                headers={key.lower(): value for key, value in request.headers.items()},
                content_type=request.content_type or "",
                raw=request.get_data(),
                form=list(request.form.items(multi=True)),
            )
        )
        return {"success": True}

    http: BaseWSGIServer = make_server("127.0.0.1", 0, app, threaded=True, request_handler=_Quiet)
    thread = threading.Thread(target=http.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    recorded.url = f"http://127.0.0.1:{http.port}/hook"
    yield recorded
    http.shutdown()
    thread.join()
    http.server_close()
