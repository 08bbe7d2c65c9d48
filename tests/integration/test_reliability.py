"""Failure over time: long outages, the age budget, expiring tokens, pacing and replay."""

from __future__ import annotations

import time
from dataclasses import replace

import pytest
import sqlalchemy as sa

from service.genauth.throttling import RateLimiter
from service.intake.context import EXTENSION
from service.services import Services
from service.store.decisions import decisions_for_user
from service.store.inbox import Delivery, record_delivery
from service.store.replaying import dead_letters, replay, replay_targets
from service.store.subjects import DEPARTMENT, Subject
from service.store.tables import work
from service.worker.loop import Worker
from tests.support.factories import FakeClock, enqueue


def row(engine, user_id):
    with engine.connect() as connection:
        found = connection.execute(sa.select(work).where(work.c.user_id == user_id)).first()
    return None if found is None else dict(found._mapping)


def production_worker(app, engine, clock, **overrides):
    """A worker with the production retry settings (not the test suite's fast ones) and a fake clock."""
    settings = app.extensions[EXTENSION].settings
    worker_settings = replace(settings.worker.__class__(), run_in_web=False, **overrides)
    made = Services(replace(settings, worker=worker_settings), engine).worker(
        app.extensions[EXTENSION].policies.current
    )
    return Worker(engine, made.reconciler, worker_settings, clock=clock)


def test_ten_minute_outage_loses_nothing_and_enforces_when_genauth_returns(app, engine, emulator):
    """With default backoff, a user queued during a 10-minute outage is retried, not dead-lettered, then enforced.
    Once every call has failed GENAUTH_CIRCUIT_FAILURES times in a row the worker stops spending the user's
    attempts on the outage."""
    clock = FakeClock()
    worker = production_worker(app, engine, clock)
    alice = emulator.users["fin.alice"]
    emulator.stop()
    enqueue(engine, alice, now=clock.now)
    started = clock.now
    attempts_seen = set()
    while clock.now - started < 600:
        worker.run_once()
        current = row(engine, alice)
        assert current is not None and current["state"] == "pending", "work was dropped or dead-lettered"
        attempts_seen.add(current["attempts"])
        clock.now += 5
    threshold = app.extensions[EXTENSION].settings.genauth.circuit_failures
    assert max(attempts_seen) == threshold - 1, "the circuit should open and stop counting attempts"
    emulator.start()
    for _ in range(400):
        worker.run_once()
        if decisions_for_user(engine, alice):
            break
        clock.now += 5
    [decision] = decisions_for_user(engine, alice)
    assert decision["action"] == "enforced"
    assert row(engine, alice) is None
    worker.reconciler.client.close()


def test_age_budget_dead_letters_a_row_before_its_attempts_run_out(app, engine, emulator):
    """A row failing for longer than max_age is dead-lettered even with attempts left (a failure of this user:
    GenAuth answers its other calls, so the circuit stays closed)."""
    clock = FakeClock()
    worker = production_worker(app, engine, clock, max_attempts=1000, max_age=120.0)
    alice = emulator.users["fin.alice"]
    emulator.faults.add("status_500", path="/api/v3/get-mfa-status", times=None)
    enqueue(engine, alice, now=clock.now)
    for _ in range(200):
        worker.run_once()
        if row(engine, alice)["state"] == "dead":
            break
        clock.now += 10
    dead = row(engine, alice)
    assert dead["state"] == "dead" and dead["attempts"] < 1000
    assert clock.now - dead["first_enqueued_at"] >= 120
    worker.reconciler.client.close()


def test_tokens_that_expire_mid_run_are_renewed(worker, engine, emulator):
    """GenAuth expiring every token between jobs costs one token call, not a failure."""
    alice, erin = emulator.users["fin.alice"], emulator.users["fin.bob"]
    enqueue(engine, alice, now=time.time())
    worker.run_until_idle()
    emulator.state.expire_tokens()
    enqueue(engine, erin, now=time.time())
    worker.run_until_idle()
    assert [d["action"] for d in decisions_for_user(engine, alice) + decisions_for_user(engine, erin)] == [
        "enforced",
        "enforced",
    ]
    assert emulator.journal.count("/api/v3/get-management-token") == 2


def test_rate_limiter_paces_calls_after_the_burst():
    """45 calls at 20/s with a burst of 5 wait 2 s in total; an unlimited bucket never waits."""
    now = [0.0]
    slept = []

    def sleep(seconds):
        slept.append(seconds)
        now[0] += seconds

    limiter = RateLimiter(20, 5, clock=lambda: now[0], sleep=sleep)
    for _ in range(45):
        limiter.acquire()
    assert sum(slept) == pytest.approx(2.0)
    assert len(slept) == 40
    unlimited = RateLimiter(0, 1, clock=lambda: now[0], sleep=sleep)
    before = len(slept)
    for _ in range(100):
        unlimited.acquire()
    assert len(slept) == before


def test_worker_calls_are_paced_by_the_configured_rate(app, engine, emulator, settings):
    """With GENAUTH_RATE_LIMIT=20 and a burst of 1, 3 users (about 10 calls) take at least 0.4 s."""
    paced = replace(settings, genauth=replace(settings.genauth, rate_limit=20.0, rate_burst=1))
    worker = Services(paced, engine).worker(app.extensions[EXTENSION].policies.current)
    users = [emulator.users[name] for name in ("fin.alice", "fin.bob", "eng.dave")]
    enqueue(engine, *users, now=time.time())
    started = time.monotonic()
    worker.run_until_idle()
    elapsed = time.monotonic() - started
    calls = emulator.journal.count()
    assert calls >= 9
    assert elapsed >= (calls - 1) / 20 * 0.95
    worker.reconciler.client.close()


def test_replay_selects_dead_letters_users_and_time_ranges(engine):
    """replay_targets picks dead letters, named users and users of deliveries in a range, once each."""
    enqueue(engine, "old", now=100.0)
    enqueue(engine, "recent", "other", now=200.0)
    with engine.begin() as connection:
        connection.execute(sa.update(work).where(work.c.user_id == "old").values(state="dead", last_error="boom"))
    assert [r["user_id"] for r in dead_letters(engine)] == ["old"]
    assert [(t.subject.id, t.source) for t in replay_targets(engine, all_dead=True)] == [("old", "dead-letter")]
    in_range = replay_targets(engine, since=150.0, until=250.0)
    assert sorted(t.subject.id for t in in_range) == ["other", "recent"]
    assert [t.subject.id for t in replay_targets(engine, user_ids=["someone"])] == ["someone"]
    assert replay(engine, replay_targets(engine, all_dead=True), now=300.0) == 1
    revived = row(engine, "old")
    assert (revived["state"], revived["attempts"], revived["due_at"], revived["reason"]) == (
        "pending",
        0,
        300.0,
        "replay",
    )


def test_replay_resets_backoff_of_pending_rows(engine):
    """A row waiting out a long backoff is due immediately after a replay."""
    enqueue(engine, "u1", now=100.0)
    with engine.begin() as connection:
        connection.execute(sa.update(work).values(attempts=5, due_at=10_000.0))
    replay(engine, replay_targets(engine, user_ids=["u1"]), now=200.0)
    assert (row(engine, "u1")["due_at"], row(engine, "u1")["attempts"]) == (200.0, 0)


def test_jobs_not_started_before_the_lease_runs_low_are_released(app, engine, emulator):
    """When a batch runs long, its unstarted jobs go back on the queue instead of outliving their lease."""
    clock = FakeClock()
    worker = production_worker(app, engine, clock, lease_seconds=10.0, batch_size=5)
    original = worker.reconciler.reconcile

    def slow_reconcile(job, **kwargs):
        clock.now += 8  # the first job alone uses most of the lease
        return original(job, **kwargs)

    worker.reconciler.reconcile = slow_reconcile
    users = [emulator.users[name] for name in ("fin.alice", "fin.bob", "eng.dave")]
    enqueue(engine, *users, now=clock.now)
    assert worker.run_once() == 1
    with engine.connect() as connection:
        rows = connection.execute(sa.select(work.c.user_id, work.c.leased_until, work.c.attempts)).all()
    assert len(rows) == 2 and all(leased is None and attempts == 0 for _, leased, attempts in rows)
    worker.reconciler.client.close()


def test_replay_keeps_department_and_group_subjects_as_they_were(engine):
    """Dead department rows and department subjects of past events replay as departments, not as users;
    users removed by user:deleted are not replayed."""
    record_delivery(
        engine,
        Delivery(
            "organization:node-moved", "pool", (Subject(DEPARTMENT, "dep1"),), "0" * 64, "application/json", "queued"
        ),
        now=100.0,
    )
    record_delivery(
        engine,
        Delivery("user:deleted", "pool", (Subject.user("gone"),), "0" * 64, "application/json", "queued"),
        now=110.0,
    )
    with engine.begin() as connection:
        connection.execute(sa.update(work).where(work.c.user_id == "dep1").values(state="dead"))
        connection.execute(sa.delete(work).where(work.c.user_id == "gone"))  # the worker confirmed the deletion
    targets = replay_targets(engine, since=50.0, until=200.0)
    assert sorted((t.subject.kind, t.subject.id) for t in targets) == [("department", "dep1")]
    assert replay(engine, targets, now=300.0) == 1
    with engine.connect() as connection:
        assert connection.execute(sa.select(work.c.kind, work.c.user_id, work.c.state)).all() == [
            ("department", "dep1", "pending")
        ]
