"""Group commit: many threads, shared batches, every caller gets its own result only after its batch is written."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest

from service.store.committing import GroupCommit
from service.store.errors import GroupCommitTimeoutError
from tests.support.waiting import wait_until


class Recorder:
    """A write function that records its batches; it can be held (to let a queue build up) or made to fail."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.written: set[int] = set()
        self.release = threading.Event()
        self.release.set()
        self.entered = threading.Event()
        self.bad: set[int] = set()
        self.broken: BaseException | None = None

    def __call__(self, items: Sequence[int]) -> list[str]:
        self.entered.set()
        assert self.release.wait(10)
        if self.broken is not None:
            raise self.broken
        if self.bad & set(items):
            raise ValueError(f"item {sorted(self.bad & set(items))[0]} refused")
        self.batches.append(list(items))
        self.written.update(items)
        return [f"id-{item}" for item in items]


def make(write: Callable[[Sequence[int]], list[str]], **options: Any) -> GroupCommit[int, str, None]:
    """A group commit over ``write``, with no real transaction."""
    return GroupCommit(lambda _transaction, items: write(items), transaction=contextlib.nullcontext, **options)


def submit_all(commits: GroupCommit[int, str, None], items: Sequence[int]) -> dict[int, object]:
    outcomes: dict[int, object] = {}

    def one(item: int) -> None:
        try:
            outcomes[item] = commits.submit(item)
        except BaseException as error:  # the test inspects what each caller saw
            outcomes[item] = error

    threads = [threading.Thread(target=one, args=(item,)) for item in items]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    return outcomes


def wait_for_queue(commits: GroupCommit[int, str, None], length: int) -> None:
    """Poll until ``length`` items wait behind the batch being written (nothing else says they are queued)."""
    wait_until(lambda: commits.waiting == length, timeout=5, what=f"{length} items queued", interval=0.005)


def test_a_lone_item_is_written_at_once_in_a_batch_of_its_own() -> None:
    recorder = Recorder()
    commits: GroupCommit[int, str, None] = make(recorder)
    assert commits.submit(7) == "id-7"
    assert recorder.batches == [[7]]


def test_items_that_arrive_while_a_batch_is_written_share_the_next_batch() -> None:
    recorder = Recorder()
    commits: GroupCommit[int, str, None] = make(recorder)
    recorder.release.clear()
    first = threading.Thread(target=commits.submit, args=(0,))
    first.start()
    assert recorder.entered.wait(5)  # item 0 is being written and held there
    waiting = threading.Thread(target=lambda: outcomes.update(submit_all(commits, range(1, 21))))
    outcomes: dict[int, object] = {}
    waiting.start()
    wait_for_queue(commits, 20)  # all 20 queued behind the held batch; now let it go
    recorder.release.set()
    first.join(5)
    waiting.join(10)
    assert outcomes == {item: f"id-{item}" for item in range(1, 21)}
    assert len(recorder.batches) == 2
    assert recorder.batches[0] == [0]
    assert sorted(recorder.batches[1]) == list(range(1, 21))
    assert commits.batches == 2 and commits.items == 21


def test_every_caller_gets_its_own_result_under_contention() -> None:
    recorder = Recorder()
    commits: GroupCommit[int, str, None] = make(recorder, max_batch=8)
    outcomes = submit_all(commits, range(200))
    assert outcomes == {item: f"id-{item}" for item in range(200)}
    assert recorder.written == set(range(200))
    assert all(len(batch) <= 8 for batch in recorder.batches)
    assert sum(len(batch) for batch in recorder.batches) == 200  # nothing written twice


def test_a_bad_item_fails_alone_and_its_batch_neighbours_are_written() -> None:
    recorder = Recorder()
    recorder.bad = {5}
    commits: GroupCommit[int, str, None] = make(recorder)
    recorder.release.clear()
    first = threading.Thread(target=commits.submit, args=(0,))
    first.start()
    assert recorder.entered.wait(5)
    outcomes: dict[int, object] = {}
    waiting = threading.Thread(target=lambda: outcomes.update(submit_all(commits, range(1, 10))))
    waiting.start()
    wait_for_queue(commits, 9)
    recorder.release.set()
    first.join(5)
    waiting.join(10)
    assert isinstance(outcomes.pop(5), ValueError)
    assert outcomes == {item: f"id-{item}" for item in range(1, 10) if item != 5}
    assert 5 not in recorder.written


def test_an_error_of_the_whole_batch_reaches_every_caller_without_retrying_each() -> None:
    recorder = Recorder()
    recorder.broken = ConnectionError("database gone")
    calls = []

    def write(items: Sequence[int]) -> list[str]:
        calls.append(list(items))
        return recorder(items)

    commits: GroupCommit[int, str, None] = make(write, is_item_error=lambda error: False)
    outcomes = submit_all(commits, range(30))
    assert all(isinstance(outcome, ConnectionError) for outcome in outcomes.values())
    assert sum(len(call) for call in calls) == 30  # each item tried once, in whatever batches formed


def test_the_lead_passes_on_after_a_failed_batch() -> None:
    recorder = Recorder()
    recorder.broken = ConnectionError("database gone")
    commits: GroupCommit[int, str, None] = make(recorder, is_item_error=lambda error: False)
    with pytest.raises(ConnectionError):
        commits.submit(1)
    recorder.broken = None
    assert commits.submit(2) == "id-2"


def test_an_item_no_writer_takes_in_time_is_withdrawn_unwritten() -> None:
    recorder = Recorder()
    commits: GroupCommit[int, str, None] = make(recorder, wait_timeout=0.2)
    recorder.release.clear()
    first = threading.Thread(target=commits.submit, args=(0,))
    first.start()
    assert recorder.entered.wait(5)
    with pytest.raises(GroupCommitTimeoutError):
        commits.submit(1)
    recorder.release.set()
    first.join(5)
    assert recorder.written == {0}
    assert commits.submit(2) == "id-2"  # the queue is healthy afterwards
    assert recorder.written == {0, 2}


def test_max_batch_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_batch"):
        make(Recorder(), max_batch=0)


def test_items_that_arrive_while_the_leader_waits_for_the_database_join_its_batch() -> None:
    """The batch is taken once the transaction is open, so a wait for the database lock gathers the queue."""
    recorder = Recorder()
    opened = threading.Event()
    go = threading.Event()

    @contextlib.contextmanager
    def slow_transaction() -> Iterator[None]:
        opened.set()
        assert go.wait(5)  # another process holds the database
        yield

    commits: GroupCommit[int, str, None] = GroupCommit(
        lambda _transaction, items: recorder(items), transaction=slow_transaction
    )
    first = threading.Thread(target=commits.submit, args=(0,))
    first.start()
    assert opened.wait(5)
    outcomes: dict[int, object] = {}
    others = threading.Thread(target=lambda: outcomes.update(submit_all(commits, range(1, 6))))
    others.start()
    wait_for_queue(commits, 6)  # the leader's own item is still in line too: it takes the batch after opening
    go.set()
    first.join(5)
    others.join(5)
    assert len(recorder.batches) == 1  # one transaction for all six
    assert recorder.batches[0][0] == 0 and sorted(recorder.batches[0]) == list(range(6))
    assert outcomes == {item: f"id-{item}" for item in range(1, 6)}


def test_a_transaction_that_cannot_open_fails_the_leader_and_the_next_in_line_tries_again() -> None:
    """With the database unreachable every caller gets the error, and none waits forever."""
    recorder = Recorder()

    @contextlib.contextmanager
    def unreachable() -> Iterator[None]:
        raise ConnectionError("no database")
        yield

    commits: GroupCommit[int, str, None] = GroupCommit(
        lambda _transaction, items: recorder(items), transaction=unreachable
    )
    outcomes = submit_all(commits, range(10))
    assert len(outcomes) == 10
    assert all(isinstance(outcome, ConnectionError) for outcome in outcomes.values())
    assert commits.waiting == 0


def test_each_caller_of_a_failed_batch_gets_its_own_exception_object() -> None:
    """One exception raised in many threads would collect all their tracebacks; each caller gets a copy."""
    recorder = Recorder()
    recorder.broken = ConnectionError("database gone")
    commits = make(recorder, is_item_error=lambda error: False)
    recorder.release.clear()
    first = threading.Thread(target=lambda: outcomes.update({0: _outcome(commits, 0)}))
    outcomes: dict[int, object] = {}
    first.start()
    assert recorder.entered.wait(5)
    others = threading.Thread(target=lambda: outcomes.update(submit_all(commits, range(1, 6))))
    others.start()
    wait_for_queue(commits, 5)
    recorder.release.set()
    first.join(5)
    others.join(5)
    errors = [outcomes[item] for item in range(1, 6)]
    assert all(isinstance(error, ConnectionError) and str(error) == "database gone" for error in errors)
    assert len({id(error) for error in errors}) == 5
    assert all(error.__cause__ is recorder.broken for error in errors)  # type: ignore[union-attr]


def _outcome(commits: GroupCommit[int, str, None], item: int) -> object:
    try:
        return commits.submit(item)
    except ConnectionError as error:
        return error
