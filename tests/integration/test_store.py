"""The inbox, the work queue and decisions on a real SQLite file and on PostgreSQL."""

from __future__ import annotations

import contextlib
import threading

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from service.enforcement.decisions import Decision
from service.store import queue
from service.store.decisions import decisions_for_user, record_decision
from service.store.engine import create_engine, prepare_database
from service.store.inbox import Delivery, Inbox, record_deliveries, record_delivery, write_deliveries
from service.store.subjects import DEPARTMENT, GROUP, Subject
from service.store.tables import events, work
from tests.support.waiting import wait_until


@pytest.fixture
def store(database_url, schema_template):
    schema_template.apply(database_url)
    engine = create_engine(database_url)
    prepare_database(engine)
    yield engine
    engine.dispose()


def delivery(*user_ids, event="login"):
    return Delivery(
        event_name=event,
        userpool_id="pool",
        subjects=tuple(map(Subject.user, user_ids)),
        digest="d" * 64,
        content_type="application/json",
        outcome="queued" if user_ids else "ignored",
    )


def rows(engine, table):
    with engine.connect() as connection:
        return [dict(row._mapping) for row in connection.execute(sa.select(table).order_by(table.c.id))]


def test_delivery_records_the_event_and_one_work_row_per_user(store):
    """A delivery writes an event with ids only, and a work row per distinct user."""
    event_id = record_delivery(store, delivery("u1", "u2", "u1"), now=100.0)
    [event] = rows(store, events)
    assert event["id"] == event_id and event["subject_ids"] == ["u1", "u2", "u1"]
    assert sorted(row["user_id"] for row in rows(store, work)) == ["u1", "u2"]


def test_repeated_deliveries_coalesce_into_one_row(store):
    """Ten deliveries for one pending user leave one row whose version counts them."""
    for second in range(10):
        record_delivery(store, delivery("u1"), now=100.0 + second)
    [row] = rows(store, work)
    assert row["version"] == 10 and row["first_enqueued_at"] == 100.0 and row["enqueued_at"] == 109.0
    assert len(rows(store, events)) == 10


def test_claim_leases_due_rows_once(store):
    """A claimed row is invisible to a second claim until its lease ends, then comes back."""
    record_delivery(store, delivery("u1", "u2"), now=100.0)
    first = queue.claim(store, owner="a", limit=10, lease_seconds=30, now=100.0)
    assert {job.subject.id for job in first} == {"u1", "u2"} and all(job.attempts == 1 for job in first)
    assert queue.claim(store, owner="b", limit=10, lease_seconds=30, now=110.0) == []
    again = queue.claim(store, owner="b", limit=10, lease_seconds=30, now=131.0)
    assert {job.subject.id for job in again} == {"u1", "u2"} and all(job.attempts == 2 for job in again)


def test_rows_are_not_claimed_before_they_are_due(store):
    """A row in retry backoff waits for its due time."""
    record_delivery(store, delivery("u1"), now=100.0)
    [job] = queue.claim(store, owner="a", limit=1, lease_seconds=30, now=100.0)
    with store.begin() as connection:
        queue.retry_later(connection, job, owner="a", due_at=150.0, error="GenAuthUnavailableError: down")
    assert queue.claim(store, owner="a", limit=1, lease_seconds=30, now=149.0) == []
    [retried] = queue.claim(store, owner="a", limit=1, lease_seconds=30, now=150.0)
    assert retried.attempts == 2
    assert rows(store, work)[0]["last_error"] == "GenAuthUnavailableError: down"


def test_completing_deletes_the_row_unless_it_was_enqueued_again(store):
    """A delivery that arrives mid-reconcile makes the row due again instead of being lost."""
    record_delivery(store, delivery("u1", "u2"), now=100.0)
    jobs = {job.subject.id: job for job in queue.claim(store, owner="a", limit=10, lease_seconds=30, now=100.0)}
    record_delivery(store, delivery("u2"), now=101.0)  # u2 changed while being reconciled
    with store.begin() as connection:
        assert queue.complete(connection, jobs["u1"], owner="a", now=102.0) is True
        assert queue.complete(connection, jobs["u2"], owner="a", now=102.0) is False
    [row] = rows(store, work)
    assert (row["user_id"], row["leased_until"], row["attempts"], row["due_at"]) == ("u2", None, 0, 102.0)


def test_a_worker_whose_lease_expired_cannot_ack_anothers_claim(store):
    """After a lease expires and another worker claims the row, the first worker's ack changes nothing."""
    record_delivery(store, delivery("u1"), now=100.0)
    [stale] = queue.claim(store, owner="slow", limit=1, lease_seconds=10, now=100.0)
    [fresh] = queue.claim(store, owner="fast", limit=1, lease_seconds=10, now=111.0)
    with store.begin() as connection:
        queue.complete(connection, stale, owner="slow", now=112.0)
    assert rows(store, work)[0]["lease_owner"] == "fast"
    with store.begin() as connection:
        assert queue.complete(connection, fresh, owner="fast", now=113.0) is True
    assert rows(store, work) == []


def test_dead_letters_stay_visible_and_a_new_delivery_revives_them(store):
    """A dead row is not claimed; a fresh delivery for the user makes it pending with a clean slate."""
    record_delivery(store, delivery("u1"), now=100.0)
    [job] = queue.claim(store, owner="a", limit=1, lease_seconds=30, now=100.0)
    with store.begin() as connection:
        queue.dead_letter(connection, job, owner="a", error="boom", now=100.0)
    assert queue.claim(store, owner="a", limit=1, lease_seconds=30, now=200.0) == []
    assert queue.queue_stats(store, now=200.0).dead == 1
    record_delivery(store, delivery("u1"), now=300.0)
    [revived] = queue.claim(store, owner="a", limit=1, lease_seconds=30, now=300.0)
    assert revived.attempts == 1


def test_release_returns_unstarted_jobs_without_spending_an_attempt(store):
    """Jobs a stopping worker never started are due again at once with their attempt given back."""
    record_delivery(store, delivery("u1"), now=100.0)
    jobs = queue.claim(store, owner="a", limit=1, lease_seconds=30, now=100.0)
    queue.release(store, jobs, owner="a", now=101.0)
    [again] = queue.claim(store, owner="b", limit=1, lease_seconds=30, now=101.0)
    assert again.attempts == 1


def test_queue_stats_count_pending_leased_and_dead(store):
    """Stats split waiting, leased and dead rows and give the oldest due time."""
    record_delivery(store, delivery("u1", "u2", "u3"), now=100.0)
    queue.claim(store, owner="a", limit=1, lease_seconds=30, now=100.0)
    stats = queue.queue_stats(store, now=101.0)
    assert (stats.pending, stats.leased, stats.dead, stats.oldest_due_at) == (2, 1, 0, 100.0)


def test_decisions_are_recorded_and_read_newest_first(store):
    """Decision rows keep rules, factors and reason; reading returns the newest first."""
    for action in ("enforced", "none"):
        with store.begin() as connection:
            record_decision(
                connection,
                Decision(
                    userpool_id="pool",
                    user_id="u1",
                    trigger="login",
                    mode="enforce",
                    action=action,
                    rules=("finance-sms",),
                    required=("SMS",),
                    before=(),
                    after=("SMS",),
                    reason="r",
                ),
                now=100.0,
            )
    latest = decisions_for_user(store, "u1")
    assert [row["action"] for row in latest] == ["none", "enforced"]
    assert latest[0]["rules"] == ["finance-sms"] and latest[0]["after"] == ["SMS"]


def test_concurrent_claims_never_share_a_row(store):
    """Eight threads claiming at once get disjoint sets of rows that together cover the queue."""
    record_delivery(store, delivery(*[f"u{i}" for i in range(200)]), now=100.0)
    claimed: list[list[str]] = []
    barrier = threading.Barrier(8)

    def claim_all(owner):
        mine = []
        barrier.wait()
        while batch := queue.claim(store, owner=owner, limit=7, lease_seconds=60, now=100.0):
            mine.extend(job.subject.id for job in batch)
        claimed.append(mine)

    threads = [threading.Thread(target=claim_all, args=(f"w{i}",)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    every = [user for mine in claimed for user in mine]
    assert len(every) == len(set(every)) == 200


def test_a_waiting_user_keeps_their_place_when_events_keep_coming(store):
    """A user with a stream of events is not pushed behind users who arrived after their first event."""
    record_delivery(store, delivery("hot"), now=1.0)
    record_delivery(store, delivery("other"), now=2.0)
    record_delivery(store, delivery("hot"), now=3.0)
    [first] = queue.claim(store, owner="a", limit=1, lease_seconds=30, now=10.0)
    assert first.subject.id == "hot"


def test_a_delivery_during_the_last_attempt_restarts_the_row_instead_of_parking_it(store):
    """If the subject changed while its final attempt failed, the row starts over rather than dying."""
    record_delivery(store, delivery("u1"), now=100.0)
    [job] = queue.claim(store, owner="a", limit=1, lease_seconds=30, now=100.0)
    record_delivery(store, delivery("u1"), now=101.0)
    with store.begin() as connection:
        assert queue.dead_letter(connection, job, owner="a", error="boom", now=102.0) is False
    [row] = rows(store, work)
    assert (row["state"], row["attempts"], row["due_at"], row["leased_until"]) == ("pending", 0, 102.0, None)


def test_a_batch_of_deliveries_leaves_the_same_rows_as_recording_them_in_turn(database_url, tmp_path):
    """Group commit writes several deliveries in one transaction; the rows are those of one-by-one recording."""
    received = [
        (delivery("u1", "u2"), 100.0),
        (delivery("u2", event="user:updated"), 101.0),
        (
            Delivery(
                "role:assigned",
                "pool",
                (Subject.user("u3"), Subject(DEPARTMENT, "d1"), Subject(GROUP, "g1")),
                "e" * 64,
                "application/json",
                "queued",
            ),
            102.0,
        ),
        (delivery(event="other"), 103.0),
    ]
    one_by_one = create_engine(f"sqlite:///{tmp_path / 'one-by-one.db'}")
    prepare_database(one_by_one)
    expected_ids = [record_delivery(one_by_one, item, now=now) for item, now in received]
    batched = create_engine(database_url)
    prepare_database(batched)
    event_ids = record_deliveries(batched, received)

    assert len(set(event_ids)) == 4 and event_ids == sorted(event_ids)
    assert [row["id"] for row in rows(batched, events)] == event_ids  # each caller gets its own event's id

    # Events are the same apart from their ids; u2's row names the later event (the batch keeps the order).
    def comparable(engine, ids):
        renumber = dict(zip(ids, range(len(ids)), strict=True))
        return (
            [{**row, "id": renumber[row["id"]]} for row in rows(engine, events)],
            sorted(
                ({**row, "id": None, "event_id": renumber[row["event_id"]]} for row in rows(engine, work)),
                key=lambda row: (row["kind"], row["user_id"]),
            ),
        )

    assert comparable(batched, event_ids) == comparable(one_by_one, expected_ids)
    [u2] = [row for row in rows(batched, work) if row["user_id"] == "u2"]
    assert (u2["version"], u2["reason"], u2["event_id"]) == (2, "user:updated", event_ids[1])
    batched.dispose()
    one_by_one.dispose()


def test_a_removal_delivery_queues_the_user_and_drops_nothing(store):
    """A user:deleted delivery is a hint like any other: it queues the user (the worker confirms the removal
    with GenAuth) and neither drops work nor records a decision at intake."""
    removed = Delivery("user:deleted", "pool", (Subject.user("u1"),), "f" * 64, "application/json", "queued")
    record_deliveries(store, [(delivery("u1", "u2"), 100.0), (removed, 101.0), (delivery("u3"), 102.0)])
    assert sorted(row["user_id"] for row in rows(store, work)) == ["u1", "u2", "u3"]
    [u1] = [row for row in rows(store, work) if row["user_id"] == "u1"]
    assert (u1["version"], u1["reason"]) == (2, "user:deleted")
    assert decisions_for_user(store, "u1") == []


def test_the_inbox_records_concurrent_deliveries_in_shared_commits(store):
    """Many request threads at once: every delivery is recorded with its own event id, in fewer commits."""
    inbox = Inbox(store)
    ids: dict[int, int] = {}

    def send(number: int) -> None:
        ids[number] = inbox.record(delivery(f"u{number % 7}"), now=100.0 + number)

    threads = [threading.Thread(target=send, args=(number,)) for number in range(60)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(set(ids.values())) == 60
    assert sorted(row["id"] for row in rows(store, events)) == sorted(ids.values())
    assert inbox.commits.items == 60
    [row] = [row for row in rows(store, work) if row["user_id"] == "u0"]
    assert row["version"] == len(range(0, 60, 7))


def test_sqlite_writers_of_two_engines_queue_on_the_lock_file(tmp_path):
    """Two processes' engines (here two engines in one process) take turns: a second writer waits, in the
    kernel, until the first commits, and then goes ahead at once."""
    url = f"sqlite:///{tmp_path / 'enforcer.db'}"
    first, second = create_engine(url), create_engine(url)
    prepare_database(first)
    order: list[str] = []
    with first.begin() as connection:
        connection.execute(sa.text("SELECT 1"))
        assert (tmp_path / "enforcer.db.lock").exists()
        waiter = threading.Thread(target=lambda: (record_delivery(second, delivery("u2"), now=2.0), order.append("2")))
        waiter.start()
        waiter.join(0.3)
        assert waiter.is_alive()  # held behind the first engine's transaction
        order.append("1")
    waiter.join(10)
    assert order == ["1", "2"]
    record_delivery(first, delivery("u3"), now=3.0)  # the lock was given back after each commit
    assert len(rows(first, events)) == 2
    first.dispose()
    second.dispose()


def test_a_failed_transaction_gives_the_sqlite_lock_back(tmp_path):
    """A rollback releases the lock file too, so the next writer is not stuck behind a failed one."""
    url = f"sqlite:///{tmp_path / 'enforcer.db'}"
    first, second = create_engine(url), create_engine(url)
    prepare_database(first)
    with pytest.raises(sa.exc.OperationalError), first.begin() as connection:
        connection.execute(sa.text("SELECT * FROM no_such_table"))
    record_delivery(second, delivery("u1"), now=1.0)
    assert len(rows(second, events)) == 1
    first.dispose()
    second.dispose()


def test_a_writer_that_cannot_get_the_sqlite_lock_in_time_fails_like_a_locked_database(tmp_path):
    """A stuck holder (a stopped process) costs the next writer an error after the timeout, not a hang."""
    url = f"sqlite:///{tmp_path / 'enforcer.db'}"
    holder, impatient = create_engine(url), create_engine(url, lock_timeout=0.2)
    prepare_database(holder)
    with holder.begin() as connection:
        connection.execute(sa.text("SELECT 1"))
        with pytest.raises(sa.exc.OperationalError, match="database is locked"):
            record_delivery(impatient, delivery("u1"), now=1.0)
    record_delivery(impatient, delivery("u1"), now=2.0)  # free again: the failed attempt left nothing held
    assert [row["received_at"] for row in rows(holder, events)] == [2.0]
    holder.dispose()
    impatient.dispose()


def test_the_inbox_survives_postgresql_dropping_its_connections(postgres_url):
    """A restart of PostgreSQL (every session terminated) costs no acknowledged delivery: the next batch
    reconnects; a batch whose connection dies under it fails as a SQLAlchemy error, so the request gets a
    503 and GenAuth sends the delivery again, and the one after that is stored."""
    url = make_url(postgres_url).update_query_dict({"application_name": "mfa_enforcer_inbox_restart"})
    engine = create_engine(url.render_as_string(hide_password=False))
    prepare_database(engine)
    inbox = Inbox(engine)
    admin = create_engine(postgres_url)

    def terminate_sessions() -> None:
        with admin.begin() as connection:
            connection.execute(
                sa.text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE application_name = 'mfa_enforcer_inbox_restart'"
                )
            )

    first = inbox.record(delivery("u1"), now=1.0)
    terminate_sessions()
    second = inbox.record(delivery("u2"), now=2.0)  # the pooled connection was dead: pre-ping replaced it
    # Now the connection dies inside a transaction, between BEGIN and the driver-level insert.
    with pytest.raises(sa.exc.DBAPIError) as raised, engine.begin() as connection:
        connection.execute(sa.text("SELECT 1"))
        terminate_sessions()
        write_deliveries(connection, [(delivery("lost"), 3.0)])
    assert raised.value.connection_invalidated
    third = inbox.record(delivery("u3"), now=4.0)
    assert [row["id"] for row in rows(engine, events)] == [first, second, third]
    assert sorted(row["user_id"] for row in rows(engine, work)) == ["u1", "u2", "u3"]
    engine.dispose()
    admin.dispose()


def test_postgresql_connections_have_keepalives_and_a_user_timeout_unless_the_url_says_otherwise(postgres_url):
    """A half-open connection must fail instead of hanging a batch of deliveries."""
    url = make_url(postgres_url).update_query_dict({"keepalives_idle": "45"})
    engine = create_engine(url.render_as_string(hide_password=False))
    with engine.connect() as connection:
        parameters = connection.connection.dbapi_connection.info.get_parameters()
    engine.dispose()
    assert parameters["keepalives"] == "1" and parameters["tcp_user_timeout"] == "60000"
    assert parameters["keepalives_idle"] == "45"  # the operator's value wins


def test_a_delivery_the_driver_cannot_encode_fails_alone_and_its_batch_neighbours_are_stored(store):
    """One bad delivery in a batch (here a value the driver refuses) is written alone and fails alone."""
    inbox = Inbox(store)
    bad = Delivery("login", "pool", (Subject.user("\ud800x"),), "0" * 64, "application/json", "queued")
    opened = threading.Event()
    release = threading.Event()
    original = inbox.commits._transaction

    @contextlib.contextmanager
    def held():
        with original() as connection:
            if not opened.is_set():
                opened.set()
                assert release.wait(10)
            yield connection

    inbox.commits._transaction = held
    outcomes: dict[str, object] = {}

    def send(name, item):
        try:
            outcomes[name] = inbox.record(item, now=1.0)
        except Exception as error:  # the test looks at what each caller got
            outcomes[name] = error

    first = threading.Thread(target=send, args=("first", delivery("u0")))
    first.start()
    assert opened.wait(10)
    others = [
        threading.Thread(target=send, args=(name, item))
        for name, item in (("good1", delivery("u1")), ("bad", bad), ("good2", delivery("u2")))
    ]
    for thread in others:
        thread.start()
    # The leader opens its transaction before taking its batch, so its own item is still queued: 1 + 3.
    wait_until(lambda: inbox.commits.waiting == 4, timeout=10, what="the three to queue", interval=0.005)
    release.set()
    for thread in [first, *others]:
        thread.join(10)
    assert isinstance(outcomes.pop("bad"), Exception)
    assert all(isinstance(event_id, int) for event_id in outcomes.values())
    assert sorted(row["user_id"] for row in rows(store, work)) == ["u0", "u1", "u2"]


def test_driver_statements_refuse_to_run_outside_a_transaction(store):
    """Outside engine.begin() they would not commit with the caller's work, so they are refused."""
    with store.connect() as connection, pytest.raises(RuntimeError, match="inside a transaction"):
        queue.enqueue(connection, "pool", [Subject.user("u1")], reason="login", now=1.0)
