"""`EmulatorServer`: serves the emulator app over real HTTP on loopback, in a daemon thread, and the event
WebSocket (`event_socket`) beside it on its own port.

Tests start one per test (port 0 picks a free port) and point real clients at `.url` (and `.events_url`).
`stop()` closes both listening sockets, so clients get "connection refused" as in an outage; `start()` again
rebinds the same ports, as a recovered GenAuth would come back at the same addresses. `events_port=None`
runs without the WebSocket; so does an install without the `websockets` library.
"""

from __future__ import annotations

import threading
from types import TracebackType

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from genauth_emulator.app import create_emulator_app
from genauth_emulator.event_socket import EventSocketServer
from genauth_emulator.faults import Faults
from genauth_emulator.journal import Journal
from genauth_emulator.state import EmulatorState

# How often the serving loop checks for shutdown: bounds how long stop() takes.
_POLL_INTERVAL = 0.02


class _QuietRequestHandler(WSGIRequestHandler):
    """Werkzeug's handler without the per-request access log line."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """Log nothing: the journal records requests."""


class EmulatorServer:
    """The GenAuth emulator on `http://host:port`; `.state`, `.journal`, `.faults` and `.events` (the event
    WebSocket, None without one) drive and inspect it."""

    def __init__(
        self,
        state: EmulatorState | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        log_requests: bool = False,
        events_port: int | None = 0,
    ) -> None:
        self.state = state if state is not None else EmulatorState()
        self.journal = Journal()
        self.faults = Faults()
        self.events = _event_server(self.state, host, events_port)
        self.app = create_emulator_app(self.state, self.journal, self.faults, self.events)
        self.host = host
        self.port = port
        self._handler = WSGIRequestHandler if log_requests else _QuietRequestHandler
        self._lock = threading.Lock()
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """Base URL to give clients, e.g. `http://127.0.0.1:54321` (known once started)."""
        if self.port == 0:
            raise RuntimeError("the server has no port yet: call start() first")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def events_url(self) -> str:
        """Base URL of the event WebSocket, e.g. `ws://127.0.0.1:54322` (clients add `/events/v1/...`)."""
        if self.events is None:
            raise RuntimeError("this emulator has no event WebSocket (events_port=None, or websockets is missing)")
        return self.events.url

    @property
    def is_running(self) -> bool:
        """True between start() and stop()."""
        return self._server is not None

    def start(self) -> EmulatorServer:
        """Bind (the same port as last time, if any) and serve in a daemon thread. Idempotent."""
        with self._lock:
            if self._server is not None:
                return self
            try:
                server = make_server(self.host, self.port, self.app, threaded=True, request_handler=self._handler)
            except SystemExit as exited:  # werkzeug prints and exits when it cannot bind
                raise OSError(f"cannot listen on {self.host}:{self.port}") from exited
            self.port = server.port
            thread = threading.Thread(
                target=server.serve_forever,
                kwargs={"poll_interval": _POLL_INTERVAL},
                name=f"genauth-emulator-{self.port}",
                daemon=True,
            )
            thread.start()
            self._server, self._thread = server, thread
        if self.events is not None:
            try:
                self.events.start()
            except OSError:
                self.stop()
                raise
        return self

    def stop(self) -> None:
        """Stop accepting connections and close the listening sockets. Idempotent."""
        if self.events is not None:
            self.events.stop()
        with self._lock:
            server, thread = self._server, self._thread
            self._server = self._thread = None
        if server is None or thread is None:
            return
        server.shutdown()
        thread.join()
        server.server_close()

    def __enter__(self) -> EmulatorServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def _event_server(state: EmulatorState, host: str, port: int | None) -> EventSocketServer | None:
    if port is None:
        return None
    try:
        import websockets.asyncio.server  # noqa: F401 - only to learn whether the library is there
    except ImportError:
        return None
    return EventSocketServer(state, host, port)
