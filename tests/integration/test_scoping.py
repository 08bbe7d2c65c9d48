"""Users in scope of the rules, against the emulator: the organisation endpoints, exact paging, resolving
department selectors, the plan, and sweeps on the work queue (counts, dedupe, resume after a crash, restart,
one at a time, dead pages, periodic) on SQLite and PostgreSQL."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import replace

import pytest
import sqlalchemy as sa

from service.enforcement.scoping import DepartmentResolver, plan_scope
from service.genauth import directory
from service.genauth.client import GenAuthClient
from service.policy.rules import Match, Policy, Rule
from service.services import Services
from service.settings import GenAuthSettings
from service.store import queue, sweeps
from service.store.tables import decisions, work
from service.worker.errors import SweepBusyError
from service.worker.sweeping import PeriodicSweep, begin_sweep, read_page

MEMBERS = "/api/v3/list-department-members"
USERS = "/api/v3/list-users"
GET_USER = "/api/v3/get-user"


def rule(name, *, departments=(), domains=(), children=True):
    match = Match(departments=tuple(departments), email_domains=tuple(domains), include_subdepartments=children)
    return Rule(name=name, description="", mode="enforce", match=match, require_mfa=("SMS",))


@pytest.fixture
def client(emulator):
    made = GenAuthClient(
        GenAuthSettings(
            host=emulator.url,
            access_key_id=emulator.state.access_key_id,
            access_key_secret=emulator.state.access_key_secret,
        )
    )
    yield made
    made.close()


@pytest.fixture
def store(engine):
    return engine


@pytest.fixture
def workers(settings, engine):
    """Workers (not running) that reconcile against ``rules``, with their own clocks."""
    made = []

    def make(rules, *, clock=time.time, owner=None):
        policy = Policy(rules=tuple(rules))
        unthrottled = replace(settings, genauth=replace(settings.genauth, rate_limit=0))
        worker = Services(unthrottled, engine).worker(lambda: policy, owner=owner, sweeps=False)
        worker.clock = clock
        worker.leases.clock = clock
        made.append(worker)
        return worker

    yield make
    for worker in made:
        worker.reconciler.client.close()


def sweep(engine, client, rules, *, scope="*", restart=False, pool=None):
    return begin_sweep(engine, client, rules, scope=scope, userpool_id=pool or "pool", now=time.time(), restart=restart)


def decided(engine):
    """How many reconcile decisions each user has."""
    with engine.connect() as connection:
        rows = connection.execute(sa.select(decisions.c.user_id).where(decisions.c.trigger == "reconcile"))
        return Counter(rows.scalars())


def page_rows(engine):
    with engine.connect() as connection:
        return connection.execute(sa.select(work.c.user_id, work.c.state).where(work.c.kind == "page")).all()


def add_people(state, count, department, prefix):
    return [
        state.add_user(username=f"{prefix}{i}", email=f"{prefix}{i}@acme.example", departments=[department])["userId"]
        for i in range(count)
    ]


def pages_requested(emulator, path):
    """How often each page number of ``path`` was asked for."""
    numbers = []
    for entry in emulator.journal.entries(path):
        numbers.append(int(entry.query["page"][0]) if entry.query else entry.body["options"]["pagination"]["page"])
    return Counter(numbers)


def test_list_organizations_pages_through_every_organisation(client, emulator):
    """list-organizations answers 50 a page with totalCount; the directory reads every page."""
    for number in range(60):
        emulator.state.add_organization(f"org{number:02d}", f"Org {number}")
    found = directory.list_organizations(client)
    assert [item["organizationCode"] for item in found] == ["acme"] + [f"org{n:02d}" for n in range(60)]
    assert found[0]["departmentId"] == emulator.state.department_id("acme")
    assert emulator.journal.count("/api/v3/list-organizations") == 2


def test_get_department_by_code_id_and_departmentcode(client, emulator):
    """get-department finds a department by code, by id, or by departmentCode; unknown ones are None."""
    finance_id = emulator.state.department_id("finance")
    by_code = directory.get_department(client, "acme", "finance", id_type="code")
    by_id = directory.get_department(client, "acme", finance_id, id_type="department_id")
    assert by_code == by_id
    assert (by_code["name"], by_code["code"], by_code["parentDepartmentCode"]) == ("Finance", "finance", "acme")
    assert by_code["hasChildren"] is True and by_code["membersCount"] == 3
    assert directory.get_department(client, "acme", "nope", id_type="code") is None
    assert directory.get_department(client, "nope", "finance", id_type="code") is None
    root = directory.get_department(client, "acme", "root", id_type="department_id")
    assert root["departmentId"] == emulator.state.department_id("acme") and root["parentDepartmentId"] == "root"
    payroll = client.call(
        "GET", "/api/v3/get-department", params={"organizationCode": "acme", "departmentCode": "finance-payroll"}
    )
    assert payroll["name"] == "Payroll" and payroll["parentDepartmentCode"] == "finance"


def test_search_departments_matches_names_ignoring_case(client, emulator):
    """search-departments answers the departments whose name contains the keywords, as a plain array."""
    found = directory.search_departments(client, "acme", "fInAnce")
    assert [item["code"] for item in found] == ["finance"]
    assert directory.search_departments(client, "acme", "zzz") == []


def test_department_member_paging_is_exact_with_and_without_children(client, emulator):
    """Every member appears exactly once across pages of 50; children only with includeChildrenDepartments."""
    direct = add_people(emulator.state, 634, "finance", "f")
    nested = add_people(emulator.state, 321, "finance-payroll", "p")
    finance_id = emulator.state.department_id("finance")
    seen: list[str] = []
    number = 1
    while True:
        page = directory.department_members_page(client, "acme", finance_id, include_children=True, number=number)
        seen.extend(directory.user_ids_of(page))
        if page.is_last(number):
            break
        number += 1
    sample = [emulator.users[name] for name in ("fin.alice", "fin.bob", "fin.carol", "fin.frank")]
    assert len(seen) == len(set(seen)) == page.total == 634 + 321 + 4
    assert set(seen) == {*direct, *nested, *sample}
    assert number == 20  # ceil(959 / 50): no extra empty page
    first = directory.department_members_page(client, "acme", finance_id, include_children=False, number=1)
    assert first.total == 634 + 3


def test_list_users_paging_is_exact_and_oldest_first(client, emulator):
    """POST list-users pages of 50 cover the pool exactly once, oldest user first."""
    add_people(emulator.state, 140, "engineering", "e")
    seen: list[str] = []
    number = 1
    while True:
        page = directory.users_page(client, number=number)
        seen.extend(directory.user_ids_of(page))
        if page.is_last(number):
            break
        number += 1
    assert seen == emulator.state.user_ids() and number == 3


def test_resolver_finds_codes_names_and_ids_in_every_organisation_once(client, emulator):
    """A selector resolves by code, id, or name/code ignoring case, across organisations, cached per run."""
    emulator.state.add_organization("globex", "Globex")
    emulator.state.add_department("globex", "globex-fin", "Finance")
    resolver = DepartmentResolver(client)
    by_name = {ref.code for ref in resolver.resolve("finance")}
    assert by_name == {"finance", "globex-fin"}  # code in acme, name in both (same acme department once)
    assert [ref.code for ref in resolver.resolve("PAYROLL")] == ["finance-payroll"]
    payroll_id = emulator.state.department_id("finance-payroll")
    assert [ref.code for ref in resolver.resolve(payroll_id)] == ["finance-payroll"]
    assert resolver.resolve("root") == ()
    calls = len(emulator.journal.entries())
    resolver.resolve("finance")
    assert len(emulator.journal.entries()) == calls


def test_plan_uses_departments_when_the_rule_names_them_and_the_pool_otherwise(client, emulator):
    """Department rules list their departments (children per include_subdepartments); others the pool."""
    rules = [
        rule("finance", departments=["finance", "Finance"]),
        rule("payroll-direct", departments=["finance-payroll"], children=False),
        rule("partners", domains=["partners.example"]),
        rule("ghost", departments=["nowhere"]),
    ]
    plan = plan_scope(rules, DepartmentResolver(client))
    keys = {source.key.rsplit(":", 1)[-1] if source.key != "pool" else "pool": source.rules for source in plan.sources}
    assert keys == {"tree": ("finance",), "direct": ("payroll-direct",), "pool": ("partners",)}
    assert plan.unresolved == (("ghost", "nowhere"),)
    assert plan.fingerprint == plan_scope(rules, DepartmentResolver(client)).fingerprint


def test_sweep_reads_each_page_once_reconciles_from_the_listing_and_dedupes_across_rules(
    client, emulator, store, workers, settings
):
    """A department sweep of 404 users in a 904-user pool: ceil(n/50) member pages each read once, no user list,
    no get-user, each user decided once, and users in two listings counted once (per rule: in each)."""
    finance = add_people(emulator.state, 300, "finance", "f") + add_people(emulator.state, 100, "finance-payroll", "p")
    add_people(emulator.state, 500, "engineering", "e")
    emulator.journal.clear()
    rules = [rule("finance", departments=["finance"]), rule("payroll", departments=["finance-payroll"])]
    started = sweep(store, client, rules, pool=settings.pool_key)
    assert not started.joined and len(page_rows(store)) == 2  # page 1 of each listing
    workers(rules).run_until_idle()
    in_finance = len(finance) + 4
    row = sweeps.get_sweep(store, started.sweep.id)
    assert (row.state, row.in_scope, row.rule_counts) == (
        "finished",
        in_finance,
        {"finance": in_finance, "payroll": 101},
    )
    assert row.listed == row.expected == in_finance + 101
    assert pages_requested(emulator, MEMBERS) == Counter(range(1, 10)) + Counter(range(1, 4))
    assert emulator.journal.count(USERS) == 0 and emulator.journal.count(GET_USER) == 0
    counts = decided(store)
    assert len(counts) == in_finance and set(counts.values()) == {1}
    assert page_rows(store) == []


def test_a_page_a_crashed_worker_held_is_read_again_and_the_sweep_goes_on(client, emulator, store, workers, settings):
    """kill -9 mid-page: the page's lease runs out, another worker reads that page again and the sweep goes on
    from there; no page is enqueued twice and every user is decided once."""
    add_people(emulator.state, 700, "finance", "f")
    rules = [rule("finance", departments=["finance"])]
    started = sweep(store, client, rules, pool=settings.pool_key)
    first = workers(rules, owner="first")
    for _ in range(3):
        assert first.run_once() == 1
    dead = workers(rules, owner="dead")
    [job] = queue.claim(store, owner="dead", limit=1, lease_seconds=30, now=time.time())
    assert sweeps.page_of(job.subject)[2] == 4
    read_page(store, dead.reconciler, job, now=time.time())  # read, its successor enqueued, then the crash
    later = workers(rules, owner="later", clock=lambda: time.time() + 31)
    later.run_until_idle()
    row = sweeps.get_sweep(store, started.sweep.id)
    assert (row.state, row.in_scope, row.listed) == ("finished", 704, 704)
    assert pages_requested(emulator, MEMBERS) == Counter(range(1, 16)) + Counter([4])
    assert set(decided(store).values()) == {1} and len(decided(store)) == 704


def test_restart_abandons_the_running_sweep_and_its_pages(client, emulator, store, workers, settings):
    """--restart (restart=True) abandons the running sweep (its pages leave the queue) and starts from page 1."""
    rules = [rule("finance", departments=["finance"])]
    first = sweep(store, client, rules, pool=settings.pool_key)
    again = sweep(store, client, rules, restart=True, pool=settings.pool_key)
    assert not again.joined and again.sweep.id != first.sweep.id
    assert [subject for subject, _ in page_rows(store)] == [f"{again.sweep.id}:0:1"]
    workers(rules).run_until_idle()
    with store.connect() as connection:
        states = dict(connection.execute(sa.select(sweeps.sweeps.c.id, sweeps.sweeps.c.state)).all())
    assert states == {first.sweep.id: "abandoned", again.sweep.id: "finished"}


def test_one_sweep_at_a_time_and_the_same_sweep_is_joined(client, emulator, store, workers, settings):
    """While a sweep runs, another scope is refused and the same scope and plan is joined; once it finished, a
    new one starts."""
    rules = [rule("finance", departments=["finance"]), rule("all", domains=["acme.example"])]
    running = sweep(store, client, rules, pool=settings.pool_key)
    with pytest.raises(SweepBusyError) as busy:
        sweep(store, client, rules[:1], scope="finance", pool=settings.pool_key)
    assert busy.value.sweep.id == running.sweep.id
    joined = sweep(store, client, rules, pool=settings.pool_key)
    assert joined.joined and joined.sweep.id == running.sweep.id
    workers(rules).run_until_idle()
    fresh = sweep(store, client, rules[:1], scope="finance", pool=settings.pool_key)
    assert not fresh.joined and fresh.sweep.id != running.sweep.id


def test_a_dead_lettered_page_is_revived_by_running_the_sweep_again(client, emulator, store, workers, settings):
    """GenAuth failing for good dead-letters the page (the queue's retries); the sweep waits, and starting it
    again revives the page and it finishes."""
    add_people(emulator.state, 120, "finance", "f")
    rules = [rule("finance", departments=["finance"])]
    started = sweep(store, client, rules, pool=settings.pool_key)
    emulator.faults.add("status_500", path=MEMBERS, times=None)
    worker = workers(rules)
    wait_for_dead(worker, store)
    assert sweeps.get_sweep(store, started.sweep.id).state == "running"
    emulator.faults.clear()
    assert sweep(store, client, rules, pool=settings.pool_key).joined
    worker.run_until_idle()
    row = sweeps.get_sweep(store, started.sweep.id)
    assert (row.state, row.in_scope) == ("finished", 124)


def wait_for_dead(worker, engine):
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        worker.run_once()
        if any(state == "dead" for _, state in page_rows(engine)):
            return
        time.sleep(0.02)
    raise AssertionError("the page was not dead-lettered")


def test_periodic_sweep_starts_when_due_and_waits_for_the_interval(client, emulator, store, workers, settings):
    """maybe_sweep starts a sweep when none finished within the interval; the pages are worker jobs."""
    add_people(emulator.state, 120, "finance", "f")
    rules = [rule("finance", departments=["finance"])]
    policy = Policy(rules=tuple(rules))
    periodic = PeriodicSweep(store, client, lambda: policy, interval=3600, userpool_id=settings.pool_key)
    now = time.time()
    periodic.maybe_sweep(now)
    assert len(page_rows(store)) == 1
    workers(rules).run_until_idle()
    assert sweeps.latest_sweep(store, "*").state == "finished"
    calls = emulator.journal.count(MEMBERS)
    periodic.next_check = 0
    periodic.maybe_sweep(now + 60)
    assert page_rows(store) == [] and emulator.journal.count(MEMBERS) == calls
    PeriodicSweep(store, client, lambda: policy, interval=0, userpool_id=settings.pool_key).maybe_sweep(now + 7200)
    assert page_rows(store) == []
    periodic.next_check = 0
    periodic.maybe_sweep(time.time() + 3601)  # an interval after the sweep finished
    assert len(page_rows(store)) == 1


def test_periodic_sweep_skips_while_another_sweep_runs(client, emulator, store, settings):
    """A worker whose sweep is due but finds another one running starts none and looks again later."""
    rules = (rule("finance", departments=["finance"]),)
    other = sweep(store, client, rules, scope="finance", pool=settings.pool_key)
    periodic = PeriodicSweep(store, client, lambda: Policy(rules=rules), interval=600, userpool_id=settings.pool_key)
    periodic.maybe_sweep(time.time())
    assert sweeps.latest_sweep(store).id == other.sweep.id and len(page_rows(store)) == 1
    assert periodic.next_check > time.time()


def test_a_stop_mid_page_hands_the_users_not_reached_to_the_queue_as_user_rows(
    client, emulator, store, workers, settings
):
    """A worker asked to stop while on a page records what it did and leaves the page's other users on the
    queue as ordinary user rows (read with get-user when they come up); the sweep still counts them once."""
    rules = [rule("finance", departments=["finance"])]
    started = sweep(store, client, rules, pool=settings.pool_key)
    stopping = workers(rules, owner="stopping")
    stopping.stop_requested.set()
    [job] = queue.claim(store, owner="stopping", limit=1, lease_seconds=30, now=time.time())
    stopping.process(job)
    with store.connect() as connection:
        waiting = connection.execute(sa.select(work.c.kind, work.c.reason)).all()
    assert Counter(waiting) == Counter({("user", "reconcile"): 4})
    row = sweeps.get_sweep(store, started.sweep.id)
    assert (row.state, row.in_scope) == ("finished", 4)
    workers(rules).run_until_idle()
    assert len(decided(store)) == 4 and emulator.journal.count(GET_USER) == 4
