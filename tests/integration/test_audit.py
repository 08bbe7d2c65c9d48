"""The audit trail: every operator action and policy change leaves exactly one record (and one log line) with
who, what, why, scope and counts; a policy edit that every process reloads is recorded once."""

from __future__ import annotations

import getpass
import json
import logging
import multiprocessing
import shutil
import socket
import threading
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from service.cli import main
from service.intake.admin import audit_actor
from service.policy import parse_policy
from service.policy_source import PolicySource, policy_change
from service.services import open_engine
from service.store.audit import (
    POLICY_FILE,
    POLICY_RELOAD,
    RECONCILE,
    REPLAY,
    admin_api_actor,
    audit_records,
    operator,
    record,
)
from service.store.retention import prune_history
from service.store.snapshots import PolicySnapshots
from service.store.tables import audit, work
from tests.support.processes import service_env
from tests.support.values import ADMIN_TOKEN, ROOT

USER_ID = "65a1f0c2e4b0a1b2c3d4e5f6"
OTHER_RULES = """version: 1
policies:
  - name: finance-sms
    mode: audit
    match: {departments: [finance]}
    require_mfa: [SMS]
  - name: sales-otp
    match: {departments: [sales]}
    require_mfa: [OTP]
"""


@pytest.fixture
def db(database_url):
    engine = open_engine(database_url, migrate=True)
    yield engine
    engine.dispose()


@pytest.fixture
def runner():
    return CliRunner()


def env_for(database_url, emulator=None, **extra):
    if emulator is not None:
        return service_env(emulator, database_url, **extra)
    return {"DATABASE_URL": database_url, **extra}


def records_of(engine, action=None):
    return [entry for entry in audit_records(engine) if action is None or entry.action == action]


def audit_lines(caplog):
    return [line for line in caplog.records if line.getMessage() == "audit_record"]


# -- replay -------------------------------------------------------------------------------------------------


def test_replay_leaves_one_record_with_its_reason_actor_scope_and_count_and_one_log_line(
    runner, db, database_url, caplog
):
    caplog.set_level(logging.INFO, logger="service.store.audit")
    arguments = ["replay", "--user", USER_ID, "--reason", "INC-42: GenAuth was down", "--actor", "alice"]
    result = runner.invoke(main, arguments, env=env_for(database_url))
    assert result.exit_code == 0, result.output
    [entry] = records_of(db)
    assert (entry.action, entry.actor, entry.reason) == (REPLAY, "alice", "INC-42: GenAuth was down")
    assert entry.scope == {"all": False, "users": [USER_ID], "since": None, "until": None}
    assert entry.counts == {"enqueued": 1}
    assert time.time() - entry.at < 60
    [line] = audit_lines(caplog)
    assert line.fields == entry.as_dict()  # type: ignore[attr-defined]


@pytest.mark.parametrize("reason", [None, "   "])
def test_replay_without_a_reason_is_refused_in_one_line_and_changes_nothing(runner, db, database_url, reason):
    arguments = ["replay", "--user", USER_ID] + ([] if reason is None else ["--reason", reason])
    result = runner.invoke(main, arguments, env=env_for(database_url))
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        "Error: replay needs --reason TEXT: say why, it is kept in the audit trail"
    ]
    assert records_of(db) == []
    with db.connect() as connection:
        assert connection.execute(sa.select(sa.func.count()).select_from(work)).scalar_one() == 0


def test_a_dry_run_replay_needs_no_reason_and_leaves_no_record(runner, db, database_url):
    result = runner.invoke(main, ["replay", "--user", USER_ID, "--dry-run"], env=env_for(database_url))
    assert result.exit_code == 0, result.output
    assert records_of(db) == []


def test_the_actor_is_the_os_user_at_the_host_unless_given():
    assert operator() == f"{getpass.getuser()}@{socket.gethostname()}"
    assert operator("  bob  ") == "bob"
    assert operator("") == operator()


# -- reconcile ----------------------------------------------------------------------------------------------


def test_reconcile_records_its_start_once_with_scope_and_dry_run(runner, emulator, database_url, db):
    env = env_for(database_url, emulator)
    result = runner.invoke(main, ["reconcile", "--quiet", "--reason", "weekly check", "--actor", "ops"], env=env)
    assert result.exit_code == 0, result.output
    dry = runner.invoke(main, ["reconcile", "--dry-run", "--quiet", "--rule", "finance-sms"], env=env)
    assert dry.exit_code == 0, dry.output
    sweep, dry_run = records_of(db)
    assert (sweep.action, sweep.actor, sweep.reason) == (RECONCILE, "ops", "weekly check")
    assert sweep.scope["rule"] == "*" and sweep.scope["dry_run"] is False and sweep.scope["sweep_id"] >= 1
    assert sweep.counts["joined"] is False
    assert (dry_run.action, dry_run.actor, dry_run.reason) == (RECONCILE, operator(), "")
    assert dry_run.scope == {"rule": "finance-sms", "dry_run": True}


# -- policy changes -----------------------------------------------------------------------------------------


def test_policy_change_names_rules_added_removed_changed_and_mode_switches():
    before = parse_policy((ROOT / "config" / "policies.yaml").read_text()).rules
    after = parse_policy(OTHER_RULES).rules
    scope, counts = policy_change(before, after)
    assert scope == {
        "added": ["sales-otp"],
        "removed": ["finance-partners-sms"],
        "changed": ["finance-sms"],
        "modes": {"finance-sms": "enforce->audit"},
    }
    assert counts == {"rules": 2, "added": 1, "removed": 1, "changed": 1}
    assert policy_change(after, after)[1] == {"rules": 2, "added": 0, "removed": 0, "changed": 0}


def test_a_policy_edit_that_several_processes_reload_at_once_is_recorded_once(database_url, db, tmp_path, caplog):
    """Four sources on their own engines (four processes' worth) see each of three edits at the same moment:
    each edit is one record, with the digests before and after and what changed."""
    caplog.set_level(logging.INFO, logger="service.store.audit")
    path = tmp_path / "policies.yaml"
    shutil.copy(ROOT / "config" / "policies.yaml", path)
    engines = [open_engine(database_url) for _ in range(4)]
    try:
        sources = [PolicySource(path, check_interval=0, snapshots=PolicySnapshots(e), strict=False) for e in engines]
        [first] = records_of(db)
        assert (first.action, first.actor, first.reason) == (POLICY_RELOAD, POLICY_FILE, "first policy loaded")
        assert first.scope["digest_before"] is None and first.counts["rules"] == 2
        assert first.scope["added"] == ["finance-sms", "finance-partners-sms"]

        enforcing = OTHER_RULES.replace("mode: audit", "mode: enforce")
        edits = [OTHER_RULES, enforcing, enforcing + "\n"]
        for text in edits:
            path.write_text(text)
            barrier = threading.Barrier(len(sources))

            def reload(source, barrier=barrier):
                barrier.wait()
                source.current()

            threads = [threading.Thread(target=reload, args=(source,)) for source in sources]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=30)
        changes = records_of(db, POLICY_RELOAD)
        assert len(changes) == 1 + len(edits), [entry.scope for entry in changes]
        second, third, fourth = changes[1:]
        assert second.scope["digest_before"] == first.scope["digest_after"]
        assert (second.scope["added"], second.scope["removed"], second.scope["changed"]) == (
            ["sales-otp"],
            ["finance-partners-sms"],
            ["finance-sms"],
        )
        assert second.scope["modes"] == {"finance-sms": "enforce->audit"}
        assert third.scope["changed"] == ["finance-sms"] and third.scope["modes"] == {"finance-sms": "audit->enforce"}
        assert fourth.counts == {"rules": 2, "added": 0, "removed": 0, "changed": 0}  # new bytes, same rules
        assert fourth.scope["digest_before"] == third.scope["digest_after"] != fourth.scope["digest_after"]
        assert len([line for line in audit_lines(caplog) if line.fields["action"] == POLICY_RELOAD]) == 4  # type: ignore[attr-defined]
    finally:
        for engine in engines:
            engine.dispose()


def _load_policy_in_a_process(database_url: str, path: str, start: object) -> None:
    start.wait(30)  # type: ignore[attr-defined]
    engine = open_engine(database_url)
    try:
        PolicySource(Path(path), snapshots=PolicySnapshots(engine), strict=False)
    finally:
        engine.dispose()


def test_two_processes_starting_on_a_new_policy_record_it_once(database_url, db, tmp_path):
    path = tmp_path / "policies.yaml"
    shutil.copy(ROOT / "config" / "policies.yaml", path)
    PolicySource(path, snapshots=PolicySnapshots(db), strict=False)
    path.write_text(OTHER_RULES)
    context = multiprocessing.get_context("spawn")
    start = context.Event()
    processes = [
        context.Process(target=_load_policy_in_a_process, args=(database_url, str(path), start)) for _ in range(2)
    ]
    for process in processes:
        process.start()
    start.set()
    for process in processes:
        process.join(60)
        assert process.exitcode == 0
    changes = records_of(db, POLICY_RELOAD)
    assert [entry.reason for entry in changes] == ["first policy loaded", "the policy file changed"]
    assert changes[1].scope["added"] == ["sales-otp"]


# -- reading the trail --------------------------------------------------------------------------------------


def test_audit_json_lists_records_since_a_time_oldest_first(runner, db, database_url):
    now = time.time()
    record(db, REPLAY, reason="old", actor="a", at=now - 3 * 86400)
    record(db, REPLAY, reason="recent", actor="b", scope={"all": True}, counts={"enqueued": 3}, at=now - 3600)
    record(db, RECONCILE, reason="", actor="c", at=now)
    result = runner.invoke(main, ["audit", "--since", "2d", "--json"], env=env_for(database_url))
    assert result.exit_code == 0, result.output
    listed = json.loads(result.output)
    assert [(item["actor"], item["action"], item["reason"]) for item in listed] == [
        ("b", "replay", "recent"),
        ("c", "reconcile", ""),
    ]
    assert listed[0]["at"] == time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 3600))
    assert listed[0]["scope"] == {"all": True} and listed[0]["counts"] == {"enqueued": 3}
    text = runner.invoke(main, ["audit"], env=env_for(database_url))
    assert text.exit_code == 0 and "a  replay: old" in text.output and "(enqueued 3)" in text.output


def test_audit_refuses_a_since_that_is_no_time_in_one_line(runner, db, database_url):
    result = runner.invoke(main, ["audit", "--since", "yesterday"], env=env_for(database_url))
    assert result.exit_code == 2
    [line] = result.output.strip().splitlines()
    assert line.startswith("Error: --since: 'yesterday' is not a time")


def test_retention_never_prunes_the_audit_trail(db):
    record(db, REPLAY, reason="long ago", actor="a", at=1.0)
    prune_history(db, older_than=time.time() + 86400)
    with db.connect() as connection:
        assert connection.execute(sa.select(sa.func.count()).select_from(audit)).scalar_one() == 1


# -- the admin API ------------------------------------------------------------------------------------------


def test_the_admin_api_is_named_by_a_fingerprint_of_its_token_never_the_token(app):
    actor = admin_api_actor(ADMIN_TOKEN)
    assert actor.startswith("admin-api:") and len(actor) == len("admin-api:") + 12
    assert ADMIN_TOKEN not in actor and admin_api_actor(ADMIN_TOKEN + "x") != actor
    with app.test_request_context("/api/report", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}):
        assert audit_actor() == actor
