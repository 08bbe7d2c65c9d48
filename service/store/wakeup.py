"""Waking an idle worker when work is committed, so that a delivery does not wait for the next poll.

Why: a worker that found nothing to do sleeps ``ENFORCER_POLL_INTERVAL`` before it looks again, so a delivery
used to wait up to that long before anyone read it, on top of GenAuth's latency (the time to effect of
docs/benchmarks.md). Now committing work also wakes a worker, one per signal:

* in the process that committed it, for its own worker threads (the web process with ``ENFORCER_RUN_WORKER``
  on SQLite): ``service.store.inbox.Inbox`` calls ``Wakeup.committed`` once a delivery's commit is done;
* on PostgreSQL, in every process that runs workers: the transaction that upserts work rows also sends
  ``NOTIFY`` (``NOTIFY_SQL``, in ``service.store.queue.upsert_work``, so any process that enqueues wakes
  them, a ``replay`` too), which PostgreSQL delivers when it commits, and each such process has one
  ``Listener`` thread on a connection of its own that rings its ``Wakeup``. The intake never waits for a
  listener: a NOTIFY only queues a message in the server. A dropped listening connection is opened again
  with backoff; a signal can be lost meanwhile, so the listener rings once on every (re)connection.

Polling stays the fallback, with its interval unchanged: a lost or missing signal (a separate
``mfa-enforcer worker`` on SQLite has none) costs at most one poll interval, as before. The channel is named
after the connection's schema, so services that share a PostgreSQL database in different schemas do not
wake each other.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from typing import Any

import sqlalchemy as sa

from service.logs import log_event

logger = logging.getLogger(__name__)

CHANNEL_SQL = "left('mfa_enforcer:' || current_schema(), 63)"
"""The NOTIFY channel: one per schema (at most 63 bytes, PostgreSQL's limit on a name)."""
NOTIFY_SQL = f"SELECT pg_notify({CHANNEL_SQL}, '')"
LISTEN_CHECK = 0.25
"""Seconds the listener waits for a notification before it looks whether it should stop."""
RECONNECT_FIRST = 1.0
RECONNECT_MAX = 30.0
"""Seconds the listener waits before opening its connection again: doubled per failure up to this."""


class Wakeup:
    """One process's signal from committed work to its idle workers (``wait``), each ``ring`` waking one.

    On PostgreSQL (``engine`` given), while any worker is attached a ``Listener`` rings it on NOTIFY and
    ``committed`` does nothing (the notification comes back through the listener, to every process alike).
    """

    def __init__(
        self,
        engine: sa.Engine | None = None,
        *,
        reconnect_first: float = RECONNECT_FIRST,
        reconnect_max: float = RECONNECT_MAX,
    ) -> None:
        is_postgres = engine is not None and engine.dialect.name == "postgresql"
        self._engine = engine if is_postgres else None
        self._reconnect = (reconnect_first, reconnect_max)
        self._condition = threading.Condition()
        self._pending = 0
        self._waiting = 0
        self._polled = False
        """Whether a waiter holds the poll timeout (see ``wait``)."""
        self._attached = 0
        self.listener: Listener | None = None
        """The PostgreSQL listener while workers are attached (tests read its ``backend_pid``)."""
        self.rings = 0
        """Signals received since start (for tests)."""

    @property
    def waiting(self) -> int:
        """Workers waiting now (for tests)."""
        with self._condition:
            return self._waiting

    def committed(self) -> None:
        """Work was committed in this process: wake a worker (unless the database's NOTIFY will)."""
        if self._engine is None:
            self.ring()

    def ring(self) -> None:
        """Wake one waiting worker, or, if none waits, make the next ``wait`` return at once: a worker that has
        just found the queue empty and not started waiting yet must not miss work committed meanwhile."""
        with self._condition:
            self.rings += 1
            self._pending = min(self._pending + 1, max(1, self._waiting))
            self._condition.notify()

    def interrupt(self) -> None:
        """Wake every waiting worker without a signal (a worker is stopping and must see it)."""
        with self._condition:
            self._condition.notify_all()

    def wait(self, timeout: float, *, unless: threading.Event | None = None) -> bool:
        """Wait until rung (True), or until ``timeout`` seconds have passed for the one waiter that polls, or
        not at all once ``unless`` is set (checked under the lock ``interrupt`` takes, so a stop that comes just
        before the wait is not missed).

        Only one waiter at a time keeps the timeout, the *poller*: the others wait for a ring, so a process
        with many idle worker threads still looks at the queue once per poll interval, not once per thread.
        A poller that leaves hands the role to another waiter."""
        with self._condition:
            deadline: float | None = None
            try:
                while True:
                    if self._pending:
                        self._pending -= 1
                        return True
                    if unless is not None and unless.is_set():
                        return False
                    if deadline is None and not self._polled:
                        self._polled = True
                        deadline = time.monotonic() + timeout
                    left = None if deadline is None else deadline - time.monotonic()
                    if left is not None and left <= 0:
                        return False
                    self._waiting += 1
                    try:
                        self._condition.wait(left)
                    finally:
                        self._waiting -= 1
            finally:
                if deadline is not None:
                    self._polled = False
                    if self._waiting:
                        self._condition.notify()  # the next poller

    def attach(self) -> None:
        """A worker starts: the first one starts the listener (PostgreSQL)."""
        with self._condition:
            self._attached += 1
            if self._engine is None or self.listener is not None:
                return
            self.listener = Listener(self._engine, self, *self._reconnect)
        self.listener.start()

    def detach(self) -> None:
        """A worker stopped: the last one stops the listener."""
        with self._condition:
            self._attached = max(0, self._attached - 1)
            listener = self.listener if self._attached == 0 else None
            if listener is not None:
                self.listener = None
        if listener is not None:
            listener.stop()


class Listener:
    """LISTEN on a connection of its own in a daemon thread; every notification rings ``wakeup``."""

    def __init__(self, engine: sa.Engine, wakeup: Wakeup, reconnect_first: float, reconnect_max: float) -> None:
        self._engine = engine
        self._wakeup = wakeup
        self._reconnect_first = reconnect_first
        self._reconnect_max = reconnect_max
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="mfa-enforcer-listener", daemon=True)
        self.connected = threading.Event()
        """Set while the connection is listening."""
        self.backend_pid: int | None = None
        """The PostgreSQL backend of the listening connection, while there is one."""
        self.connections = 0
        """Connections opened since start (for tests)."""

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop listening and close the connection (within ``LISTEN_CHECK`` seconds)."""
        self._stopping.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(LISTEN_CHECK * 4)

    def _run(self) -> None:
        failures = 0
        while not self._stopping.is_set():
            try:
                with self._listening() as connection:
                    if failures:
                        log_event(logger, "work_listener_reconnected", failures=failures)
                    failures = 0
                    self._wakeup.ring()  # anything committed while nobody listened
                    while not self._stopping.is_set():
                        for _notification in connection.notifies(timeout=LISTEN_CHECK):
                            self._wakeup.ring()
            except Exception as error:  # the driver's or SQLAlchemy's: the connection is gone or refused
                failures += 1
                pause = min(self._reconnect_max, self._reconnect_first * 2.0 ** (failures - 1))
                log_event(
                    logger,
                    "work_listener_lost",
                    level=logging.WARNING,
                    error_type=type(error).__name__,
                    retry_in=round(pause, 1),
                )
                self._stopping.wait(pause)

    @contextlib.contextmanager
    def _listening(self) -> Any:
        """A connection made as the engine makes them (its URL, search_path and keepalives), out of its pool,
        in autocommit, listening on the channel."""
        pooled = self._engine.raw_connection()
        connection = pooled.driver_connection
        pooled.detach()
        assert connection is not None
        try:
            connection.rollback()  # the pool's pre-ping may have opened a transaction
            connection.autocommit = True
            channel = connection.execute(f"SELECT {CHANNEL_SQL}").fetchone()[0]
            connection.execute('LISTEN "{}"'.format(channel.replace('"', '""')))
            self.connections += 1
            self.backend_pid = connection.info.backend_pid
            self.connected.set()
            yield connection
        finally:
            self.connected.clear()
            self.backend_pid = None
            with contextlib.suppress(Exception):
                connection.close()
