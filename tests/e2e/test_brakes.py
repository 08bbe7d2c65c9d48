"""The brakes as operators use them (issue 15, parts 1 and 2): a change budget shared by every worker, held users
listed and released or discarded by hand, and a pause that every process honours within seconds.

Two ``Services`` (two processes, as far as the database can tell) run two worker threads each against the real
emulator, on SQLite and PostgreSQL; the commands run as subprocesses, as an operator would run them.
"""

from __future__ import annotations

import json
import time

import pytest

from service.enforcement.brakes import PAUSE_TTL
from service.store.decisions import decisions_for_user
from service.store.engine import create_engine, prepare_database
from tests.support.brakes import SET_MFA, add_finance_people, held_json, run_at_once, run_cli, workers, written_users
from tests.support.factories import enqueue
from tests.support.metrics import sample
from tests.support.processes import service_env
from tests.support.store import wait_for_empty_queue
from tests.support.waiting import wait_until

FINANCE_POLICY = "policies:\n  - name: finance-sms\n    match: {departments: [finance]}\n    require_mfa: [SMS]\n"
PEOPLE = 40


@pytest.fixture
def finance_policy(tmp_path):
    path = tmp_path / "policies.yaml"
    path.write_text(FINANCE_POLICY)
    return path


def prepared(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        prepare_database(engine)
    finally:
        engine.dispose()


def test_a_sweep_writes_exactly_the_budget_and_release_writes_the_rest_once(
    emulator, database_url, settings, finance_policy
):
    """ENFORCER_CHANGE_BUDGET=5/hour: a sweep of 40-odd Finance users missing SMS writes exactly 5 across four
    workers in two processes and holds the rest (``holds --json``); ``release --max 3`` lets 3 through, two
    ``release --all`` at once the rest, each user written once, outside the budget."""
    add_finance_people(emulator.state, PEOPLE)
    env = service_env(emulator, database_url, POLICY_FILE=str(finance_policy), GENAUTH_RATE_LIMIT="0")
    engine = create_engine(database_url)
    prepare_database(engine)
    try:
        with workers(settings, finance_policy):
            result = run_cli(env, "reconcile", "--wait", "--json", "--quiet")
            assert result.returncode == 0, result.stderr
            wait_for_empty_queue(engine, timeout=60)
            assert emulator.journal.count(SET_MFA) == 5
            shown = held_json(env)
            needing = 5 + shown["held"]
            assert needing >= PEOPLE  # the 40 and the sample users of Finance who lack SMS
            assert shown["per_rule"] == {"finance-sms": shown["held"]} and shown["per_cause"] == {
                "budget": shown["held"]
            }
            entry = shown["sample"][0]
            assert (
                entry["add"] == ["SMS"]
                and entry["rules"] == ["finance-sms"]
                and "change budget 5/hour" in entry["reason"]
            )
            held_decision = decisions_for_user(engine, entry["user_id"])[0]
            assert held_decision["action"] == "held" and held_decision["after"] == held_decision["before"]
            assert "held: change budget 5/hour spent (5 of 5" in held_decision["reason"]
            ready = run_cli(env, "holds")
            assert f"{shown['held']} user(s) held" in ready.stdout

            partial = run_cli(env, "holds", "release", "--max", "3", "--reason", "first three", "--json")
            assert partial.returncode == 0, partial.stderr
            assert json.loads(partial.stdout)["released"] == 3
            wait_until(lambda: emulator.journal.count(SET_MFA) == 8, timeout=30, what="3 released writes")

            answers = run_at_once(env, "holds", "release", "--all", "--reason", "ticket 42")
            counts = [answer["released"] for answer in answers]
            assert sum(counts) == needing - 8
            wait_until(lambda: emulator.journal.count(SET_MFA) == needing, timeout=60, what="every released write")
            wait_for_empty_queue(engine, timeout=60)
            wait_until(lambda: held_json(env)["held"] == 0, timeout=30, what="no holds left")
        assert set(written_users(emulator).values()) == {1} and len(written_users(emulator)) == needing
        assert held_json(env) | {"sample": []} == {
            "held": 0,
            "released_pending": 0,
            "paused": False,
            "per_rule": {},
            "per_cause": {},
            "sample": [],
        }
        nothing = run_cli(env, "holds", "release", "--all", "--reason", "again")
        assert (nothing.returncode, nothing.stdout.strip()) == (0, "no held users to release")
        trail = json.loads(run_cli(env, "audit", "--json").stdout)
        releases = [(r["action"], r["reason"], r["counts"]["users"]) for r in trail if r["action"] == "release"]
        assert releases[0] == ("release", "first three", 3)
        assert sorted(releases[1:3]) == sorted(("release", "ticket 42", n) for n in counts)
        assert releases[3] == ("release", "again", 0)
    finally:
        engine.dispose()


def test_discard_drops_the_holds_and_the_next_event_plans_them_again(emulator, database_url, settings, finance_policy):
    """With a budget of 1 a day, a second Finance user is held; discard drops the hold (nothing written), and the
    next delivery about that user is held again, re-planned."""
    env = service_env(emulator, database_url, POLICY_FILE=str(finance_policy))
    alice, bob = emulator.users["fin.alice"], emulator.users["fin.bob"]
    engine = create_engine(database_url)
    prepare_database(engine)
    pool = emulator.state.userpool_id
    try:
        with workers(settings, finance_policy, processes=1, threads=1, budget="1/day"):
            enqueue(engine, alice, pool=pool)
            wait_until(lambda: emulator.journal.count(SET_MFA) == 1, timeout=30, what="alice's write")
            enqueue(engine, bob, pool=pool)
            wait_until(lambda: held_json(env)["held"] == 1, timeout=30, what="bob held")
            dropped = run_cli(env, "holds", "discard", "--reason", "will redo after the freeze")
            assert (dropped.returncode, dropped.stdout.strip()) == (0, "discarded 1 held user(s)")
            discarded = json.loads(run_cli(env, "audit", "--json").stdout)[-1]
            assert (discarded["action"], discarded["reason"]) == ("discard", "will redo after the freeze")
            assert held_json(env)["held"] == 0
            enqueue(engine, bob, pool=pool)
            wait_until(lambda: held_json(env)["held"] == 1, timeout=30, what="bob held again")
            assert emulator.journal.count(SET_MFA) == 1
            assert [d["action"] for d in decisions_for_user(engine, bob)] == ["held", "held"]
    finally:
        engine.dispose()


def test_pause_stops_writes_on_every_process_within_seconds_and_resume_lets_them_through(
    app, emulator, database_url, settings, finance_policy
):
    """``pause`` reaches every process's workers within the pause cache; a delivery while paused is held
    (reason ``paused``), shown by ``/readyz``, ``/metrics``, ``holds`` and ``report``; ``resume`` puts it back
    on the queue and it is written, within the budget."""
    env = service_env(emulator, database_url, POLICY_FILE=str(finance_policy))
    alice = emulator.users["fin.alice"]
    engine = create_engine(database_url)
    prepare_database(engine)
    try:
        with workers(settings, finance_policy, processes=2, threads=1, budget="500/hour") as running:
            paused = run_cli(env, "pause", "--reason", "incident 7", "--actor", "ops@example")
            assert (paused.returncode, paused.stdout.strip()) == (
                0,
                "writes paused: every process stops writing within seconds",
            ), paused.stderr
            started = time.monotonic()
            wait_until(
                lambda: all(w.reconciler.brakes.pause_state().paused for w in running),
                timeout=PAUSE_TTL + 1,
                what="every process to see the pause",
            )
            assert time.monotonic() - started <= PAUSE_TTL + 1
            assert run_cli(env, "pause", "--reason", "again").stdout.strip() == "writes were already paused"
            enqueue(engine, alice, pool=emulator.state.userpool_id)
            wait_until(lambda: held_json(env)["held"] == 1, timeout=30, what="alice held by the pause")
            assert emulator.journal.count(SET_MFA) == 0
            decision = decisions_for_user(engine, alice)[0]
            assert decision["action"] == "held" and "held: writes are paused (incident 7)" in decision["reason"]
            shown = held_json(env)
            assert shown["paused"] is True and shown["per_cause"] == {"paused": 1}
            checks = app.test_client().get("/readyz").get_json()["checks"]
            assert (checks["paused"], checks["holding"], checks["paused_reason"]) == (True, 1, "incident 7")
            assert app.test_client().get("/readyz").status_code == 200
            metrics = app.test_client().get("/metrics").get_data(as_text=True)
            assert sample(metrics, "mfa_enforcer_writes_paused") == 1.0
            assert sample(metrics, "mfa_enforcer_held_users") == 1.0
            report = run_cli(env, "report", "--format", "json")
            assert json.loads(report.stdout)["brakes"] == {"paused": True, "held": 1}
            assert "Writes are PAUSED" in run_cli(env, "report").stdout

            resumed = run_cli(env, "resume", "--reason", "incident over")
            assert resumed.stdout.strip() == "writes resumed; 1 held user(s) back on the queue", resumed.stderr
            emulator.journal.wait_for(SET_MFA, count=1, timeout=PAUSE_TTL + 20)
            wait_until(lambda: held_json(env)["held"] == 0, timeout=30, what="the hold to clear")
            assert decisions_for_user(engine, alice)[0]["action"] == "enforced"
            assert app.test_client().get("/readyz").get_json()["checks"]["paused"] is False
            assert run_cli(env, "resume", "--reason", "x").stdout.strip() == "writes were not paused"
            trail = json.loads(run_cli(env, "audit", "--json").stdout)
            assert [(r["action"], r["actor"], r["reason"]) for r in trail if r["action"] in ("pause", "resume")] == [
                ("pause", "ops@example", "incident 7"),
                ("resume", trail[-1]["actor"], "incident over"),
            ]
    finally:
        engine.dispose()


@pytest.mark.parametrize(
    "args",
    [
        ("pause",),
        ("resume",),
        ("holds", "release", "--all"),
        ("holds", "discard"),
        ("holds", "release", "--all", "--reason", "  "),
    ],
)
def test_a_missing_reason_is_refused_in_one_line(emulator, database_url, args):
    result = run_cli(service_env(emulator, database_url), *args)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "--reason TEXT is required" in lines[0]


def test_release_says_which_users_and_a_bad_budget_stops_the_worker(emulator, database_url):
    env = service_env(emulator, database_url)
    prepared(database_url)
    unscoped = run_cli(env, "holds", "release", "--reason", "x")
    assert unscoped.returncode == 2 and "say which: --all, --max N or --rule R" in unscoped.stderr
    assert run_cli(env, "holds", "release", "--rule", "nope", "--reason", "x").stdout.strip() == (
        "no held users to release under rule nope"
    )
    bad = run_cli({**env, "ENFORCER_CHANGE_BUDGET": "lots"}, "worker", timeout=60)
    assert bad.returncode == 1 and "ENFORCER_CHANGE_BUDGET='lots' is not a budget" in bad.stderr


def test_holds_list_is_empty_on_a_fresh_database(emulator, database_url):
    env = service_env(emulator, database_url)
    prepared(database_url)
    assert run_cli(env, "holds").stdout.strip() == "no users held"
