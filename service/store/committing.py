"""Group commit: the writes of concurrent requests share one transaction, and so one fsync and one lock.

Why: a durable commit costs a disk flush (SQLite ``synchronous=FULL``) or a server round trip and WAL flush
(PostgreSQL), and SQLite lets one writer in at a time. One transaction per webhook made the request threads
queue behind each other's flush (docs/benchmarks.md). Here the threads of one process take turns as *leader*:
the thread that finds nobody writing opens a transaction and writes every item queued by then, while the
threads that arrive meanwhile queue up; when the leader is done it wakes them with their results and hands
the lead to the first of any that queued during its write. Nobody answers before its own item is
committed, so "durable before 2xx" (docs/architecture.md, principle 2) holds item by item. With no
concurrency the leader writes its own item at once: batching adds no wait.

If a batch fails with an error that may be one item's fault (a constraint, a value the database refuses),
each item is written again alone, so one bad item cannot fail its neighbours. Errors of the connection or the
lock fail the whole batch at once: writing each alone would only fail again, more slowly.
"""

from __future__ import annotations

import copy
import threading
from collections import deque
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import Generic, TypeVar

from service.store.errors import GroupCommitTimeoutError

Item = TypeVar("Item")
Result = TypeVar("Result")
Transaction = TypeVar("Transaction")


class _Ticket(Generic[Item, Result]):
    """One submitted item: its result or error, and a lock its owner sleeps on until either is set."""

    __slots__ = ("error", "item", "lead", "ready", "result", "taken")

    def __init__(self, item: Item) -> None:
        self.item = item
        self.result: Result | None = None
        self.error: BaseException | None = None
        self.lead = False
        """Set when the owner is woken to lead the next batch rather than to take a result."""
        self.taken = False
        """Set when a leader took the item into a batch: from then on its result will come."""
        self.ready = threading.Lock()
        self.ready.acquire()

    def outcome(self) -> Result:
        """The result, or the batch's error raised as this caller's own copy: one exception object raised in
        many threads would collect every thread's traceback (and keep their frames alive)."""
        if self.error is None:
            return self.result  # type: ignore[return-value]
        own = _copy_of(self.error)
        if own is self.error:
            raise self.error
        raise own from self.error


def _copy_of(error: BaseException) -> BaseException:
    try:
        own = copy.copy(error)
    except Exception:  # an exception class that cannot be copied: share the original
        return error
    return own if type(own) is type(error) else error


class GroupCommit(Generic[Item, Result, Transaction]):
    """Writes items submitted from many threads in batches.

    ``transaction()`` opens a transaction (a context manager that commits on a clean exit); the leader opens
    it *before* taking its batch, so whatever arrived while it waited for the database (another process's
    commit, SQLite's lock) joins the batch. ``write(transaction, items)`` writes every item in it and
    returns one result per item, in order, or raises (and nothing is committed). ``is_item_error(error)``
    says whether a failed batch is worth splitting.
    """

    def __init__(
        self,
        write: Callable[[Transaction, Sequence[Item]], Sequence[Result]],
        *,
        transaction: Callable[[], AbstractContextManager[Transaction]],
        is_item_error: Callable[[BaseException], bool] = lambda _error: True,
        max_batch: int = 64,
        wait_timeout: float = 30.0,
    ) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self._write = write
        self._transaction = transaction
        self._is_item_error = is_item_error
        self._max_batch = max_batch
        self._wait_timeout = wait_timeout
        self._lock = threading.Lock()
        self._queue: deque[_Ticket[Item, Result]] = deque()
        self._writing = False
        self.batches = 0
        """Batches written since start (for tests and benchmarks)."""
        self.items = 0
        """Items written since start."""

    @property
    def waiting(self) -> int:
        """Items queued behind the batch being written."""
        return len(self._queue)

    def submit(self, item: Item) -> Result:
        """Write ``item`` (with whatever else is waiting) and return its result once it is committed.

        Raises what writing it raised, or ``GroupCommitTimeoutError`` if no writer took it in time.
        """
        ticket: _Ticket[Item, Result] = _Ticket(item)
        with self._lock:
            self._queue.append(ticket)
            leads = not self._writing
            self._writing = True
        if not leads:
            self._wait(ticket)
            if not ticket.lead:
                return ticket.outcome()
        self._lead()
        return ticket.outcome()

    def _wait(self, ticket: _Ticket[Item, Result]) -> None:
        if ticket.ready.acquire(timeout=self._wait_timeout):
            return
        with self._lock:
            if not ticket.taken and not ticket.lead:
                self._queue.remove(ticket)
                raise GroupCommitTimeoutError(f"no writer took the item within {self._wait_timeout:g} s")
        # A leader has it (its result is coming), or it was just handed the lead: wait for that.
        ticket.ready.acquire()

    def _take(self, limit: int) -> list[_Ticket[Item, Result]]:
        """The next tickets in line; the leader's own is first (it was first in line when it got the lead)."""
        with self._lock:
            batch = [self._queue.popleft() for _ in range(min(len(self._queue), limit))]
            for ticket in batch:
                ticket.taken = True
        return batch

    def _lead(self) -> None:
        """Write one batch (whose first item is the leader's own), wake its owners, pass the lead on."""
        batch: list[_Ticket[Item, Result]] = []
        try:
            try:
                with self._transaction() as transaction:
                    batch = self._take(self._max_batch)
                    results = self._write(transaction, [ticket.item for ticket in batch])
                    if len(results) != len(batch):
                        raise RuntimeError(f"write returned {len(results)} results for {len(batch)} items")
            except BaseException as error:  # every owner must hear of it, whatever it is
                if not batch:
                    batch = self._take(1)  # the transaction did not even open: the leader's own item failed
                if len(batch) == 1 or not self._is_item_error(error):
                    for ticket in batch:
                        ticket.error = error
                else:
                    for ticket in batch:
                        self._write_alone(ticket)
            else:
                for ticket, result in zip(batch, results, strict=True):
                    ticket.result = result
        finally:
            with self._lock:
                self.batches += 1
                self.items += len(batch)
                successor = self._queue[0] if self._queue else None
                if successor is None:
                    self._writing = False
                else:
                    successor.lead = True
            for ticket in batch[1:]:
                ticket.ready.release()  # the leader's own ticket (batch[0]) is not waiting on its lock
            if successor is not None:
                successor.ready.release()

    def _write_alone(self, ticket: _Ticket[Item, Result]) -> None:
        try:
            with self._transaction() as transaction:
                ticket.result = self._write(transaction, [ticket.item])[0]
        except BaseException as error:
            ticket.error = error
