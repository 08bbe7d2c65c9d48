"""What one job costs in GenAuth calls, counted from the emulator's journal: a login reads the user (with its
department ids) and the MFA data in one round trip, departments come from the cached organisation tree, and
an enforcing write adds only the write and its read-back."""

from __future__ import annotations

import time

from service.enforcement.facts import department_from_api, user_flags
from service.enforcement.organisation import OrganisationTree
from service.genauth import users
from service.genauth.client import GenAuthClient
from service.intake.context import EXTENSION
from service.services import Services
from service.store.decisions import decisions_for_user
from service.store.inbox import Delivery, record_delivery
from service.store.subjects import DEPARTMENT, Subject
from tests.support.factories import enqueue

GET_USER = "/api/v3/get-user"
GET_MFA = "/api/v3/get-mfa-status"
SET_MFA = "/api/v3/set-mfa-status"
USER_DEPARTMENTS = "/api/v3/get-user-departments"
ORGANIZATIONS = "/api/v3/list-organizations"
ALL_DEPARTMENTS = "/api/v3/get-all-departments"
TOKEN = "/api/v3/get-management-token"


def calls(emulator):
    """Every management call the journal holds (the token request excluded), as ``METHOD path``."""
    return [f"{entry.method} {entry.path}" for entry in emulator.journal.entries() if entry.path != TOKEN]


def warmed(worker, engine, emulator):
    """Run one job so the token and the organisation tree are loaded, then forget the calls it made."""
    enqueue(engine, emulator.users["eng.dave"])
    worker.run_until_idle()
    assert worker.reconciler.tree.loads == 1
    assert worker.reconciler.layers.loads == 1, "the pool's MFA settings are read once per process, not per job"
    emulator.journal.clear()


def test_a_compliant_login_costs_two_reads_and_no_write(worker, engine, emulator):
    """Frank (Finance, SMS on): get-user with its department ids and get-mfa-status, nothing else."""
    warmed(worker, engine, emulator)
    frank = emulator.users["fin.frank"]
    enqueue(engine, frank)
    worker.run_until_idle()
    assert sorted(calls(emulator)) == [f"GET {GET_MFA}", f"GET {GET_USER}"]
    [read] = emulator.journal.entries(GET_USER)
    assert read.query.get("withDepartmentIds") == ["true"]
    [decision] = decisions_for_user(engine, frank)
    assert decision["rules"] == ["finance-sms"] and decision["reason"].endswith("already compliant.")


def test_a_non_compliant_login_costs_two_reads_the_write_and_its_read_back(worker, engine, emulator):
    """Alice (Finance, no factor): the two reads at once, then set-mfa-status and the verifying read."""
    warmed(worker, engine, emulator)
    alice = emulator.users["fin.alice"]
    enqueue(engine, alice)
    worker.run_until_idle()
    made = calls(emulator)
    assert sorted(made[:2]) == [f"GET {GET_MFA}", f"GET {GET_USER}"]
    assert made[2:] == [f"POST {SET_MFA}", f"GET {GET_MFA}"]
    [decision] = decisions_for_user(engine, alice)
    assert decision["action"] == "enforced" and decision["after"] == ["SMS"]


def test_the_first_job_loads_the_tree_with_one_listing_per_organisation(worker, engine, emulator):
    """The tree costs list-organizations and one get-all-departments for ACME, once for the process."""
    for username in ("eng.dave", "fin.bob"):
        enqueue(engine, emulator.users[username])
        worker.run_until_idle()
    assert emulator.journal.count(ORGANIZATIONS) == 1
    assert emulator.journal.count(ALL_DEPARTMENTS) == 1
    assert worker.reconciler.tree.loads == 1 and worker.reconciler.tree.calls == 2


def test_a_department_rule_matches_through_an_ancestor_in_the_cached_tree(worker, engine, emulator):
    """Bob is in Payroll, under Finance: finance-sms matches him through the tree, without
    get-user-departments."""
    warmed(worker, engine, emulator)
    bob = emulator.users["fin.bob"]
    enqueue(engine, bob)
    worker.run_until_idle()
    assert emulator.journal.count(USER_DEPARTMENTS) == 0
    [decision] = decisions_for_user(engine, bob)
    assert decision["rules"] == ["finance-sms"]
    assert "via ancestor" in decision["reason"]


def test_the_tree_gives_every_user_the_departments_get_user_departments_gives(worker, emulator):
    """For every sample user, the facts built from departmentIds and the tree equal those the per-user
    listing gives: same departments, codes, names, organisation and ancestor paths."""
    client = worker.reconciler.client
    tree = OrganisationTree()
    for username, user_id in emulator.users.items():
        record = users.get_user(client, user_id, flags=["withDepartmentIds"])
        found = tree.departments(client, record["departmentIds"]).departments
        listed = tuple(department_from_api(item) for item in users.list_user_departments(client, user_id))
        assert found == listed, username
    assert tree.loads == 1


def test_user_flags_ask_for_department_ids_when_a_rule_names_departments(app):
    assert "withDepartmentIds" in user_flags(app.extensions[EXTENSION].policies.current())


def test_a_department_unknown_to_the_tree_reloads_it_once(worker, engine, emulator):
    """Treasury is created under Finance after the tree was loaded: the first user in it reloads the tree
    (and matches finance-sms through it); the next one does not."""
    warmed(worker, engine, emulator)
    emulator.state.add_department("acme", "treasury", "Treasury", parent_code="finance")
    erin, carol = emulator.users["new.erin"], emulator.users["fin.carol"]
    emulator.state.remove_member(carol, "finance")
    for user_id in (erin, carol):
        emulator.state.add_member(user_id, "treasury")
    enqueue(engine, erin)
    worker.run_until_idle()
    assert emulator.journal.count(ORGANIZATIONS) == 1 and emulator.journal.count(ALL_DEPARTMENTS) == 1
    assert emulator.journal.count(USER_DEPARTMENTS) == 0
    [decision] = decisions_for_user(engine, erin)
    assert decision["rules"] == ["finance-sms"]
    emulator.journal.clear()
    enqueue(engine, carol)
    worker.run_until_idle()
    assert emulator.journal.count(ORGANIZATIONS) == 0 and emulator.journal.count(ALL_DEPARTMENTS) == 0
    assert worker.reconciler.tree.loads == 2


def test_an_organization_event_makes_the_tree_load_again(worker, engine, emulator):
    """Engineering moves under Finance. A login handled with the tree loaded before the move still sees Dave
    outside Finance (the cached copy, until its TTL); the node-moved event reloads the tree once for the
    department's members, and Dave then matches finance-sms through his new ancestor."""
    warmed(worker, engine, emulator)
    dave = emulator.users["eng.dave"]
    emulator.state.move_department("engineering", "finance")
    enqueue(engine, dave)
    worker.run_until_idle()
    assert decisions_for_user(engine, dave)[0]["action"] == "none"
    emulator.state.add_member(emulator.users["new.erin"], "engineering")
    emulator.journal.clear()
    moved = Subject(DEPARTMENT, emulator.state.department_id("engineering"))
    delivery = Delivery("organization:node-moved", "pool", (moved,), "1" * 64, "application/json", "queued")
    record_delivery(engine, delivery, now=time.time())
    worker.run_until_idle()
    assert emulator.journal.count(ALL_DEPARTMENTS) == 1  # (the expansion reads list-organizations too)
    assert worker.reconciler.tree.loads == 2
    latest = decisions_for_user(engine, dave)[0]
    assert latest["trigger"] == "organization:node-moved"
    assert latest["rules"] == ["finance-sms"] and latest["action"] == "enforced"
    assert decisions_for_user(engine, emulator.users["new.erin"])[0]["rules"] == ["finance-sms"]


def test_a_jobs_reads_go_out_together(worker, engine, emulator):
    """get-user and get-mfa-status each take 0.5 s: the job's reads take one such wait, not two."""
    warmed(worker, engine, emulator)
    emulator.faults.add("latency", path=GET_USER, times=1, seconds=0.5)
    emulator.faults.add("latency", path=GET_MFA, times=1, seconds=0.5)
    started = time.monotonic()
    worker.reconciler.plan(emulator.users["fin.frank"])
    assert time.monotonic() - started < 0.95, "the reads went out one after the other"


def test_concurrent_calls_share_one_token_and_count_every_call(settings, emulator):
    """A fresh client sending four reads at once fetches one management token, and counts four calls."""
    client = GenAuthClient(settings.genauth)
    try:
        alice = emulator.users["fin.alice"]
        done = client.concurrently(*[lambda: users.get_mfa_status(client, alice) for _ in range(4)])
        answers = [future.result() for future in done]
        assert answers[0] and all(answer == answers[0] for answer in answers)
    finally:
        client.close()
    assert emulator.journal.count(TOKEN) == 1
    assert client.calls == 4


def test_the_clients_of_one_process_share_one_management_token(settings, emulator):
    """Each worker thread has its own client; the process fetches one token for them all, not one per thread."""
    services = Services.open(settings, database=False)
    clients = [services.genauth() for _ in range(3)]
    try:
        for client in clients:
            users.get_mfa_status(client, emulator.users["fin.alice"])
    finally:
        for client in clients:
            client.close()
    assert emulator.journal.count(TOKEN) == 1


def test_a_department_the_tree_never_shows_is_read_per_user_without_reloading_again(worker, engine, emulator):
    """get-all-departments answers nothing (twice: the first load and the one reload for the unknown id):
    Alice's departments are read with get-user-departments and she is enforced; Frank's job next, in the same
    department the tree does not show, goes to get-user-departments without reloading the tree."""
    emulator.faults.add("null_data", path=ALL_DEPARTMENTS, times=2)
    alice, frank = emulator.users["fin.alice"], emulator.users["fin.frank"]
    enqueue(engine, alice)
    worker.run_until_idle()
    assert emulator.journal.count(ALL_DEPARTMENTS) == 2 and emulator.journal.count(USER_DEPARTMENTS) == 1
    assert decisions_for_user(engine, alice)[0]["action"] == "enforced"
    emulator.journal.clear()
    enqueue(engine, frank)
    worker.run_until_idle()
    assert emulator.journal.count(ALL_DEPARTMENTS) == 0 and emulator.journal.count(USER_DEPARTMENTS) == 1
    assert decisions_for_user(engine, frank)[0]["rules"] == ["finance-sms"]
    assert worker.reconciler.tree.loads == 2
