"""The gunicorn worker class of the web service: a request costs a thread only once it has fully arrived.

``config/gunicorn.conf.py`` sets ``worker_class`` to ``BufferingThreadWorker``. It is gunicorn's ``gthread``
worker with two changes.

**Requests are read before a thread takes them.** Stock gthread hands a connection to a thread as soon as its
first bytes arrive, and the thread then reads the rest from a blocking socket with no deadline: a client that
sends half a request holds a thread for as long as it likes, and ``threads`` such clients stop the process
(16 connections per pod, by default, needing no secret). Here the worker's event loop reads each request
(request line, headers and a ``Content-Length`` or chunked body up to ENFORCER_MAX_BODY_BYTES) into memory
with non-blocking reads, and only a complete request goes to a thread, which then parses it from memory. A
slow client costs a socket and the bytes it sent (at most ``BUFFER_BUDGET`` for all of a process's clients).
Each request has ENFORCER_REQUEST_READ_TIMEOUT seconds (default 10) from its first awaited byte to arrive
whole; after that it is answered 408 and the connection is closed. What is not buffered (a body over the
limit, which the app refuses from its ``Content-Length``, more than 64 KiB of headers, a request pipelined
behind another) is read by the thread through ``DeadlineSocket``, which ends the read at the same deadline,
so even then a thread waits at most that long.

**gunicorn's own refusals are JSON.** A request gunicorn refuses before the app sees it (a bad request line
400, a request line over ``limit_request_line`` 414, too many or too large headers 431, an unsupported
transfer coding 501) is answered ``{code, status, message, errors}`` like every other error, instead of
gunicorn's HTML page (``service.intake.refusals``), and logged as ``http_request_refused``.

The class relies on the internals of gunicorn 27's ``gthread`` worker (``TConn``, ``accept``,
``on_client_socket_readable``, ``enqueue_req``, ``murder_pending``), so pyproject.toml pins gunicorn 27.x;
``tests/e2e/test_slow_clients.py`` drives it through real gunicorn processes.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import re
import selectors
import socket
import time
from collections import deque
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from gunicorn.util import write_nonblock  # type: ignore[import-untyped]
from gunicorn.workers.gthread import TConn, ThreadWorker  # type: ignore[import-untyped]

from service.errors import ConfigurationError
from service.intake.errors import RequestReadTimeoutError
from service.intake.refusals import describe_refusal, json_error_response
from service.logs import log_event
from service.settings import WebhookSettings, load_settings

logger = logging.getLogger(__name__)

MAX_HEADER_BYTES = 64 * 1024
"""Header bytes buffered before the request goes to a thread anyway (gunicorn then refuses it: 414 or 431)."""
READ_SIZE = 64 * 1024
CHUNKED_SLACK = 64 * 1024
"""Chunk framing allowed on top of the body limit before a chunked body goes to a thread unfinished."""
BUFFER_BUDGET = 32 * 1024 * 1024
"""Bytes one process holds for requests still arriving; past it, a request goes to a thread as it is (which
reads the rest within its deadline), so a flood of large slow bodies costs threads for a while, not memory."""


class DeadlineSocket:
    """A client socket whose reads end at the request's deadline: past it, a read returns end of stream.

    ``arm(deadline)`` starts a request. Once the answer is being sent, reads are the caller's own again (gunicorn
    bounds the drain of an unread body and the close itself). Everything else is the socket's.
    """

    def __init__(self, raw: socket.socket) -> None:
        self.raw = raw
        self.deadline: float | None = None
        self.responding = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self.raw, name)

    def arm(self, deadline: float) -> None:
        self.deadline = deadline
        self.responding = False

    def recv(self, size: int, flags: int = 0) -> bytes:
        if self.deadline is None or self.responding:
            return self.raw.recv(size, flags)
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            return b""
        previous = self.raw.gettimeout()
        self.raw.settimeout(remaining if previous is None else min(previous, remaining))
        try:
            return self.raw.recv(size, flags)
        except TimeoutError:
            if time.monotonic() >= self.deadline:
                return b""
            raise
        finally:
            self.raw.settimeout(previous)

    def send(self, data: Any, flags: int = 0) -> int:
        self.responding = True
        return self.raw.send(data, flags)

    def sendall(self, data: Any, flags: int = 0) -> None:
        self.responding = True
        self.raw.sendall(data, flags)

    def sendfile(self, file: Any, offset: int = 0, count: int | None = None) -> int:
        self.responding = True
        return self.raw.sendfile(file, offset, count)


class _Connection(TConn):  # type: ignore[misc]
    """gunicorn's connection, with the bytes the event loop read for the request it is handed over with."""

    def __init__(self, cfg: Any, sock: Any, client: Any, server: Any) -> None:
        super().__init__(cfg, sock, client, server)
        self.buffered = b""
        self.deadline: float | None = None
        """The request's deadline, when the event loop read it (else the thread's read starts one)."""

    def init(self) -> None:
        was_initialised = self.initialized
        super().init()
        if not was_initialised:
            self.hand_over()

    def hand_over(self) -> None:
        """Give the parser what the event loop read, ahead of anything still on the socket."""
        if self.buffered and self.parser is not None and hasattr(self.parser, "unreader"):
            self.parser.unreader.unread(self.buffered)
            self.buffered = b""


@dataclass(slots=True)
class _Arrival:
    """A request being read by the event loop."""

    conn: _Connection
    deadline: float
    data: bytearray = field(default_factory=bytearray)
    header_end: int | None = None
    framing: tuple[int | None, bool, bool] = (None, False, False)
    """(Content-Length, chunked, expects 100-continue), once the headers are in."""
    continued: bool = False
    """Whether "100 Continue" was sent."""
    registered: bool = False
    done: bool = False


class BufferingThreadWorker(ThreadWorker):  # type: ignore[misc]
    """gunicorn's gthread worker that reads whole requests in its event loop (see the module docstring)."""

    def init_process(self) -> None:
        try:
            webhook = load_settings(role="web").webhook
        except ConfigurationError:  # create_app reports it; the limits fall back to their defaults
            webhook = WebhookSettings()
        self.read_timeout = webhook.request_read_timeout
        self.max_body_bytes = webhook.max_body_bytes
        self._arrivals: deque[_Arrival] = deque()
        self._buffered = 0
        """Bytes held by arrivals still being read."""
        super().init_process()

    # -- connections into the event loop -------------------------------------------------------------------

    def accept(self, listener: Any) -> None:
        try:
            client, address = listener.accept()
        except OSError as error:
            if error.errno not in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                raise
            return
        self.nr_conns += 1
        self._await_request(_Connection(self.cfg, DeadlineSocket(client), address, listener.getsockname()))

    def on_client_socket_readable(self, conn: _Connection, client: Any) -> None:
        """A kept-alive connection has its next request: read it in the loop too."""
        self.poller.unregister(client)
        self.keepalived_conns.remove(conn)
        self._await_request(conn)

    def _await_request(self, conn: _Connection) -> None:
        arrival = _Arrival(conn, time.monotonic() + self.read_timeout)
        self._read_some(arrival)  # a kept-alive connection is readable already: most requests end here
        if not arrival.done:
            self._arrivals.append(arrival)
            arrival.registered = True
            self.poller.register(conn.sock, selectors.EVENT_READ, partial(self._on_readable, arrival))

    def _on_readable(self, arrival: _Arrival, _client: Any) -> None:
        self._read_some(arrival)

    def _read_some(self, arrival: _Arrival) -> None:
        """Read what the socket has; hand the request to a thread once complete, or close on end of stream."""
        raw = arrival.conn.sock.raw
        while not arrival.done:
            try:
                chunk = raw.recv(READ_SIZE)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                chunk = b""
            if not chunk:  # the client closed, or the connection broke: nothing to answer
                self._finish(arrival)
                self._close(arrival.conn)
                return
            arrival.data += chunk
            self._buffered += len(chunk)
            state = self._assess(arrival)
            if state == "complete":
                self._finish(arrival)
                conn = arrival.conn
                conn.buffered = bytes(arrival.data)
                conn.deadline = arrival.deadline
                conn.data_ready = True  # gunicorn's own wait for a first byte is over
                self.enqueue_req(conn)
            elif state == "continue":
                arrival.continued = True
                with contextlib.suppress(OSError):
                    raw.send(b"HTTP/1.1 100 Continue\r\n\r\n")

    def _finish(self, arrival: _Arrival) -> None:
        """The loop is done with this arrival (it stays in the deadline queue until it comes to the front)."""
        arrival.done = True
        self._buffered -= len(arrival.data)
        if arrival.registered:
            arrival.registered = False
            self.poller.unregister(arrival.conn.sock)

    def _assess(self, arrival: _Arrival) -> str:
        """``complete`` (to a thread), ``continue`` (send "100 Continue", then wait) or ``wait``."""
        data = arrival.data
        if self._buffered > BUFFER_BUDGET:
            return "complete"
        if arrival.header_end is None:
            end = data.find(b"\r\n\r\n")
            if end < 0:
                return "complete" if len(data) > MAX_HEADER_BYTES else "wait"
            arrival.header_end = end + 4
            arrival.framing = _framing(bytes(data[:end]))
        length, is_chunked, expects_continue = arrival.framing
        body = len(data) - arrival.header_end
        if is_chunked:
            if body > self.max_body_bytes + CHUNKED_SLACK or _chunked_body_complete(data, arrival.header_end):
                return "complete"
        elif length is None or length > self.max_body_bytes or body >= length:
            return "complete"  # no body, or one the app refuses from its length alone, or all of it
        if expects_continue and not arrival.continued and body == 0:
            return "continue"
        return "wait"

    def enqueue_req(self, conn: _Connection) -> None:
        """Every request a thread reads has a deadline: the loop's, or (read-ahead of a pipelined request) now."""
        deadline = conn.deadline if conn.deadline is not None else time.monotonic() + self.read_timeout
        conn.deadline = None
        conn.sock.arm(deadline)
        super().enqueue_req(conn)

    def handle(self, conn: _Connection) -> Any:
        if conn.initialized:
            conn.hand_over()
        return super().handle(conn)

    # -- deadlines -------------------------------------------------------------------------------------------

    def murder_pending(self) -> None:
        """Also end the requests whose deadline passed (408), and on shutdown the connections that sent nothing."""
        super().murder_pending()
        now = time.monotonic()
        while self._arrivals:
            arrival = self._arrivals[0]
            if not arrival.done and arrival.deadline > now and (self.alive or arrival.data):
                break
            self._arrivals.popleft()
            if arrival.done:
                continue
            self._finish(arrival)
            if arrival.data:  # a request had begun: say why it ends
                log_event(logger, "http_request_timeout", level=logging.WARNING, received=len(arrival.data))
                error = RequestReadTimeoutError(
                    f"the request did not arrive within {self.read_timeout:g} s (ENFORCER_REQUEST_READ_TIMEOUT)"
                )
                with contextlib.suppress(OSError):
                    write_nonblock(arrival.conn.sock.raw, json_error_response(408, error.reason, error.message))
            self._close(arrival.conn)

    def _close(self, conn: _Connection) -> None:
        self.nr_conns -= 1
        conn.close()

    # -- gunicorn's refusals, as JSON -----------------------------------------------------------------------

    def handle_error(self, req: Any, client: Any, addr: Any, exc: BaseException) -> None:
        status, code, message = describe_refusal(exc)
        remote = (addr or ("", -1))[0]
        if status == 500:  # not a refusal but a failure (a bug, or a header the app produced)
            logger.exception("request_crashed", extra={"fields": {"remote": remote}})
        else:
            log_event(logger, "http_request_refused", level=logging.WARNING, status=status, code=code, remote=remote)
        try:
            write_nonblock(client, json_error_response(status, code, message))
        except Exception:  # the client is gone; nothing more to say to it
            logger.debug("http_error_not_sent")


_FRAMING_HEADER = re.compile(rb"\r\n[ \t]*(content-length|transfer-encoding|expect)[ \t]*:([^\r\n]*)", re.IGNORECASE)


def _framing(head: bytes) -> tuple[int | None, bool, bool]:
    """(Content-Length, chunked, expects 100-continue) from a header block; odd values are gunicorn's to refuse,
    so they count as "no body to wait for"."""
    length: int | None = None
    is_chunked = False
    expects_continue = False
    for name, raw_value in _FRAMING_HEADER.findall(head):
        value = raw_value.strip().lower()
        kind = name.lower()
        if kind == b"content-length":
            if not value.isdigit() or length is not None:
                return None, False, False
            length = int(value)
        elif kind == b"transfer-encoding":
            if value.rsplit(b",", 1)[-1].strip() != b"chunked" or is_chunked:
                return None, False, False  # a framing gunicorn refuses (501): nothing to wait for
            is_chunked = True
        elif value == b"100-continue":
            expects_continue = True
    return (None if is_chunked else length), is_chunked, expects_continue


def _chunked_body_complete(data: bytearray, start: int) -> bool:
    """Whether ``data[start:]`` holds a whole chunked body, last chunk and trailers included. Malformed framing
    counts as complete: gunicorn's parser refuses it."""
    position = start
    while True:
        line_end = data.find(b"\r\n", position)
        if line_end < 0:
            return False
        size_text = bytes(data[position:line_end]).split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            return True
        if size == 0:  # the last chunk; the body ends at the empty line after any trailers
            return data.find(b"\r\n\r\n", line_end) >= 0
        position = line_end + 2 + size + 2
        if position > len(data):
            return False
