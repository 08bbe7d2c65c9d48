"""`mfa-enforcer reconcile` as operators run it: a subprocess against the emulator with thousands of users and a
worker draining the sweep's pages, on SQLite and PostgreSQL. Counts are exact, GenAuth calls grow with the users
in scope (no `get-user` for a listed user), a re-run joins the running sweep and no page is read twice, a second
sweep is refused, the dry run writes nothing, and the worker enforces through the one path."""

from __future__ import annotations

import json
import os
import pty
import signal
import subprocess
import sys
import time
from collections import Counter
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import pytest
import sqlalchemy as sa

from service.policy.loading import load_policy
from service.services import Services
from service.store.engine import create_engine, prepare_database
from service.store.tables import decisions, work
from service.worker.loop import start_in_thread
from service.worker.sweeping import begin_sweep
from tests.support.values import WEBHOOK_SECRET

BIN = Path(sys.executable).parent
MEMBERS = "/api/v3/list-department-members"
USERS = "/api/v3/list-users"
SET_MFA = "/api/v3/set-mfa-status"
GET_USER = "/api/v3/get-user"
GET_MFA = "/api/v3/get-mfa-status"
FINANCE_POLICY = "policies:\n  - name: finance-sms\n    match: {departments: [finance]}\n    require_mfa: [SMS]\n"
TWO_RULES = FINANCE_POLICY + (
    "  - name: corp-email\n    match: {email_domains: [corp.example]}\n    require_mfa: [EMAIL]\n"
)


def cli_env(emulator, database_url, policy_file, **extra):
    env = {key: value for key, value in os.environ.items() if not key.startswith(("GENAUTH_", "ENFORCER_"))}
    env.update(
        GENAUTH_HOST=emulator.url,
        GENAUTH_ACCESS_KEY_ID=emulator.state.access_key_id,
        GENAUTH_ACCESS_KEY_SECRET=emulator.state.access_key_secret,
        GENAUTH_WEBHOOK_SECRET=WEBHOOK_SECRET,
        GENAUTH_USERPOOL_ID=emulator.state.userpool_id,
        GENAUTH_RATE_LIMIT="0",
        DATABASE_URL=database_url,
        POLICY_FILE=str(policy_file),
        ENFORCER_MIGRATE_ON_START="true",
        ENFORCER_BACKOFF_BASE="0.01",
    )
    env.update(extra)
    return env


def run_cli(env, *args, timeout=60):
    return subprocess.run(
        [str(BIN / "mfa-enforcer"), *args], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def add_people(state, count, department, prefix, domain="acme.example"):
    for i in range(count):
        state.add_user(username=f"{prefix}{i}", email=f"{prefix}{i}@{domain}", departments=[department])


def pages(emulator, path):
    numbers = []
    for entry in emulator.journal.entries(path):
        numbers.append(int(entry.query["page"][0]) if entry.query else entry.body["options"]["pagination"]["page"])
    return Counter(numbers)


def work_rows(database_url):
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            return connection.execute(sa.select(work.c.user_id, work.c.reason)).all()
    finally:
        engine.dispose()


@pytest.fixture
def finance_policy(tmp_path):
    path = tmp_path / "policies.yaml"
    path.write_text(FINANCE_POLICY)
    return path


@contextmanager
def running_worker(settings, policy_file):
    """A worker thread (no rate limit) draining the database the CLI uses, with the policy of ``policy_file``."""
    engine = create_engine(settings.database_url)
    prepare_database(engine)
    policy = load_policy(policy_file)
    fast = replace(settings, genauth=replace(settings.genauth, rate_limit=0))
    worker = Services(fast, engine).worker(lambda: policy, sweeps=False)
    thread = start_in_thread(worker)
    try:
        yield worker
    finally:
        worker.stop()
        thread.join(30)
        worker.reconciler.client.close()
        engine.dispose()


def test_reconcile_sweeps_exactly_the_users_in_scope_at_a_cost_proportional_to_them(
    emulator, database_url, settings, finance_policy
):
    """1,504 Finance users in a 3,500-user pool: each decided once, from 31 member pages read once, with no user
    listing and no get-user; --wait follows the sweep with plain progress lines off a terminal."""
    add_people(emulator.state, 1300, "finance", "f")
    add_people(emulator.state, 200, "finance-payroll", "p")
    add_people(emulator.state, 2000, "engineering", "e")
    emulator.journal.clear()
    with running_worker(settings, finance_policy):
        result = run_cli(cli_env(emulator, database_url, finance_policy), "reconcile", "--wait", "--json", timeout=300)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert (summary["in_scope"], summary["listed"], summary["finished"]) == (1504, 1504, True)
    assert summary["rules"] == {"finance-sms": {"in_scope": 1504}}
    assert summary["waited"]["decided"] == 1504 and summary["waited"]["failed"] == 0
    assert pages(emulator, MEMBERS) == Counter(range(1, 32))
    assert emulator.journal.count(USERS) == 0 and emulator.journal.count(GET_USER) == 0
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            triggers = Counter(connection.execute(sa.select(decisions.c.user_id, decisions.c.trigger)).all())
    finally:
        engine.dispose()
    assert len(triggers) == 1504 and set(triggers.values()) == {1}
    assert {trigger for _, trigger in triggers} == {"reconcile"}
    assert work_rows(database_url) == []
    assert "reconcile: " in result.stderr  # plain progress lines off a terminal


def test_rules_without_departments_page_through_the_pool_and_users_are_counted_once(
    emulator, database_url, settings, tmp_path
):
    """A pool-wide rule pages list-users exactly; a user in scope of two rules is decided and counted once."""
    add_people(emulator.state, 400, "engineering", "c", domain="corp.example")
    add_people(emulator.state, 100, "finance", "k", domain="corp.example")
    policy = tmp_path / "policies.yaml"
    policy.write_text(TWO_RULES)
    emulator.journal.clear()
    with running_worker(settings, policy):
        result = run_cli(cli_env(emulator, database_url, policy), "reconcile", "--wait", "--json", "--quiet")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    pool = len(emulator.state.user_ids())
    assert summary["in_scope"] == summary["waited"]["decided"] == pool == 506
    assert summary["rules"] == {"finance-sms": {"in_scope": 104}, "corp-email": {"in_scope": pool}}
    assert pages(emulator, USERS) == Counter(range(1, 12)) and pages(emulator, MEMBERS) == Counter(range(1, 4))
    assert emulator.journal.count(GET_USER) == 0
    assert result.stderr == ""


def test_rule_option_limits_the_sweep_and_unknown_rules_are_listed(emulator, database_url, settings, tmp_path):
    """--rule sweeps one rule's scope; an unknown name fails (exit 2) naming the rules there are."""
    policy = tmp_path / "policies.yaml"
    policy.write_text(TWO_RULES)
    env = cli_env(emulator, database_url, policy)
    with running_worker(settings, policy):
        result = run_cli(env, "reconcile", "--rule", "finance-sms", "--wait", "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert (summary["scope"], summary["in_scope"]) == ("finance-sms", 4) and emulator.journal.count(USERS) == 0
    wrong = run_cli(env, "reconcile", "--rule", "nope")
    assert wrong.returncode == 2
    assert "no rule named 'nope'; the rules are: finance-sms, corp-email" in wrong.stderr


def test_ctrl_c_stops_waiting_and_the_next_run_joins_the_sweep_without_redoing_pages(
    emulator, database_url, settings, finance_policy
):
    """SIGINT while --wait follows exits 130 and leaves the sweep to the worker; a re-run joins the same sweep,
    a worker stopped mid-sweep carries on where it was, and each page is read once across it all."""
    add_people(emulator.state, 1000, "finance", "f")
    env = cli_env(emulator, database_url, finance_policy)
    emulator.faults.latency = 0.01
    with running_worker(settings, finance_policy):
        process = subprocess.Popen(
            [str(BIN / "mfa-enforcer"), "reconcile", "--wait", "--json"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            emulator.journal.wait_for(MEMBERS, count=4, timeout=60)
            process.send_signal(signal.SIGINT)
            out, err = process.communicate(timeout=30)
        finally:
            if process.poll() is None:
                process.kill()
    # The worker stopped too (mid-sweep): the page it held went back to the queue.
    assert process.returncode == 130, err
    first = json.loads(out)
    assert first["interrupted"] is True and first["finished"] is False
    assert first["in_scope"] < 1004 and "Traceback" not in err
    emulator.faults.latency = 0.0
    with running_worker(settings, finance_policy):
        again = run_cli(env, "reconcile", "--wait", "--json", "--quiet", timeout=300)
    assert again.returncode == 0, again.stderr
    second = json.loads(again.stdout)
    assert second["resumed"] is True and second["sweep_id"] == first["sweep_id"]
    assert second["in_scope"] == second["waited"]["decided"] == 1004
    read = pages(emulator, MEMBERS)  # the page the stopped worker held is read again, no other one
    assert set(read) == set(range(1, 22)) and sum(read.values()) <= 21 + 1
    fresh = json.loads(run_cli(env, "reconcile", "--json", "--quiet").stdout)
    assert fresh["resumed"] is False and fresh["sweep_id"] != first["sweep_id"]  # a finished sweep is not joined


def test_a_second_sweep_is_refused_while_another_runs(emulator, database_url, settings, finance_policy, tmp_path):
    """While a sweep of another scope runs, reconcile exits 4 with a clear message and starts nothing."""
    engine = create_engine(database_url)
    prepare_database(engine)
    policy = load_policy(finance_policy)
    fast = replace(settings, genauth=replace(settings.genauth, rate_limit=0))
    client = Services(fast, engine).genauth()
    try:
        other = begin_sweep(
            engine, client, policy.rules, scope="finance-sms", userpool_id=settings.pool_key, now=time.time()
        )
        result = run_cli(cli_env(emulator, database_url, finance_policy), "reconcile")
    finally:
        client.close()
        engine.dispose()
    assert result.returncode == 4
    assert "another reconcile sweep is running" in result.stderr and f"#{other.sweep.id}" in result.stderr
    assert "Traceback" not in result.stderr
    assert [kind for _, kind in work_rows(database_url)] == ["reconcile"]  # only the other sweep's first page
    assert emulator.journal.count(MEMBERS) == 0


def test_genauth_failing_while_planning_exits_1_and_starts_nothing(emulator, database_url, finance_policy):
    """When GenAuth fails while the listings are planned, reconcile exits 1 in one line; a re-run starts it."""
    env = cli_env(emulator, database_url, finance_policy)
    emulator.faults.add("status_500", path="/api/v3/list-organizations", times=None)
    result = run_cli(env, "reconcile")
    assert result.returncode == 1
    assert "reconcile failed before it started" in result.stderr and "Traceback" not in result.stderr
    assert work_rows(database_url) == []
    emulator.faults.clear()
    again = run_cli(env, "reconcile", "--json", "--quiet")
    assert again.returncode == 0 and json.loads(again.stdout)["finished"] is False


def test_dry_run_evaluates_and_prints_the_plan_without_writing(emulator, database_url, finance_policy, tmp_path):
    """--dry-run counts compliant, to-enforce and unsatisfiable users; nothing is enqueued or written anywhere."""
    result = run_cli(cli_env(emulator, database_url, finance_policy), "reconcile", "--dry-run", "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    counts = {key: summary[key] for key in ("in_scope", "compliant", "to_enforce", "unsatisfiable", "exempt", "failed")}
    # fin.alice and fin.bob need SMS, fin.carol has no phone, fin.frank already has SMS.
    assert counts == {"in_scope": 4, "compliant": 1, "to_enforce": 2, "unsatisfiable": 1, "exempt": 0, "failed": 0}
    assert summary["rules"]["finance-sms"]["to_enforce"] == 2 and summary["enqueued"] == 0
    planned = {change["user_id"]: change["outcome"] for change in summary["changes"]}
    users = emulator.users
    assert planned == {
        users["fin.alice"]: "to_enforce",
        users["fin.bob"]: "to_enforce",
        users["fin.carol"]: "unsatisfiable",
    }
    assert emulator.journal.count(SET_MFA) == 0 and emulator.journal.count(GET_USER) == 0
    engine = create_engine(database_url)
    try:
        assert not sa.inspect(engine).has_table("work")  # the dry run never even prepared the database
    finally:
        engine.dispose()
    human = run_cli(cli_env(emulator, database_url, finance_policy), "reconcile", "--dry-run")
    assert "Dry run finished: nothing was enqueued or written." in human.stdout
    assert "to enforce" in human.stdout and users["fin.carol"] in human.stdout


def test_reconcile_then_the_worker_enforces_through_the_one_path(emulator, database_url, settings, finance_policy):
    """reconcile starts the sweep; the worker's ordinary run reads its page and records a decision per user,
    triggered by reconcile."""
    result = run_cli(cli_env(emulator, database_url, finance_policy), "reconcile", "--quiet")
    assert result.returncode == 0, result.stderr
    assert "Sweep #1 started" in result.stdout and "the worker lists and reconciles" in result.stdout
    engine = create_engine(database_url)
    policy = load_policy(finance_policy)
    worker = Services(settings, engine).worker(lambda: policy)
    try:
        assert worker.run_until_idle() == 1  # one page
        with engine.connect() as connection:
            rows = connection.execute(sa.select(decisions.c.trigger, decisions.c.action)).all()
    finally:
        worker.reconciler.client.close()
        engine.dispose()
    assert Counter(rows) == Counter(
        {("reconcile", "enforced"): 2, ("reconcile", "unsatisfiable"): 1, ("reconcile", "none"): 1}
    )
    assert emulator.journal.count(SET_MFA) == 2


def test_genauth_calls_per_user_in_a_sweep(emulator, database_url, settings, tmp_path):
    """200 users under a pool-wide rule, half already compliant: the dry run costs a page share and the MFA read
    per user (<= 1.1 calls each), the enforcing sweep adds only the write path of the users it changes; no user
    is read with get-user."""
    policy = tmp_path / "policies.yaml"
    policy.write_text(
        "policies:\n  - name: corp\n    match: {email_domains: [corp.example]}\n    require_mfa: [EMAIL]\n"
    )
    start = len(emulator.state.user_ids())
    emulator.state.add_users(
        {"username": f"c{i}", "email": f"c{i}@corp.example", "application_mfa": ["EMAIL"] if i % 2 else []}
        for i in range(200 - start)
    )
    env = cli_env(emulator, database_url, policy)
    emulator.journal.clear()
    dry = run_cli(env, "reconcile", "--dry-run", "--json")
    assert dry.returncode == 0, dry.stderr
    in_scope = json.loads(dry.stdout)["in_scope"]
    assert in_scope == 200
    dry_calls = len(emulator.journal.entries())
    assert emulator.journal.count(GET_USER) == 0 and pages(emulator, USERS) == Counter(range(1, 5))
    assert dry_calls / in_scope <= 1.1, f"{dry_calls} calls for {in_scope} users in the dry run"
    emulator.journal.clear()
    with running_worker(settings, policy):
        result = run_cli(env, "reconcile", "--wait", "--json", "--quiet")
    assert result.returncode == 0, result.stderr
    writes = emulator.journal.count(SET_MFA)
    calls = len(emulator.journal.entries())
    assert emulator.journal.count(GET_USER) == 0 and pages(emulator, USERS) == Counter(range(1, 5))
    assert 0 < writes < in_scope
    # Per user: one MFA read; per write, the write and its read-back (and, until it goes, the re-read before it).
    write_path = writes + (emulator.journal.count(GET_MFA) - in_scope)
    assert write_path <= 3 * writes
    assert (calls - write_path) / in_scope <= 1.1, f"{calls} calls ({write_path} writing) for {in_scope} users"


def test_on_a_terminal_progress_is_a_bar_with_count_rate_and_eta(emulator, database_url, settings, finance_policy):
    """With stderr on a terminal, reconcile --wait redraws one bar line with the count, rate and ETA."""
    add_people(emulator.state, 300, "finance", "f")
    emulator.faults.latency = 0.01  # slow enough for the bar to be drawn more than once
    controller, terminal = pty.openpty()
    try:
        with running_worker(settings, finance_policy):
            process = subprocess.Popen(
                [str(BIN / "mfa-enforcer"), "reconcile", "--wait", "--json"],
                env=cli_env(emulator, database_url, finance_policy),
                stdout=subprocess.PIPE,
                stderr=terminal,
                text=True,
            )
            os.close(terminal)
            out, _ = process.communicate(timeout=120)
        drawn = b""
        while True:
            try:
                chunk = os.read(controller, 65536)
            except OSError:
                break
            if not chunk:
                break
            drawn += chunk
    finally:
        os.close(controller)
    assert process.returncode == 0 and json.loads(out)["in_scope"] == 304
    text = drawn.decode()
    assert "\r[" in text and "/304 listed" in text and "users/s" in text and "ETA" in text
