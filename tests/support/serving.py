"""A real HTTP server on 127.0.0.1 in a thread, for the service, receivers and fakes the tests talk to.

The serving loop checks for shutdown every ``POLL_INTERVAL`` seconds. The standard library's default (0.5 s)
made stopping each server cost half a second, which summed to a sixth of the suite.
"""

from __future__ import annotations

import socketserver
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

POLL_INTERVAL = 0.01
Server = TypeVar("Server", bound=socketserver.BaseServer)


class QuietHandler(WSGIRequestHandler):
    """A request handler that does not print an access line per request."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


@contextmanager
def serve_in_thread(server: Server) -> Iterator[Server]:
    """Serve ``server`` (any socketserver server, e.g. one of ``wsgi_server``) until the block ends, then stop
    it and close its socket."""
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": POLL_INTERVAL}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        thread.join()
        server.server_close()


def wsgi_server(app: Any, *, quiet: bool = True) -> BaseWSGIServer:
    """A threaded werkzeug server for the WSGI ``app`` on 127.0.0.1 and a free port (``server.port``)."""
    handler = QuietHandler if quiet else WSGIRequestHandler
    return make_server("127.0.0.1", 0, app, threaded=True, request_handler=handler)
