"""Writes to GenAuth without compare-and-set: no wait between the read and the write, the read-back after it,
what another writer lost, writes GenAuth did not keep, answers that were lost, and reads that came back empty."""

from __future__ import annotations

import threading
import time
from dataclasses import replace

import pytest

from service.enforcement.merging import enabled_factors
from service.intake.context import EXTENSION
from service.services import Services
from service.store.decisions import decisions_for_user
from tests.support.factories import enqueue
from tests.support.store import drain, work_rows
from tests.support.waiting import wait_until

GET_MFA = "/api/v3/get-mfa-status"
SET_MFA = "/api/v3/set-mfa-status"


def make_worker(app, settings, engine, *, genauth=None, **worker):
    changed = replace(
        settings,
        genauth=replace(settings.genauth, **(genauth or {})),
        worker=replace(settings.worker, **worker),
    )
    return Services(changed, engine).worker(app.extensions[EXTENSION].policies.current)


@pytest.fixture
def closing():
    made = []
    yield made.append
    for worker in made:
        worker.reconciler.client.close()


def in_thread(target):
    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread


def wait_until_taken(emulator, seconds, timeout=20.0):
    """Block until the queued latency fault of ``seconds`` has been taken by a request (it is sleeping now)."""
    wait_until(
        lambda: not any(fault.seconds == seconds for fault in emulator.faults.pending()),
        timeout=timeout,
        what="the request the fault was for",
        interval=0.005,
    )


def test_no_rate_limit_wait_falls_between_the_last_read_and_the_write(app, settings, engine, emulator, closing):
    """With every call paced (2/s, burst 1), the tokens for the write and the read-back are taken with the
    reads', before the reads: the write follows the read of the MFA data at once, never after a wait."""
    worker = make_worker(app, settings, engine, genauth={"rate_limit": 2.0, "rate_burst": 1})
    closing(worker)
    alice = emulator.users["fin.alice"]
    enqueue(engine, alice)
    worker.run_until_idle()
    calls = [entry for entry in emulator.journal.entries() if entry.path in (GET_MFA, SET_MFA)]
    write = next(index for index, entry in enumerate(calls) if entry.path == SET_MFA)
    assert calls[write - 1].path == GET_MFA
    assert calls[write].time - calls[write - 1].time < 0.25, "a rate-limit wait fell between read and write"
    assert [entry.path for entry in calls] == [GET_MFA, SET_MFA, GET_MFA]


def test_a_change_made_while_the_worker_waits_for_the_rate_limit_is_kept(app, settings, engine, emulator, closing):
    """An admin resets TOTP and the user binds a new authenticator while the worker waits for the rate limit
    (after the job before, 2 calls/s): the wait falls before the read, so the one write is planned from the
    new data and keeps the new token and the new OTP factor."""
    worker = make_worker(app, settings, engine, genauth={"rate_limit": 2.0, "rate_burst": 1})
    closing(worker)
    alice, dave = emulator.users["fin.alice"], emulator.users["eng.dave"]
    original = emulator.state.get_mfa(alice)
    enqueue(engine, dave)
    enqueue(engine, alice, now=time.time() + 0.001)
    running = in_thread(worker.run_until_idle)
    emulator.journal.wait_for(lambda entry: entry.path == GET_MFA and entry.query["userId"] == [dave], timeout=20)
    rebound = {"mfaToken": "token-after-reset", "applicationMfa": [{"mfaPolicy": "OTP", "status": 1, "sort": 0}]}
    emulator.state.set_mfa(alice, {**original, **rebound})
    running.join(30)
    stored = emulator.state.get_mfa(alice)
    assert stored["mfaToken"] == "token-after-reset"
    assert enabled_factors(stored) == ("SMS", "OTP")
    assert emulator.journal.count(SET_MFA) == 1
    [decision] = decisions_for_user(engine, alice)
    assert decision["action"] == "enforced" and decision["after"] == ["SMS", "OTP"]


def test_what_another_writer_lost_after_the_write_is_put_back_and_recorded(app, settings, engine, emulator, closing):
    """A stale write lands between the service's write and its read-back (an admin console saving a form loaded
    before the user bound OTP): OTP (not the service's) and SMS are gone. The service puts both back, keeps
    the token, and the decision says what it restored."""
    worker = make_worker(app, settings, engine)
    closing(worker)
    alice = emulator.users["fin.alice"]
    stale = emulator.state.get_mfa(alice)
    emulator.state.set_mfa(alice, {**stale, "applicationMfa": [{"mfaPolicy": "OTP", "status": 1, "sort": 0}]})
    emulator.faults.add("latency", path=GET_MFA, times=1, seconds=0)  # the read
    emulator.faults.add("latency", path=GET_MFA, times=1, seconds=1.0)  # the read-back
    enqueue(engine, alice)
    running = in_thread(worker.run_until_idle)
    wait_until_taken(emulator, 1.0)
    emulator.state.set_mfa(alice, stale)
    running.join(30)
    stored = emulator.state.get_mfa(alice)
    assert enabled_factors(stored) == ("SMS", "OTP")
    assert stored["mfaToken"] == stale["mfaToken"]
    assert emulator.journal.count(SET_MFA) == 2
    [decision] = decisions_for_user(engine, alice)
    assert decision["action"] == "enforced" and "restored OTP" in decision["reason"]


def test_a_write_genauth_never_keeps_is_dead_lettered_with_that_reason(worker, engine, emulator):
    """set-mfa-status answers success but stores nothing, every time: each attempt is a temporary error, and
    the row ends dead-lettered with "GenAuth did not keep the change"; no decision ever claims enforcement."""
    alice = emulator.users["fin.alice"]
    emulator.faults.add("drop_write", path=SET_MFA, times=None)
    enqueue(engine, alice)
    drain(worker, engine)
    [row] = work_rows(engine)
    assert row["state"] == "dead" and "GenAuth did not keep the change" in row["last_error"]
    [decision] = decisions_for_user(engine, alice)
    assert decision["action"] == "failed" and "GenAuth did not keep the change" in decision["reason"]
    assert enabled_factors(emulator.state.get_mfa(alice)) == ()


def test_a_write_genauth_dropped_once_is_retried_until_it_is_kept(worker, engine, emulator):
    """One dropped write costs one attempt; the retry writes again and the read-back confirms it."""
    alice = emulator.users["fin.alice"]
    emulator.faults.add("drop_write", path=SET_MFA, times=1)
    enqueue(engine, alice)
    drain(worker, engine)
    [decision] = decisions_for_user(engine, alice)
    assert decision["action"] == "enforced" and decision["attempt"] == 2
    assert enabled_factors(emulator.state.get_mfa(alice)) == ("SMS",)
    assert emulator.journal.count(SET_MFA) == 2


def test_verifying_writes_costs_one_read_per_write_and_can_be_turned_off(app, settings, engine, emulator, closing):
    """ENFORCER_VERIFY_WRITES=false skips the read-back (2 MFA reads become 1), and the decision says so."""
    unverified = make_worker(app, settings, engine, verify_writes=False)
    closing(unverified)
    alice, bob = emulator.users["fin.alice"], emulator.users["fin.bob"]
    enqueue(engine, alice)
    drain(unverified, engine)
    assert emulator.journal.count(GET_MFA) == 1
    [decision] = decisions_for_user(engine, alice)
    assert decision["action"] == "enforced" and "not read back" in decision["reason"]
    verified = make_worker(app, settings, engine)
    closing(verified)
    emulator.journal.clear()
    enqueue(engine, bob)
    drain(verified, engine)
    assert emulator.journal.count(GET_MFA) == 2


def test_a_write_whose_answer_was_lost_is_unknown_then_confirmed_by_the_next_read(
    app, settings, engine, emulator, closing
):
    """GenAuth applies the write after the client gave up on its answer. The trail says "write outcome unknown",
    then the retry's read finds SMS enabled and records it as enforced, never as "already compliant"."""
    worker = make_worker(app, settings, engine, genauth={"read_timeout": 0.4})
    closing(worker)
    alice = emulator.users["fin.alice"]
    emulator.faults.add("latency", path=SET_MFA, times=1, seconds=1.0)
    enqueue(engine, alice)
    worker.run_once()
    [unknown] = decisions_for_user(engine, alice)
    assert unknown["action"] == "unknown" and unknown["reason"].startswith("write outcome unknown")
    assert unknown["before"] == [] and unknown["after"] is None
    emulator.journal.wait_for(SET_MFA, timeout=10)  # GenAuth has applied it now
    drain(worker, engine)
    confirmed, _ = decisions_for_user(engine, alice)
    assert confirmed["action"] == "enforced" and "answer to the earlier write was lost" in confirmed["reason"]
    assert all("already compliant" not in d["reason"] for d in decisions_for_user(engine, alice))
    assert emulator.journal.count(SET_MFA) == 1


def test_a_write_whose_answer_was_lost_but_applied_is_confirmed_at_once(app, settings, engine, emulator, closing):
    """When the read after a lost answer already shows the change, the job ends enforced, in one attempt."""
    worker = make_worker(app, settings, engine, genauth={"read_timeout": 0.45})
    closing(worker)
    alice = emulator.users["fin.alice"]
    emulator.faults.add("latency", path=SET_MFA, times=1, seconds=0.5)
    emulator.faults.add("latency", path=GET_MFA, times=1, seconds=0)
    emulator.faults.add("latency", path=GET_MFA, times=1, seconds=0.3)
    enqueue(engine, alice)
    drain(worker, engine)
    [decision] = decisions_for_user(engine, alice)
    assert decision["action"] == "enforced" and decision["attempt"] == 1
    assert "answer to the write was lost" in decision["reason"]


def test_an_empty_mfa_read_for_an_existing_user_never_leads_to_a_write(worker, engine, emulator):
    """get-mfa-status answering data: null for a user get-user shows is a temporary error: retried, then
    dead-lettered; no replacement write without the user's token and factors is ever sent."""
    bob = emulator.users["fin.bob"]
    emulator.faults.add("null_data", path=GET_MFA, times=None)
    enqueue(engine, bob)
    drain(worker, engine)
    assert emulator.journal.count(SET_MFA) == 0
    [row] = work_rows(engine)
    assert row["state"] == "dead" and "GenAuthEmptyAnswerError" in row["last_error"]


def test_an_empty_mfa_read_once_is_retried_and_the_write_keeps_the_token(worker, engine, emulator):
    """After one empty answer the retry reads the real data and the write keeps its token and EMAIL."""
    bob = emulator.users["fin.bob"]
    token = emulator.state.get_mfa(bob)["mfaToken"]
    emulator.faults.add("null_data", path=GET_MFA, times=1)
    enqueue(engine, bob)
    drain(worker, engine)
    stored = emulator.state.get_mfa(bob)
    assert stored["mfaToken"] == token and enabled_factors(stored) == ("SMS", "EMAIL")
