"""The worker against the emulator: retries, dead letters, permanent failures, audit mode, API cost."""

from __future__ import annotations

import time
from dataclasses import replace

import pytest
import sqlalchemy as sa

from service.app import WORKER_THREAD_EXTENSION, WORKERS_EXTENSION, create_app, stop_worker
from service.intake.context import EXTENSION
from service.services import Services
from service.store import queue
from service.store.decisions import decisions_for_user
from service.store.tables import decisions
from service.worker.loop import claim_size
from tests.support.factories import enqueue
from tests.support.store import drain, work_rows

SET_MFA = "/api/v3/set-mfa-status"


def test_temporary_errors_are_retried_until_enforced(worker, engine, emulator):
    """A 500 and a throttle on the reads (sent together: they cost one attempt) and a dropped connection on the
    write each cost an attempt; the user is enforced in the end. The write whose connection dropped has an
    unknown outcome, and the trail says so before the retry enforces."""
    alice = emulator.users["fin.alice"]
    emulator.faults.add("status_500", path="/api/v3/get-mfa-status", times=1)
    emulator.faults.add("status_429", path="/api/v3/get-user", times=1)
    emulator.faults.add("disconnect", path=SET_MFA, times=1)
    enqueue(engine, alice)
    drain(worker, engine)
    decision, unknown = decisions_for_user(engine, alice)
    assert unknown["action"] == "unknown" and unknown["reason"].startswith("write outcome unknown")
    assert decision["action"] == "enforced" and decision["attempt"] == 3
    assert emulator.state.get_mfa(alice)["applicationMfa"][0]["mfaPolicy"] == "SMS"
    assert work_rows(engine) == []


def test_work_is_dead_lettered_after_the_retry_budget_and_revived_by_a_new_delivery(worker, engine, emulator):
    """During an outage the row is retried max_attempts times, then parked with its error and a failed decision."""
    alice = emulator.users["fin.alice"]
    emulator.stop()
    enqueue(engine, alice)
    drain(worker, engine)
    [row] = work_rows(engine)
    assert row["state"] == "dead" and row["attempts"] == worker.settings.max_attempts
    assert "GenAuthUnavailableError" in row["last_error"]
    [decision] = decisions_for_user(engine, alice)
    assert decision["action"] == "failed" and "dead-lettered after 4 attempt(s)" in decision["reason"]

    emulator.start()
    enqueue(engine, alice)
    drain(worker, engine)
    assert decisions_for_user(engine, alice)[0]["action"] == "enforced"


def test_permanent_errors_are_recorded_and_not_retried(worker, engine, emulator):
    """When GenAuth refuses the write as invalid, one failed decision is recorded and the row is gone."""
    alice = emulator.users["fin.alice"]
    stored = emulator.state.get_mfa(alice)
    emulator.state.set_mfa(alice, {**stored, "applicationMfa": [{"mfaPolicy": "WEBAUTHN", "status": 1, "sort": 0}]})
    enqueue(engine, alice)
    drain(worker, engine)
    [decision] = decisions_for_user(engine, alice)
    assert decision["action"] == "failed" and decision["reason"].startswith("not retried")
    assert emulator.journal.count(SET_MFA) == 1
    assert work_rows(engine) == []


def test_deleted_user_is_a_decision_not_an_error(worker, engine, emulator):
    """A user deleted before the worker reads them is recorded as removed; nothing is written or retried."""
    erin = emulator.users["new.erin"]
    emulator.state.delete_user(erin)
    enqueue(engine, erin)
    drain(worker, engine)
    [decision] = decisions_for_user(engine, erin)
    assert decision["action"] == "removed" and "does not exist" in decision["reason"]
    assert decision["before"] is None and decision["after"] is None


TREE = ["/api/v3/get-all-departments", "/api/v3/list-organizations"]
POOL = ["/api/v3/get-global-mfa-settings"]
"""The process's one read of the pool's MFA factors (service.enforcement.effective), like its tree load."""
"""What loading the organisation tree costs the process's first job (tests/integration/test_call_counts.py)."""


def test_compliant_user_costs_two_reads_and_no_write(worker, engine, emulator):
    """get-user and get-mfa-status, and nothing else but the process's one tree load and pool settings read,
    for a compliant user."""
    frank = emulator.users["fin.frank"]
    emulator.journal.clear()
    enqueue(engine, frank)
    drain(worker, engine)
    paths = [entry.path for entry in emulator.journal.entries() if entry.path != "/api/v3/get-management-token"]
    assert sorted(paths) == sorted(["/api/v3/get-mfa-status", "/api/v3/get-user", *TREE, *POOL])


def test_out_of_scope_user_costs_no_more_than_two_reads(worker, engine, emulator):
    """A user no rule matches costs the user read and, sent with it before the rules are evaluated, the MFA
    read (besides the process's one tree load and pool settings read); no department read, no write."""
    dave = emulator.users["eng.dave"]
    emulator.journal.clear()
    enqueue(engine, dave)
    drain(worker, engine)
    paths = [entry.path for entry in emulator.journal.entries() if entry.path != "/api/v3/get-management-token"]
    assert sorted(paths) == sorted(["/api/v3/get-mfa-status", "/api/v3/get-user", *TREE, *POOL])


def test_a_user_no_rule_matches_has_factors_not_read_rather_than_none(worker, engine, emulator, caplog):
    """MFA is not checked for a user outside every rule: the decision's before and after are null ("not
    checked"), not [] ("no factors"), in the table and in the log."""
    dave = emulator.users["eng.dave"]
    enqueue(engine, dave)
    with caplog.at_level("INFO", logger="service.worker.loop"):
        drain(worker, engine)
    [decision] = decisions_for_user(engine, dave)
    assert (decision["action"], decision["before"], decision["after"]) == ("none", None, None)
    assert "MFA not checked" in decision["reason"]
    [logged] = [r for r in caplog.records if r.getMessage() == "decision_recorded"]
    assert (logged.fields["before"], logged.fields["after"]) == (None, None)
    with engine.connect() as connection:
        nulls = connection.execute(
            sa.select(sa.func.count()).select_from(decisions).where(decisions.c.before.is_(None))
        ).scalar_one()
    assert nulls == 1, "stored as SQL NULL, not as JSON null"


@pytest.fixture
def email_policy(tmp_path):
    path = tmp_path / "policies.yaml"
    path.write_text(
        "policies:\n"
        "  - name: acme-otp\n"
        "    match: {email_domains: [acme.example]}\n"
        "    require_mfa: [OTP]\n"
        "  - name: finance-email-audit\n"
        "    mode: audit\n"
        "    match: {departments: [finance]}\n"
        "    require_mfa: [EMAIL]\n"
    )
    return path


@pytest.fixture
def worker_with(settings):
    """worker_with(**setting_changes) -> (worker, engine): an app and worker built from changed settings."""
    made = []

    def build(**changes):
        app = create_app(replace(settings, **changes), configure_logs=False)
        runtime = app.extensions[EXTENSION]
        worker = Services(runtime.settings, runtime.engine).worker(runtime.policies.current)
        made.append((worker, runtime.engine))
        return worker, runtime.engine

    yield build
    for worker, engine in made:
        worker.reconciler.client.close()
        engine.dispose()


def test_rules_that_need_no_departments_fetch_none(worker_with, emulator, tmp_path):
    """With only an email-domain rule, no get-user-departments call is made."""
    path = tmp_path / "email-only.yaml"
    path.write_text(
        "policies:\n  - name: acme-otp\n    match: {email_domains: [acme.example]}\n    require_mfa: [OTP]\n"
    )
    worker, engine = worker_with(policy_file=path)
    emulator.journal.clear()
    enqueue(engine, emulator.users["eng.dave"])
    drain(worker, engine)
    assert emulator.journal.count("/api/v3/get-user-departments") == 0
    assert decisions_for_user(engine, emulator.users["eng.dave"])[0]["after"] == ["OTP"]


def test_audit_rule_records_what_it_would_do_and_writes_only_enforce_rules(worker_with, emulator, email_policy):
    """An audit-mode rule adds nothing; its factor is reported as would-enable beside the enforced one."""
    worker, engine = worker_with(policy_file=email_policy)
    alice = emulator.users["fin.alice"]
    enqueue(engine, alice)
    drain(worker, engine)
    [decision] = decisions_for_user(engine, alice)
    assert decision["action"] == "enforced"
    assert decision["required"] == ["EMAIL", "OTP"] and decision["after"] == ["OTP"]
    assert "would enable EMAIL (audit)" in decision["reason"]
    enabled = {e["mfaPolicy"] for e in emulator.state.get_mfa(alice)["applicationMfa"] if e["status"] == 1}
    assert enabled == {"OTP"}


def test_global_audit_mode_changes_nothing(worker_with, emulator):
    """ENFORCER_MODE=audit records would-enforce and never calls set-mfa-status."""
    worker, engine = worker_with(mode="audit")
    alice = emulator.users["fin.alice"]
    enqueue(engine, alice)
    drain(worker, engine)
    [decision] = decisions_for_user(engine, alice)
    assert (decision["action"], decision["mode"]) == ("would-enforce", "audit")
    assert emulator.journal.count(SET_MFA) == 0


def test_a_delivery_during_reconcile_is_not_lost(worker, engine, emulator):
    """A delivery that arrives while the user is being reconciled makes the worker look at the user again."""
    erin = emulator.users["new.erin"]
    enqueue(engine, erin)
    [job] = queue.claim(engine, owner=worker.owner, limit=1, lease_seconds=30, now=time.time())
    enqueue(engine, erin)  # GenAuth reports a change while the worker holds the row
    worker.process(job)  # this pass read her before the change: not in Finance yet
    assert decisions_for_user(engine, erin)[0]["action"] == "none"
    emulator.state.add_member(erin, "finance")  # the change it was told about
    drain(worker, engine)
    assert decisions_for_user(engine, erin)[0]["action"] == "enforced"


def test_a_worker_whose_jobs_are_slow_claims_one_row_at_a_time(worker, engine, emulator):
    """When GenAuth answers slowly, a worker claims only what it can finish soon, so a backlog is shared by
    every worker instead of waiting behind the one that claimed it all."""
    users = list(emulator.users.values())[:4]
    enqueue(engine, *users)
    worker.job_seconds = 8.0  # as after jobs of four 2-second calls
    assert worker.run_once() == 1
    rows = work_rows(engine)
    assert len(rows) == 3 and all(row["lease_owner"] is None and row["attempts"] == 0 for row in rows)


def test_a_worker_starts_with_one_row_and_claims_full_batches_once_jobs_prove_quick(worker, engine, emulator):
    users = list(emulator.users.values())[:4]
    enqueue(engine, *users)
    assert worker.job_seconds is None
    assert worker.run_once() == 1  # nothing timed yet: one row, in case jobs are slow
    assert worker.job_seconds is not None and 0 < worker.job_seconds < 5
    worker.job_seconds = 0.01  # as after quick jobs
    assert worker.run_once() == 3  # the rest, in one claim


def test_claim_size_shrinks_with_slow_jobs_but_never_below_one():
    assert claim_size(20, None) == 1
    assert claim_size(20, 0.1) == 20
    assert claim_size(20, 1.0) == 5
    assert claim_size(20, 8.0) == 1
    assert claim_size(20, 600.0) == 1


def test_claim_size_survives_jobs_that_take_no_measurable_time():
    assert claim_size(20, 0.0) == 20
    assert claim_size(20, 5e-324) == 20  # the smallest float: no overflow


def test_the_web_process_runs_as_many_worker_threads_as_configured_and_stops_them_all(settings):
    """ENFORCER_WORKER_THREADS in single-node mode: one rate limit and one sweeper per process, all stopped on
    shutdown within the grace period."""
    threaded = replace(settings, worker=replace(settings.worker, run_in_web=True, threads=3, poll_interval=0.05))
    app = create_app(threaded, configure_logs=False)
    try:
        workers = app.extensions[WORKERS_EXTENSION]
        threads = app.extensions[WORKER_THREAD_EXTENSION]
        assert len(workers) == 3 and all(thread.is_alive() for thread in threads)
        assert len({worker.owner for worker in workers}) == 3
        assert [worker.sweeper is not None for worker in workers] == [True, False, False]
        limiters = {id(worker.reconciler.client.limiter) for worker in workers}
        assert len(limiters) == 1  # the process's GenAuth rate limit is shared
    finally:
        stop_worker(app, wait=10)
        app.extensions[EXTENSION].engine.dispose()
    assert not any(thread.is_alive() for thread in threads)
