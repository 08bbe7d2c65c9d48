"""`EventSocketServer`: GenAuth's event subscription over WebSocket, for clients that take events without a
public webhook URL (the SDKs' `sub` / `sub_event`).

What the sources show (authing-node-sdk 4.0.1 `src/ManagementClient.ts` `initWebSocket`; genauth-py 5.1.0
`ManagementClient.sub_event`, `utils/wss.py`, `utils/signatureComposer.py`; genauth-docs `management/events.md`
and `管理事件/list-events.md`): the client opens `<socket host>/events/v1/management/sub?code=<event code>`
with the header `authorization: <brand> <AK>:<base64 HMAC-SHA1(SK, "websocket\\n")>` (`authing` from the Node
SDK, `genauth` from the Python SDK); event codes are dotted (`authing.user.created`, `authing.user.updated`,
`authing.user.login`, ...); every message is a text frame the SDKs hand over as it is. No source defines the
message body, so the emulator sends any of the plausible shapes (`shape`):

* `object` (default): the user as a JSON object (the v3 `UserDto`);
* `string`: that object JSON-encoded again, i.e. a JSON string;
* `envelope`: `{"eventType": <code>, "eventData": "<the object as a JSON string>"}`, what `pub-event` takes;
* `envelope-object`: the same envelope with `eventData` as an object.

A bad or missing signature is refused at the handshake (HTTP 401 with a GenAuth-style JSON body, apiCode 1300),
as is a wrong path (404) or a missing `code` (400). Tests can also push raw, garbage or oversized frames
(`publish_raw`, `publish_oversized`) and cut every connection (`drop_connections`) to exercise reconnects.

The server runs its own event loop in a daemon thread, on its own port, observing the state's change feed;
`server.EmulatorServer` starts and stops it with the HTTP server and shows it as `.events_url`. It needs the
`websockets` library (14+, `websockets.asyncio.server`), imported only when the server starts.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import threading
import time
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from genauth_emulator.changes import Change

if TYPE_CHECKING:
    from websockets.asyncio.server import Server, ServerConnection
    from websockets.http11 import Request, Response

    from genauth_emulator.state import EmulatorState

PATH = "/events/v1/management/sub"
SHAPES = ("object", "string", "envelope", "envelope-object")
#: Webhook event -> the event code the same change is published under.
EVENT_CODES = {
    "user:created": "authing.user.created",
    "user:updated": "authing.user.updated",
    "login": "authing.user.login",
}
_NAMES = {
    "authing.user.created": "User created event",
    "authing.user.updated": "User updated event",
    "authing.user.login": "User login event",
}
_MAX_INCOMING = 64 * 1024  # clients have nothing to say; refuse floods


def event_catalogue() -> list[dict[str, str]]:
    """`list-events`' items (`OpenEventDto`): the codes this emulator publishes."""
    return [
        {
            "id": str(int(hashlib.sha256(code.encode()).hexdigest()[:13], 16)),
            "code": code,
            "topic": code,
            "name": name,
            "desc": name,
        }
        for code, name in _NAMES.items()
    ]


def encode_message(code: str, data: Any, shape: str) -> str:
    """The text frame for `data` (a JSON value) under `code`, in one of `SHAPES`."""
    text = json.dumps(data, ensure_ascii=False)
    if shape == "object":
        return text
    if shape == "string":
        return json.dumps(text, ensure_ascii=False)
    if shape == "envelope":
        return json.dumps({"eventType": code, "eventData": text}, ensure_ascii=False)
    if shape == "envelope-object":
        return json.dumps({"eventType": code, "eventData": data}, ensure_ascii=False)
    raise ValueError(f"unknown message shape {shape!r}; expected one of {SHAPES}")


@dataclass
class Published:
    """One message handed to the subscribers of a code (how many there were when it was published)."""

    code: str
    message: str | bytes
    recipients: int


@dataclass(eq=False)
class _Subscriber:
    code: str
    connection: ServerConnection
    queue: asyncio.Queue[str | bytes] = field(default_factory=asyncio.Queue)


class EventSocketServer:
    """The event WebSocket on `ws://host:port`, fed by the state's changes and by test calls."""

    def __init__(self, state: EmulatorState, host: str = "127.0.0.1", port: int = 0, *, shape: str = "object"):
        if shape not in SHAPES:
            raise ValueError(f"unknown message shape {shape!r}; expected one of {SHAPES}")
        self.state = state
        self.host = host
        self.port = port
        self.shape = shape
        """How state changes are encoded (one of `SHAPES`); may be changed while running."""
        self.published: list[Published] = []
        self.refused = 0
        """Handshakes refused so far (bad signature, path or code)."""
        self._cond = threading.Condition()
        self._subscribers: set[_Subscriber] = set()  # touched under _cond, from the loop and test threads
        self._lifecycle = threading.Lock()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._startup_error: BaseException | None = None
        self._unsubscribe: Any = None

    # -- lifecycle

    @property
    def url(self) -> str:
        """The base URL to give clients, e.g. `ws://127.0.0.1:54322` (known once started)."""
        if self.port == 0:
            raise RuntimeError("the event socket has no port yet: call start() first")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"ws://{host}:{self.port}"

    @property
    def is_running(self) -> bool:
        """True between start() and stop()."""
        return self._thread is not None

    def start(self) -> EventSocketServer:
        """Listen (on the same port as last time, if any) in a daemon thread. Idempotent."""
        with self._lifecycle:
            if self._thread is not None:
                return self
            ready = threading.Event()
            self._startup_error = None
            thread = threading.Thread(target=self._run, args=(ready,), name="genauth-emulator-events", daemon=True)
            thread.start()
            ready.wait(10)
            if self._startup_error is not None or not ready.is_set():
                thread.join(5)
                raise OSError(f"cannot listen on {self.host}:{self.port}: {self._startup_error}")
            self._thread = thread
            self._unsubscribe = self.state.changes.subscribe(self._observe)
            return self

    def stop(self) -> None:
        """Close every connection and the listening socket. Idempotent."""
        with self._lifecycle:
            thread, loop, stopping = self._thread, self._loop, self._stopping
            if thread is None or loop is None or stopping is None:
                return
            if self._unsubscribe is not None:
                self._unsubscribe()
                self._unsubscribe = None
            loop.call_soon_threadsafe(stopping.set)
            thread.join(15)
            self._thread = None
            with self._cond:
                self._subscribers.clear()
                self._cond.notify_all()

    # -- what tests and the control API use

    def subscribers(self, code: str | None = None) -> int:
        """How many connections are open (for `code`, or in all)."""
        with self._cond:
            return sum(1 for item in self._subscribers if code is None or item.code == code)

    def subscribed_codes(self) -> dict[str, int]:
        """Open connections per event code."""
        counts: dict[str, int] = {}
        with self._cond:
            for item in self._subscribers:
                counts[item.code] = counts.get(item.code, 0) + 1
        return counts

    def wait_for_subscribers(self, code: str, count: int = 1, timeout: float = 10.0) -> None:
        """Block until at least `count` connections subscribe to `code`; `AssertionError` after `timeout`."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while sum(1 for item in self._subscribers if item.code == code) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"waited {timeout}s for {count} subscribers to {code}")
                self._cond.wait(remaining)

    def publish(self, code: str, data: Any, *, shape: str | None = None) -> int:
        """Send `data` (a JSON value) to every subscriber of `code` in `shape`; return how many there were."""
        return self.publish_raw(code, encode_message(code, data, shape or self.shape))

    def publish_raw(self, code: str, message: str | bytes) -> int:
        """Send a frame exactly as given (text for `str`, binary for `bytes`), garbage included."""
        loop = self._loop
        with self._cond:
            targets = [item for item in self._subscribers if item.code == code]
            self.published.append(Published(code=code, message=message, recipients=len(targets)))
        if targets and loop is not None:
            loop.call_soon_threadsafe(self._fan_out, targets, message)
        return len(targets)

    def publish_oversized(self, code: str, size: int) -> int:
        """Send one valid JSON text frame of `size` bytes (for clients that must bound what they read)."""
        padding = max(0, size - len('{"padding":""}'))
        return self.publish_raw(code, '{"padding":"' + "x" * padding + '"}')

    def drop_connections(self, *, abrupt: bool = True, timeout: float = 10.0) -> int:
        """Cut every open connection (a TCP reset, or a close frame 1001 when not `abrupt`); return how many.

        Returns once the dropped connections are gone, so a test can then wait for the client to come back.
        """
        loop = self._loop
        with self._cond:
            dropped = set(self._subscribers)
        if not dropped or loop is None:
            return 0
        asyncio.run_coroutine_threadsafe(self._drop(dropped, abrupt), loop).result(timeout)
        deadline = time.monotonic() + timeout
        with self._cond:
            while dropped & self._subscribers:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"{len(dropped & self._subscribers)} connections did not close in {timeout}s")
                self._cond.wait(remaining)
        return len(dropped)

    def messages(self, code: str | None = None) -> list[str | bytes]:
        """Every message published so far (for `code`, or all), oldest first."""
        with self._cond:
            return [item.message for item in self.published if code is None or item.code == code]

    # -- the change feed

    def _observe(self, change: Change) -> None:
        code = EVENT_CODES.get(change.event)
        if code is None or change.user_id is None or not self.subscribers(code):
            return
        self.publish(code, self.state.user_view(change.user_id))

    # -- the event loop thread

    def _run(self, ready: threading.Event) -> None:
        try:
            asyncio.run(self._main(ready))
        except BaseException as error:  # reported by start(); a thread has nowhere else to put it
            self._startup_error = error
            ready.set()

    async def _main(self, ready: threading.Event) -> None:
        from websockets.asyncio.server import serve

        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        try:
            server: Server = await serve(
                self._handle,
                self.host,
                self.port,
                process_request=self._check,
                compression=None,
                max_size=_MAX_INCOMING,
                ping_interval=None,
                close_timeout=1,
            )
        except OSError as error:
            self._startup_error = error
            ready.set()
            return
        self.port = server.sockets[0].getsockname()[1]
        ready.set()
        await self._stopping.wait()
        server.close()
        await server.wait_closed()

    def _check(self, connection: ServerConnection, request: Request) -> Response | None:
        target = urlsplit(request.path)
        if target.path != PATH:
            return self._refuse(connection, HTTPStatus.NOT_FOUND, 404, f"no event stream at {target.path}")
        code = parse_qs(target.query).get("code", [""])[0].strip()
        if not code:
            return self._refuse(connection, HTTPStatus.BAD_REQUEST, 400, "code (the event code) is required")
        if not self.state.socket_authorization_matches(request.headers.get("authorization", "")):
            return self._refuse(connection, HTTPStatus.UNAUTHORIZED, 401, "AK/SK signature is invalid", 1300)
        return None

    def _refuse(
        self, connection: ServerConnection, status: HTTPStatus, status_code: int, message: str, api_code: int = 0
    ) -> Response:
        self.refused += 1
        body: dict[str, Any] = {"statusCode": status_code, "message": message}
        if api_code:
            body["apiCode"] = api_code
        response = connection.respond(status, json.dumps(body) + "\n")
        response.headers["Content-Type"] = "application/json"
        return response

    async def _handle(self, connection: ServerConnection) -> None:
        from websockets.exceptions import ConnectionClosed

        code = parse_qs(urlsplit(connection.request.path if connection.request else "").query)["code"][0].strip()
        subscriber = _Subscriber(code=code, connection=connection)
        with self._cond:
            self._subscribers.add(subscriber)
            self._cond.notify_all()
        writer = asyncio.create_task(self._write(subscriber))
        try:
            async for _ in connection:
                pass  # subscribers send nothing GenAuth reads
        except ConnectionClosed:
            pass
        finally:
            writer.cancel()
            with self._cond:
                self._subscribers.discard(subscriber)
                self._cond.notify_all()

    async def _write(self, subscriber: _Subscriber) -> None:
        from websockets.exceptions import ConnectionClosed

        try:
            while True:
                await subscriber.connection.send(await subscriber.queue.get())
        except ConnectionClosed:
            return

    def _fan_out(self, targets: list[_Subscriber], message: str | bytes) -> None:
        for subscriber in targets:
            subscriber.queue.put_nowait(message)

    async def _drop(self, dropped: set[_Subscriber], abrupt: bool) -> None:
        for subscriber in dropped:
            if abrupt:
                subscriber.connection.transport.abort()
            else:
                await subscriber.connection.close(1001, "going away")
