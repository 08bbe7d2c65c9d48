"""The event WebSocket: `/events/v1/management/sub?code=<code>` with the signed `authorization` header (both
brands) is accepted, anything else refused at the handshake; the pool's changes arrive as JSON text frames in
each plausible shape; tests can push garbage or oversized frames and cut every connection."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import requests
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from genauth_emulator import EmulatorServer

PATH = "/events/v1/management/sub"


def authorization(server: EmulatorServer, brand: str = "authing", secret: str | None = None) -> str:
    """What the SDKs send: base64 HMAC-SHA1 of "websocket\\n" with the secret, written here from the description."""
    key = (secret or server.state.access_key_secret).encode()
    signature = base64.b64encode(hmac.new(key, b"websocket\n", hashlib.sha1).digest()).decode()
    return f"{brand} {server.state.access_key_id}:{signature}"


@contextmanager
def subscribe(server: EmulatorServer, code: str, **kw: str) -> Iterator[ClientConnection]:
    url = f"{server.events_url}{PATH}?code={code}"
    with connect(url, additional_headers={"authorization": authorization(server, **kw)}, open_timeout=5) as socket:
        assert server.events is not None
        server.events.wait_for_subscribers(code)
        yield socket


def refusal(server: EmulatorServer, url: str, headers: dict[str, str]) -> int:
    with pytest.raises(InvalidStatus) as raised:
        connect(url, additional_headers=headers, open_timeout=5)
    return raised.value.response.status_code


@pytest.mark.parametrize("brand", ["authing", "genauth", "GenAuth"])
def test_a_created_user_arrives_as_a_json_object(server: EmulatorServer, brand: str) -> None:
    """Either brand's signature opens the stream; add_user pushes the user (v3 UserDto) to the code's subscribers."""
    with subscribe(server, "authing.user.created", brand=brand) as socket:
        user = server.state.add_user(username="ws.new", email="ws.new@acme.example")
        message = json.loads(socket.recv(timeout=5))
    assert message["userId"] == user["userId"] and message["username"] == "ws.new"


def test_updates_and_logins_go_only_to_their_codes(server: EmulatorServer, ids: dict[str, str]) -> None:
    """A login goes to authing.user.login subscribers, an update to authing.user.updated ones, not across."""
    with subscribe(server, "authing.user.login") as logins, subscribe(server, "authing.user.updated") as updates:
        server.state.login(ids["fin.alice"])
        server.state.update_user(ids["fin.bob"], phone="13911112222")
        assert json.loads(logins.recv(timeout=5))["userId"] == ids["fin.alice"]
        assert json.loads(updates.recv(timeout=5))["phone"] == "13911112222"
        with pytest.raises(TimeoutError):
            logins.recv(timeout=0.3)


@pytest.mark.parametrize("shape", ["object", "string", "envelope", "envelope-object"])
def test_every_plausible_message_shape_can_be_sent(server: EmulatorServer, shape: str) -> None:
    """The shape setting (also on /_emulator/events/settings) picks object, JSON string or an envelope."""
    answer = requests.post(f"{server.url}/_emulator/events/settings", json={"shape": shape}, timeout=5)
    assert answer.json() == {"shape": shape}
    with subscribe(server, "authing.user.created") as socket:
        user = server.state.add_user(username=f"shape.{shape}")
        frame = json.loads(socket.recv(timeout=5))
    if shape == "string":
        frame = json.loads(frame)
    elif shape == "envelope":
        assert frame["eventType"] == "authing.user.created"
        frame = json.loads(frame["eventData"])
    elif shape == "envelope-object":
        frame = frame["eventData"]
    assert frame["userId"] == user["userId"]


def test_bad_handshakes_are_refused(server: EmulatorServer) -> None:
    """A wrong secret or none at all is 401, a wrong path 404, a missing code 400; none becomes a subscriber."""
    base = f"{server.events_url}{PATH}?code=authing.user.created"
    assert refusal(server, base, {"authorization": authorization(server, secret="wrong")}) == 401
    assert refusal(server, base, {}) == 401
    assert refusal(server, base, {"authorization": "Bearer something"}) == 401
    good = {"authorization": authorization(server)}
    assert refusal(server, f"{server.events_url}/events/v1/other?code=x", good) == 404
    assert refusal(server, f"{server.events_url}{PATH}", good) == 400
    assert server.events is not None and server.events.subscribers() == 0 and server.events.refused == 5


def test_garbage_oversized_and_binary_frames_can_be_pushed(server: EmulatorServer) -> None:
    """publish_raw sends exactly what it is given; publish_oversized a valid JSON frame of the size asked."""
    assert server.events is not None
    with subscribe(server, "authing.user.login") as socket:
        assert server.events.publish_raw("authing.user.login", "{not json") == 1
        assert server.events.publish_raw("authing.user.login", b"\x00\xff") == 1
        assert server.events.publish_oversized("authing.user.login", 200_000) == 1
        assert socket.recv(timeout=5) == "{not json"
        assert socket.recv(timeout=5) == b"\x00\xff"
        big = socket.recv(timeout=5)
    assert len(big) == 200_000 and json.loads(big)["padding"]


def test_dropping_connections_lets_a_client_reconnect_and_continue(server: EmulatorServer) -> None:
    """drop_connections cuts every subscriber (the client sees the close); a new connection gets later events."""
    assert server.events is not None
    with subscribe(server, "authing.user.created") as socket:
        assert server.events.drop_connections() == 1
        with pytest.raises(ConnectionClosed):
            socket.recv(timeout=5)
    assert server.events.subscribers() == 0
    with subscribe(server, "authing.user.created") as again:
        dropped = requests.post(f"{server.url}/_emulator/events/drop", json={"abrupt": False}, timeout=10).json()
        assert dropped == {"dropped": 1}
        with pytest.raises(ConnectionClosed):
            again.recv(timeout=5)
    with subscribe(server, "authing.user.created") as third:
        user = server.state.add_user(username="after.reconnect")
        assert json.loads(third.recv(timeout=5))["userId"] == user["userId"]


def test_the_socket_stops_and_comes_back_on_the_same_port_with_the_http_server(server: EmulatorServer) -> None:
    """stop() closes both listeners (connections refused); start() rebinds the same ports."""
    url = server.events_url
    server.stop()
    with pytest.raises(OSError):
        connect(f"{url}{PATH}?code=x", additional_headers={"authorization": authorization(server)}, open_timeout=2)
    server.start()
    assert server.events_url == url
    with subscribe(server, "authing.user.created"):
        pass


def test_the_control_api_describes_and_publishes(server: EmulatorServer, ids: dict[str, str]) -> None:
    """/_emulator/events lists subscribers per code; /publish sends a user, data, raw text or a sized frame."""
    base = f"{server.url}/_emulator/events"
    with subscribe(server, "app.custom") as socket:
        described = requests.get(base, timeout=5).json()
        assert described["subscribers"] == {"app.custom": 1} and described["url"] == server.events_url
        publish = f"{base}/publish"
        assert requests.post(publish, json={"code": "app.custom", "userId": ids["fin.alice"]}, timeout=5).json() == {
            "recipients": 1
        }
        assert json.loads(socket.recv(timeout=5))["userId"] == ids["fin.alice"]
        requests.post(publish, json={"code": "app.custom", "data": {"k": 1}, "shape": "string"}, timeout=5)
        assert json.loads(json.loads(socket.recv(timeout=5))) == {"k": 1}
        requests.post(publish, json={"code": "app.custom", "raw": "]["}, timeout=5)
        assert socket.recv(timeout=5) == "]["
    assert requests.post(publish, json={"code": "app.custom"}, timeout=5).status_code == 400


def test_without_the_websocket_the_control_api_says_so() -> None:
    """events_port=None: no event server, events_url explains, /_emulator/events is 404."""
    with EmulatorServer(events_port=None) as plain:
        with pytest.raises(RuntimeError, match="no event WebSocket"):
            _ = plain.events_url
        assert requests.get(f"{plain.url}/_emulator/events", timeout=5).status_code == 404
