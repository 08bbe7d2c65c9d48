"""History retention: old event records and superseded decisions go, in small batches; each user's latest
decision stays, so the report reads the same; the worker prunes by itself and counts what it pruned."""

from __future__ import annotations

import time
from dataclasses import replace

import pytest
import sqlalchemy as sa
from prometheus_client import REGISTRY

from service.enforcement.decisions import Decision
from service.intake.context import EXTENSION
from service.services import Services
from service.store.decisions import record_decision
from service.store.inbox import Delivery, record_delivery
from service.store.reporting import compliance
from service.store.retention import DAY, prune_history
from service.store.subjects import Subject
from service.store.tables import decisions, events, work
from service.worker.loop import start_in_thread
from tests.support.waiting import wait_until

NOW = 1_800_000_000.0
OLD = NOW - 200 * DAY
RULES = {"finance-sms": "enforce"}


def decide(engine, user, action, *, at, outcome="compliant"):
    decision = Decision(
        userpool_id="pool",
        user_id=user,
        trigger="login",
        mode="enforce",
        action=action,
        rules=("finance-sms",),
        required=("SMS",),
        before=("SMS",),
        after=("SMS",),
        reason="test",
        outcomes={"finance-sms": outcome},
    )
    with engine.begin() as connection:
        record_decision(connection, decision, now=at)


def history(engine):
    with engine.connect() as connection:
        kept = connection.execute(sa.select(decisions.c.user_id, decisions.c.decided_at).order_by(decisions.c.id))
        return [(user, at) for user, at in kept], connection.execute(sa.select(events.c.received_at)).scalars().all()


@pytest.fixture
def old_history(engine):
    """Events and decisions from 200 days ago and from now, for users in every situation."""
    for at in (OLD, OLD + 1, OLD + 2, NOW):
        record_delivery(
            engine, Delivery("login", "pool", (Subject.user("u1"),), "0" * 64, "application/json", "queued"), now=at
        )
    for at in (OLD, OLD + 1, OLD + 2):
        decide(engine, "u1", "enforced", at=at, outcome="enforce [SMS]")
    decide(engine, "u1", "none", at=NOW)  # superseded old ones go, the new one stays
    decide(engine, "u2", "enforced", at=OLD, outcome="enforce [SMS]")
    decide(engine, "u2", "none", at=OLD + 5)  # old but the latest: stays
    decide(engine, "u3", "none", at=OLD)
    decide(engine, "u3", "removed", at=OLD + 5)  # removed long ago: the user leaves the report
    decide(engine, "u4", "none", at=NOW - DAY)
    decide(engine, "u4", "removed", at=NOW)  # removed recently: still reported
    return engine


def test_pruning_keeps_each_users_latest_decision_and_the_report(old_history):
    """Prune at 90 days in batches of 2: old events and superseded decisions go, every user's latest decision
    stays (except a removal older than the retention), and the report counts the same users the same way."""
    engine = old_history
    before = compliance(engine, RULES)
    passes = 0
    while True:
        passes += 1
        pruned = prune_history(engine, older_than=NOW - 90 * DAY, batch_size=2, max_batches=1)
        if pruned.is_complete:
            break
    assert passes > 1, "small batches: the prune takes several passes"
    kept, received = history(engine)
    assert received == [NOW]
    assert kept == [("u1", NOW), ("u2", OLD + 5), ("u4", NOW - DAY), ("u4", NOW)]
    after = compliance(engine, RULES)
    assert before["totals"]["compliant"] == after["totals"]["compliant"] == 2
    assert before["totals"]["removed"] == 2 and after["totals"]["removed"] == 1


def test_pruning_with_nothing_old_deletes_nothing(old_history):
    """A cut-off before all history is a no-op that says it is complete."""
    pruned = prune_history(old_history, older_than=OLD - 1)
    assert (pruned.events, pruned.decisions, pruned.is_complete) == (0, 0, True)


def pruned_total(table):
    return REGISTRY.get_sample_value("mfa_enforcer_pruned_rows_total", {"table": table}) or 0.0


def test_the_worker_prunes_by_itself_and_counts_it(app, settings, engine, emulator):
    """With ENFORCER_RETENTION_DAYS=1 the running worker deletes day-old history without being asked, and
    mfa_enforcer_pruned_rows_total counts the rows; with 0 nothing is ever pruned."""
    day_old = time.time() - 2 * DAY
    record_delivery(
        engine, Delivery("login", "pool", (Subject.user("u9"),), "0" * 64, "application/json", "queued"), now=day_old
    )
    with engine.begin() as connection:
        connection.execute(sa.delete(work))  # only the history matters here
    decide(engine, "u9", "enforced", at=day_old)
    decide(engine, "u9", "none", at=day_old + 1)
    keep_all = Services(replace(settings, worker=replace(settings.worker, retention_days=0)), engine).worker(
        app.extensions[EXTENSION].policies.current
    )
    keep_all.pruner.maybe_prune(time.time())
    assert len(history(engine)[0]) == 2
    counted = pruned_total("events"), pruned_total("decisions")
    pruning = Services(replace(settings, worker=replace(settings.worker, retention_days=1)), engine).worker(
        app.extensions[EXTENSION].policies.current
    )
    thread = start_in_thread(pruning)
    wait_until(lambda: history(engine) == ([("u9", day_old + 1)], []), timeout=10, what="the worker to prune")
    pruning.stop()
    thread.join(10)
    assert (pruned_total("events") - counted[0], pruned_total("decisions") - counted[1]) == (1, 1)
    for made in (keep_all, pruning):
        made.reconciler.client.close()
