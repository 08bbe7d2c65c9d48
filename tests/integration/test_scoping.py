"""Users in scope of the rules, against the emulator: the organisation endpoints, exact paging, resolving
department selectors, the plan, and stored sweeps (resume, lock, periodic) on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
import time
from collections import Counter

import pytest
import sqlalchemy as sa

from service.enforcement.scoping import (
    DepartmentResolver,
    MemoryLedger,
    Sweeper,
    SweepStoppedError,
    plan_scope,
)
from service.genauth import directory
from service.genauth.client import GenAuthClient
from service.policy.rules import Match, Policy, Rule
from service.settings import GenAuthSettings
from service.store import sweeps
from service.store.engine import create_engine, prepare_database
from service.store.tables import work
from service.worker.sweeping import PeriodicSweep, StoredSweep, SweepBusyError

MEMBERS = "/api/v3/list-department-members"
USERS = "/api/v3/list-users"


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
def store(database_url):
    engine = create_engine(database_url)
    prepare_database(engine)
    yield engine
    engine.dispose()


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
    assert root["departmentId"] == emulator.state.department_id("acme") and root["parentDepartmentId"] is None
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


def test_sweep_costs_pages_of_the_users_in_scope_and_dedupes_across_rules(client, emulator):
    """A department sweep of 1,200 users in a 3,200-user pool reads ceil(n/50) member pages and no user list."""
    finance = add_people(emulator.state, 1000, "finance", "f") + add_people(emulator.state, 200, "finance-payroll", "p")
    add_people(emulator.state, 2000, "engineering", "e")
    emulator.journal.clear()
    rules = [rule("finance", departments=["finance"]), rule("payroll", departments=["finance-payroll"])]
    ledger = MemoryLedger()
    sweeper = Sweeper(client, plan_scope(rules, DepartmentResolver(client)), ledger)
    assert sweeper.run() is True
    in_finance = len(finance) + 4
    assert ledger.in_scope() == in_finance
    assert ledger.rule_counts() == {"finance": in_finance, "payroll": 201}
    assert pages_requested(emulator, MEMBERS) == Counter(range(1, 26)) + Counter(range(1, 6))
    assert emulator.journal.count(USERS) == 0
    assert len(emulator.journal.entries()) <= 25 + 5 + 8  # pages, plus a few lookups and the token
    progress = sweeper.snapshot()
    assert progress.listed == progress.expected == in_finance + 201


def test_stopped_stored_sweep_resumes_without_redoing_pages(client, emulator, store):
    """A stop keeps every recorded page; the next run resumes the same sweep and reads only the rest."""
    add_people(emulator.state, 700, "finance", "f")
    rules = [rule("finance", departments=["finance"])]
    stop = threading.Event()
    pages = []

    def stop_after_five(progress):
        pages.append(progress.pages)
        if progress.pages == 5:
            stop.set()

    first = StoredSweep(store, client, rules, scope="*", userpool_id="pool", on_progress=stop_after_five, stop=stop)
    first.start()
    with pytest.raises(SweepStoppedError):
        first.step()
    first.close()
    assert first.result().in_scope == 250 and not first.result().finished
    second = StoredSweep(store, client, rules, scope="*", userpool_id="pool")
    second.start()
    assert second.resumed and second.step() is True
    result = second.result()
    assert (result.in_scope, result.enqueued, result.rule_counts) == (704, 454, {"finance": 704})
    assert pages_requested(emulator, MEMBERS) == Counter(range(1, 16))
    with store.connect() as connection:
        assert connection.execute(sa.select(sa.func.count()).select_from(work)).scalar_one() == 704
    third = StoredSweep(store, client, rules, scope="*", userpool_id="pool")
    third.start()
    assert not third.resumed  # a finished sweep is never resumed
    third.close()


def test_restart_abandons_the_unfinished_sweep(client, emulator, store):
    """--restart (restart=True) starts a new sweep from page 1 and abandons the old one."""
    rules = [rule("finance", departments=["finance"])]
    stop = threading.Event()
    stop.set()
    first = StoredSweep(store, client, rules, scope="*", userpool_id="pool", stop=stop)
    first.start()
    with pytest.raises(SweepStoppedError):
        first.step()
    first.close()
    again = StoredSweep(store, client, rules, scope="*", userpool_id="pool", restart=True)
    again.start()
    assert not again.resumed and again.step()
    with store.connect() as connection:
        states = dict(connection.execute(sa.select(sweeps.sweeps.c.id, sweeps.sweeps.c.state)).all())
    assert states == {first.result().sweep_id: "abandoned", again.result().sweep_id: "finished"}


def test_two_sweeps_never_run_at_once_and_an_expired_lock_is_taken_over(client, emulator, store):
    """The lock row keeps a second sweep out until the holder releases it or stops renewing it."""
    rules = [rule("finance", departments=["finance"])]
    holder = StoredSweep(store, client, rules, scope="*", userpool_id="pool", owner="first", lock_ttl=60)
    holder.start()
    other = StoredSweep(store, client, rules, scope="*", userpool_id="pool", owner="second")
    with pytest.raises(SweepBusyError) as busy:
        other.start()
    assert busy.value.holder.owner == "first"
    later = StoredSweep(
        store, client, rules, scope="*", userpool_id="pool", owner="second", clock=lambda: time.time() + 61
    )
    later.start()  # a minute on, the first has not renewed: its lock expired and the sweep is resumed
    assert later.resumed
    with pytest.raises(sweeps.SweepLockLostError):
        holder.step()
    assert later.step() is True
    holder.close()  # not its lock any more: releasing it is a no-op
    with store.connect() as connection:
        assert connection.execute(sa.select(sa.func.count()).select_from(sweeps.sweep_locks)).scalar_one() == 0


def test_periodic_sweep_runs_in_steps_then_waits_for_the_interval(client, emulator, store):
    """maybe_sweep reads a bounded slice each round, finishes, and starts again only after the interval."""
    add_people(emulator.state, 400, "finance", "f")
    policy = Policy(rules=(rule("finance", departments=["finance"]),))
    ticks = iter(range(0, 10_000, 1))
    periodic = PeriodicSweep(
        store, client, lambda: policy, interval=3600, userpool_id="pool", budget=2.5, monotonic=lambda: next(ticks)
    )
    now = time.time()
    rounds = 0
    while rounds == 0 or periodic.active is not None:
        periodic.maybe_sweep(now)
        rounds += 1
    assert rounds > 1  # it yielded to the worker between slices
    assert sweeps.latest_sweep(store, "*").state == "finished"
    calls = emulator.journal.count(MEMBERS)
    periodic.maybe_sweep(now + 60)
    assert emulator.journal.count(MEMBERS) == calls and periodic.active is None
    PeriodicSweep(store, client, lambda: policy, interval=0, userpool_id="pool").maybe_sweep(now + 7200)
    assert emulator.journal.count(MEMBERS) == calls
    periodic.maybe_sweep(time.time() + 3601)  # an interval after the sweep finished
    assert periodic.active is not None and emulator.journal.count(MEMBERS) > calls


def test_periodic_sweep_skips_while_another_sweep_holds_the_lock(client, emulator, store):
    """A worker whose sweep is due but finds the lock taken skips it and looks again later."""
    policy = Policy(rules=(rule("finance", departments=["finance"]),))
    holder = sweeps.Lease(name=sweeps.SWEEP_LOCK, owner="cli", ttl=60)
    assert sweeps.acquire_lock(store, holder, now=time.time()) is None
    periodic = PeriodicSweep(store, client, lambda: policy, interval=600, userpool_id="pool")
    periodic.maybe_sweep(time.time())
    assert periodic.active is None and emulator.journal.count(MEMBERS) == 0
    assert periodic.next_check > time.time()
