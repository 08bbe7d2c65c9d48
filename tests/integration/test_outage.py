"""A GenAuth-wide outage: the circuit breaker stops the worker spending every user's retry budget on it, keeps
the rows, and lets work resume after a probe succeeds."""

from __future__ import annotations

from dataclasses import replace

import sqlalchemy as sa

from service.intake.context import EXTENSION
from service.services import Services
from service.store.decisions import decisions_for_user
from service.store.tables import work
from service.worker.loop import Worker
from tests.support.factories import FakeClock, enqueue

USERS = 8


def outage_worker(app, engine, clock, *, failures=3, cooldown=30.0):
    """A worker with a small retry budget (3 attempts), fast backoff, a fake clock and the given breaker."""
    settings = app.extensions[EXTENSION].settings
    worker_settings = replace(settings.worker, max_attempts=3, backoff_base=1.0, backoff_max=4.0, batch_size=4)
    genauth = replace(settings.genauth, circuit_failures=failures, circuit_cooldown=cooldown)
    made = Services(replace(settings, worker=worker_settings, genauth=genauth), engine).worker(
        app.extensions[EXTENSION].policies.current
    )
    return Worker(engine, made.reconciler, worker_settings, clock=clock)


def finance_users(emulator, count):
    return [
        emulator.state.add_user(
            username=f"fin.user{n}",
            email=f"fin.user{n}@acme.example",
            phone=f"139000000{n:02d}",
            departments=["finance"],
        )["userId"]
        for n in range(count)
    ]


def rows(engine):
    with engine.connect() as connection:
        return {row.user_id: row for row in connection.execute(sa.select(work))}


def test_an_outage_dead_letters_nobody_and_work_resumes_after_a_probe(app, engine, emulator):
    """GenAuth unreachable for 10 minutes with 8 users waiting and a budget of 3 attempts: nobody is
    dead-lettered (only the failures before the circuit opened count), and all are enforced once it is back."""
    clock = FakeClock()
    worker = outage_worker(app, engine, clock)
    users = finance_users(emulator, USERS)
    emulator.stop()
    enqueue(engine, *users, now=clock.now)
    for _ in range(600):
        worker.run_once()
        clock.now += 1
    waiting = rows(engine)
    assert {row.state for row in waiting.values()} == {"pending"}, "an outage must not dead-letter anyone"
    assert sum(row.attempts for row in waiting.values()) < 3, "only failures before the circuit opened count"
    assert worker.breaker is not None and worker.breaker.is_open()

    emulator.start()
    for _ in range(400):
        worker.run_once()
        if not rows(engine):
            break
        clock.now += 5
    assert rows(engine) == {}
    assert {decisions_for_user(engine, user)[0]["action"] for user in users} == {"enforced"}
    assert not worker.breaker.is_open()
    worker.reconciler.client.close()


def test_while_the_circuit_is_open_no_row_is_claimed_or_called_for(app, engine, emulator):
    """Open means quiet: between probes the worker claims nothing, so GenAuth sees no calls and the rows keep
    their attempts; a probe is a single row."""
    clock = FakeClock()
    worker = outage_worker(app, engine, clock, failures=2, cooldown=60.0)
    users = finance_users(emulator, 4)
    emulator.faults.add("http_503", times=None)
    enqueue(engine, *users, now=clock.now)
    for _ in range(10):
        worker.run_once()
        clock.now += 1
    assert worker.breaker.is_open()
    calls, attempts = emulator.journal.count(), {u: r.attempts for u, r in rows(engine).items()}
    for _ in range(50):  # within the cool-down
        assert worker.run_once() == 0
        clock.now += 1
    assert emulator.journal.count() == calls and {u: r.attempts for u, r in rows(engine).items()} == attempts
    clock.now += 60
    assert worker.run_once() == 1, "after the cool-down one row goes as the probe"
    assert emulator.journal.count() == calls + 1
    assert {u: r.attempts for u, r in rows(engine).items()} == attempts, "a failed probe is not counted"
    worker.reconciler.client.close()


def test_failures_of_one_user_still_spend_that_users_budget(app, engine, emulator):
    """GenAuth answering everything but one user's MFA read is not an outage: the circuit stays closed and
    that user is dead-lettered after the budget, while the others are enforced."""
    clock = FakeClock()
    worker = outage_worker(app, engine, clock, failures=2)
    alice, bob = emulator.users["fin.alice"], emulator.users["fin.bob"]
    enqueue(engine, alice, now=clock.now)
    emulator.faults.add("status_500", path="/api/v3/get-mfa-status", times=3)
    for _ in range(60):
        worker.run_once()
        clock.now += 5
    assert rows(engine)[alice].state == "dead"
    enqueue(engine, bob, now=clock.now)
    for _ in range(10):
        worker.run_once()
        clock.now += 5
    assert decisions_for_user(engine, bob)[0]["action"] == "enforced"
    worker.reconciler.client.close()
