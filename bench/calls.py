"""GenAuth calls per user, by scenario (issue 13): what the rate limit is spent on.

GenAuth's rate limit bounds every real drain (a first sweep, an org-chart change), so the number of management
API calls per user is the cost users feel. This script counts them from the emulator's journal (every
``/api/v3/*`` request it answered, the management-token request included) for each scenario:

    .venv/bin/python bench/calls.py                 # the human table
    .venv/bin/python bench/calls.py --json          # the same numbers as JSON on stdout

The emulator runs in this process with no added latency (``--latency``): counts do not depend on timing, except
where two deliveries about one user race (the department move), which latency makes no rarer. The service runs
as in production on a single node (gunicorn, ``config/gunicorn.conf.py``, ``ENFORCER_RUN_WORKER=true``, 2 web
processes) with ``config/policies.yaml`` and ``GENAUTH_RATE_LIMIT=0`` (the limit only slows a run down).

The pool, 1,000 users in one organisation (``acme``):

* Finance, matched by ``finance-sms``: 325 users with a phone and no MFA, 25 more of them with a
  ``partners.acme.example`` address (also matched by the audit rule ``finance-partners-sms``), and 100 with SMS
  already on;
* Finance / Payroll, a sub-department (matched through Finance): 50 users with a phone and no MFA;
* Engineering / Platform, matched by no rule: 400 users with no MFA and 100 with SMS on.

So 500 users are in scope (400 need a write, 100 are compliant) and 500 are not. Scenarios, in this order on
one emulator and one service, each counted over its own slice of the journal:

1. ``mfa-enforcer reconcile --dry-run`` (calls / in-scope user);
2. ``mfa-enforcer reconcile --wait``: the sweep and the worker's reconciles until the queue is empty
   (calls / in-scope user);
3. ``login`` of an already compliant Finance user, ``--probes`` times, one at a time, each waited for (all calls
   in its window, per login);
4. ``login`` of a non-compliant Finance user (new users added after the sweep), likewise;
5. a department move of the 500 Platform users into Finance, one by one as GenAuth reports it
   (``organization:member-removed`` from Platform and ``organization:member-added`` to Finance for each: 1,000
   deliveries), until the queue is empty (calls / moved user);
6. on a fresh emulator, database and service with the same pool: the Platform department (500 users) moved
   under Finance, one ``organization:node-moved`` delivery (calls / moved user).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


from bench.common import (
    BIN,
    LOOPBACK,
    ROOT,
    WEBHOOK_PATH,
    WEBHOOK_SECRET,
    Gunicorn,
    Request,
    Tables,
    add_database_arguments,
    calls_by_user,
    closed_loop,
    code_revision,
    command_line,
    database,
    emulator_env,
    entry_user_id,
    has_sms,
    log,
    machine,
    print_table,
    start_emulator,
    upgrade_database,
    webhook_request,
)
from genauth_emulator.payloads import event_body
from genauth_emulator.sender import JSON_TYPE, WebhookSender, encode_body
from genauth_emulator.server import EmulatorServer
from genauth_emulator.state import EmulatorState

WRITE_ENDPOINTS = frozenset({"set-mfa-status"})
TOKEN_ENDPOINT = "get-management-token"
ORGANIZATION = "acme"


# -- the pool ----------------------------------------------------------------------------------------------


@dataclass
class Pool:
    """The seeded users, by kind (user ids)."""

    finance_plain: list[str] = field(default_factory=list)
    finance_partners: list[str] = field(default_factory=list)
    finance_compliant: list[str] = field(default_factory=list)
    payroll_plain: list[str] = field(default_factory=list)
    platform_plain: list[str] = field(default_factory=list)
    platform_compliant: list[str] = field(default_factory=list)

    @property
    def in_scope(self) -> list[str]:
        return [*self.finance_plain, *self.finance_partners, *self.finance_compliant, *self.payroll_plain]

    @property
    def in_scope_non_compliant(self) -> list[str]:
        return [*self.finance_plain, *self.finance_partners, *self.payroll_plain]

    @property
    def platform(self) -> list[str]:
        return [*self.platform_plain, *self.platform_compliant]

    def describe(self) -> dict[str, int]:
        return {
            "Finance, phone, no MFA (finance-sms)": len(self.finance_plain),
            "Finance, partners.acme.example, phone, no MFA (finance-sms + audit rule)": len(self.finance_partners),
            "Finance, SMS already on": len(self.finance_compliant),
            "Finance / Payroll (sub-department), phone, no MFA": len(self.payroll_plain),
            "Engineering / Platform (no rule), no MFA": len(self.platform_plain),
            "Engineering / Platform (no rule), SMS on": len(self.platform_compliant),
        }


MIX = (
    # (attribute, department, count, email domain, SMS already on)
    ("finance_plain", "finance", 325, "acme.example", False),
    ("finance_partners", "finance", 25, "partners.acme.example", False),
    ("finance_compliant", "finance", 100, "acme.example", True),
    ("payroll_plain", "payroll", 50, "acme.example", False),
    ("platform_plain", "platform", 400, "acme.example", False),
    ("platform_compliant", "platform", 100, "acme.example", True),
)


def seed_pool(state: EmulatorState, scale: float = 1.0) -> Pool:
    """The organisation tree and the 1,000-user mix (``scale`` shrinks every kind, for a quick try)."""
    state.add_organization(ORGANIZATION, "ACME")
    state.add_department(ORGANIZATION, "finance", "Finance")
    state.add_department(ORGANIZATION, "payroll", "Payroll", parent_code="finance")
    state.add_department(ORGANIZATION, "engineering", "Engineering")
    state.add_department(ORGANIZATION, "platform", "Platform", parent_code="engineering")
    pool = Pool()
    number = 0
    for attribute, department, count, domain, compliant in MIX:
        for _ in range(max(1, round(count * scale))):
            number += 1
            username = f"{attribute.replace('_', '.')}.{number:05d}"
            phone = f"139{number:08d}"
            user = state.add_user(
                username=username,
                email=f"{username}@{domain}",
                phone=phone,
                departments=(department,),
                application_mfa=["SMS"] if compliant else (),
                mfa_phone=phone if compliant else None,
            )
            getattr(pool, attribute).append(user["userId"])
    return pool


def add_probe_users(state: EmulatorState, count: int) -> list[str]:
    """Non-compliant Finance users added after the sweep (a login is how the service first hears of them)."""
    ids = []
    for number in range(count):
        username = f"probe.new.{number:03d}"
        ids.append(
            state.add_user(
                username=username, email=f"{username}@acme.example", phone=f"138{number:08d}", departments=("finance",)
            )["userId"]
        )
    return ids


# -- counting ----------------------------------------------------------------------------------------------


def endpoint(entry: Any) -> str:
    return str(entry.path).rsplit("/", 1)[-1]


@dataclass
class Tally:
    """Calls in one journal slice."""

    entries: list[Any]

    @property
    def by_endpoint(self) -> Counter[str]:
        return Counter(endpoint(entry) for entry in self.entries)

    @property
    def total(self) -> int:
        return len(self.entries)

    @property
    def writes(self) -> int:
        return sum(1 for entry in self.entries if endpoint(entry) in WRITE_ENDPOINTS)

    @property
    def reads(self) -> int:
        return self.total - self.writes

    @property
    def tokens(self) -> int:
        return sum(1 for entry in self.entries if endpoint(entry) == TOKEN_ENDPOINT)

    @property
    def failed(self) -> int:
        """Requests GenAuth did not answer with success (a retry shows up as a second call)."""
        return sum(1 for entry in self.entries if entry.http_status != 200 or entry.status_code != 200)

    def without_user(self) -> int:
        """Calls about no single user: the token, listings, the organisation tree."""
        return sum(1 for entry in self.entries if _user_of(entry) is None)


def _user_of(entry: Any) -> str | None:
    return entry_user_id(entry)


class Slice:
    """The journal entries recorded from now on."""

    def __init__(self, emulator: EmulatorServer) -> None:
        self.emulator = emulator
        self.mark = len(emulator.journal.entries())
        self.started = time.perf_counter()

    def tally(self) -> Tally:
        return Tally(self.emulator.journal.entries()[self.mark :])

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.started


@dataclass
class Scenario:
    """One row of the report."""

    name: str
    unit: str  # what "per" means: "in-scope user", "login", "moved user"
    units: int
    tally: Tally
    seconds: float
    target: str
    issue_now: str
    notes: list[str] = field(default_factory=list)
    breakdown: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        tally = self.tally
        return {
            "name": self.name,
            "per": self.unit,
            "count": self.units,
            "calls": tally.total,
            "reads": tally.reads,
            "writes": tally.writes,
            "token_requests": tally.tokens,
            "calls_without_a_user": tally.without_user(),
            "failed_answers": tally.failed,
            "calls_per_unit": round(tally.total / self.units, 3),
            "reads_per_unit": round(tally.reads / self.units, 3),
            "writes_per_unit": round(tally.writes / self.units, 3),
            "by_endpoint": dict(sorted(tally.by_endpoint.items())),
            "seconds": round(self.seconds, 1),
            "target": self.target,
            "issue_now": self.issue_now,
            "breakdown": self.breakdown,
            "notes": self.notes,
        }


# -- the service -------------------------------------------------------------------------------------------


@dataclass
class World:
    emulator: EmulatorServer
    pool: Pool
    web: Gunicorn
    env: dict[str, str]
    db: Tables
    quiet: float

    def wait_idle(self, *, timeout: float, what: str) -> None:
        """Until no work row is pending (leased or not) and the journal has been quiet for ``quiet`` s."""
        deadline = time.monotonic() + timeout
        last_report = time.monotonic()
        while True:
            self.web.check_alive()
            entries = self.emulator.journal.entries()
            last = entries[-1].time if entries else 0.0
            if self.db.pending() == 0 and time.time() - last >= self.quiet:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"{what}: still busy after {timeout:.0f}s ({self.db.pending()} rows pending)")
            if time.monotonic() - last_report > 15:
                log(f"{what}: {self.db.pending()} work rows pending")
                last_report = time.monotonic()
            time.sleep(0.1)

    def cli(self, *args: str, timeout: float) -> dict[str, Any]:
        """``mfa-enforcer ARGS --json --quiet`` with the service's environment; its JSON summary."""
        result = subprocess.run(
            [str(BIN / "mfa-enforcer"), *args, "--json", "--quiet"],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"`mfa-enforcer {' '.join(args)}` exited {result.returncode}: {result.stderr[-2000:]}")
        try:
            return dict(json.loads(result.stdout))
        except ValueError:
            return {}


@contextlib.contextmanager
def world(arguments: argparse.Namespace, folder: Path, name: str) -> Iterator[World]:
    """A fresh emulator with the pool, a fresh database, and the service under gunicorn with its worker."""
    emulator = start_emulator(latency=0.0)
    try:
        pool = seed_pool(emulator.state, arguments.scale)
        emulator.faults.latency = arguments.latency
        with database(arguments.db, folder, name=name, pg_url=arguments.pg_url) as database_url:
            env = emulator_env(
                emulator,
                database_url,
                ENFORCER_RUN_WORKER="true",
                GENAUTH_RATE_LIMIT="0",
                ENFORCER_VERIFY_WRITES="false" if arguments.no_verify else "true",
            )
            upgrade_database(env)
            db = Tables(database_url)
            try:
                with Gunicorn("service.app:create_app()", env, folder / f"{name}.log") as web:
                    ready = World(emulator, pool, web, env, db, quiet=max(0.5, 3 * arguments.latency))
                    settle = World(emulator, pool, web, env, db, quiet=max(2.0, 3 * arguments.latency))
                    settle.wait_idle(timeout=120, what="the service's start")  # its start-up calls count nowhere
                    yield ready
            finally:
                db.close()
    finally:
        emulator.stop()


def send(world: World, requests: Sequence[Request], concurrency: int) -> None:
    result = closed_loop(
        world.web.port, lambda index: requests[index], concurrency=concurrency, count=len(requests), timeout=30
    )
    if result.acked != len(requests):
        raise RuntimeError(f"{len(requests) - result.acked} deliveries were not acknowledged: {result.failure_text()}")


def event_request(state: EmulatorState, event: str, user_id: str | None = None, *, department: str) -> Request:
    """An ``organization:*`` delivery about a department (and a user), exactly as the emulator's sender posts it."""
    text, content_type = encode_body(event_body(state, event, user_id, department_code=department), "json")
    sender = WebhookSender(f"http://{LOOPBACK}{WEBHOOK_PATH}", WEBHOOK_SECRET, state.userpool_id)
    headers = sender.headers("authing", content_type or JSON_TYPE)
    sender.close()
    return Request("POST", WEBHOOK_PATH, text.encode("utf-8"), headers)


# -- the scenarios -----------------------------------------------------------------------------------------


def dry_run(world: World, arguments: argparse.Namespace) -> Scenario:
    log("dry run: mfa-enforcer reconcile --dry-run")
    window = Slice(world.emulator)
    summary = world.cli("reconcile", "--dry-run", timeout=arguments.timeout)
    time.sleep(world.quiet)
    in_scope = len(world.pool.in_scope)
    scenario = Scenario(
        "`reconcile --dry-run`", "in-scope user", in_scope, window.tally(), window.seconds, "≤ 1.1", "3.03"
    )
    _check_in_scope(scenario, summary, in_scope)
    return scenario


def enforcing(world: World, arguments: argparse.Namespace) -> Scenario:
    log("enforcing: mfa-enforcer reconcile --wait, then until the queue is empty")
    window = Slice(world.emulator)
    summary = world.cli("reconcile", "--wait", "--wait-timeout", str(arguments.timeout), timeout=arguments.timeout + 60)
    world.wait_idle(timeout=arguments.timeout, what="enforcing sweep")
    pool = world.pool
    in_scope = len(pool.in_scope)
    tally = window.tally()
    scenario = Scenario(
        "`reconcile` (enforcing), sweep + worker", "in-scope user", in_scope, tally, window.seconds, "≤ 2.1", "4.01"
    )
    _check_in_scope(scenario, summary, in_scope)
    per_user = calls_by_user(tally.entries)
    non_compliant = pool.in_scope_non_compliant
    compliant = pool.finance_compliant
    scenario.breakdown = {
        "calls per non-compliant in-scope user (about that user)": _mean_calls(per_user, non_compliant),
        "calls per compliant in-scope user (about that user)": _mean_calls(per_user, compliant),
        "calls about no single user (token, listings, tree), in all": float(tally.without_user()),
        "calls about out-of-scope users, in all": float(
            sum(sum(per_user.get(u, Counter()).values()) for u in pool.platform)
        ),
    }
    missing = sum(1 for user in non_compliant if not has_sms(world.emulator.state, user))
    if missing:
        scenario.notes.append(f"{missing} non-compliant in-scope users still had no SMS at the end")
    dead = world.db.dead()
    if dead:
        scenario.notes.append(f"{dead} work rows dead-lettered")
    return scenario


def _mean_calls(per_user: dict[str, Counter[str]], users: Sequence[str]) -> float:
    return round(sum(sum(per_user.get(user, Counter()).values()) for user in users) / max(len(users), 1), 3)


def _check_in_scope(scenario: Scenario, summary: dict[str, Any], expected: int) -> None:
    reported = summary.get("in_scope")
    if reported is not None and reported != expected:
        scenario.notes.append(f"the CLI reported {reported} users in scope; the pool has {expected}")


def logins(
    world: World, arguments: argparse.Namespace, users: Sequence[str], name: str, target: str, now: str
) -> Scenario:
    """One ``login`` delivery at a time, each waited for until its decision is recorded and the queue is idle."""
    log(f"{name}: {len(users)} logins, one at a time")
    window = Slice(world.emulator)
    first: Tally | None = None
    for user in users:
        before = world.db.decisions(user)
        mark = Slice(world.emulator)
        send(world, [webhook_request(world.emulator.state, user, "login")], 1)
        deadline = time.monotonic() + 60
        while world.db.decisions(user) <= before:
            world.web.check_alive()
            if time.monotonic() > deadline:
                raise TimeoutError(f"{name}: no decision for {user} within 60s")
            time.sleep(0.05)
        world.wait_idle(timeout=60, what=name)
        if first is None:
            first = mark.tally()
    scenario = Scenario(name, "login", len(users), window.tally(), window.seconds, target, now)
    if first is not None:
        scenario.breakdown = {"calls for the first login": float(first.total)}
    return scenario


def member_moves(world: World, arguments: argparse.Namespace) -> Scenario:
    """The 500 Platform users moved into Finance one by one (member-removed + member-added each)."""
    state = world.emulator.state
    moved = world.pool.platform
    log(f"department move: {len(moved)} users Platform -> Finance, 2 deliveries each")
    for user in moved:
        state.remove_member(user, "platform")
        state.add_member(user, "finance")
    requests = []
    for user in moved:
        requests.append(event_request(state, "organization:member-removed", user, department="platform"))
        requests.append(event_request(state, "organization:member-added", user, department="finance"))
    window = Slice(world.emulator)
    send(world, requests, arguments.concurrency)
    world.wait_idle(timeout=arguments.timeout, what="department move")
    scenario = Scenario(
        f"department move, {len(moved)} users one by one (`organization:member-removed` + `-added` each)",
        "moved user",
        len(moved),
        window.tally(),
        window.seconds,
        "—",
        "—",
    )
    _moved_notes(world, scenario, moved)
    return scenario


def node_move(world: World, arguments: argparse.Namespace) -> Scenario:
    """Platform (500 users) moved under Finance: one ``organization:node-moved`` delivery."""
    state = world.emulator.state
    moved = world.pool.platform
    log(f"department move: Platform ({len(moved)} users) moved under Finance, one node-moved delivery")
    state.move_department("platform", "finance")
    window = Slice(world.emulator)
    send(world, [event_request(state, "organization:node-moved", department="platform")], 1)
    world.wait_idle(timeout=arguments.timeout, what="node move")
    scenario = Scenario(
        f"department move, Platform ({len(moved)} users) under Finance (one `organization:node-moved`)",
        "moved user",
        len(moved),
        window.tally(),
        window.seconds,
        "—",
        "—",
    )
    _moved_notes(world, scenario, moved)
    return scenario


def _moved_notes(world: World, scenario: Scenario, moved: Sequence[str]) -> None:
    per_user = calls_by_user(scenario.tally.entries)
    scenario.breakdown = {
        "calls per moved user without SMS before (about that user)": _mean_calls(per_user, world.pool.platform_plain),
        "calls per moved user with SMS before (about that user)": _mean_calls(per_user, world.pool.platform_compliant),
        "calls about no single user, in all": float(scenario.tally.without_user()),
    }
    missing = sum(1 for user in moved if not has_sms(world.emulator.state, user))
    if missing:
        scenario.notes.append(f"{missing} moved users had no SMS at the end")
    writes = Counter(user for user in (_user_of(e) for e in scenario.tally.entries if endpoint(e) in WRITE_ENDPOINTS))
    if writes and max(writes.values()) > 1:
        scenario.notes.append(f"{sum(1 for n in writes.values() if n > 1)} users were written more than once")


# -- report ------------------------------------------------------------------------------------------------


def report_human(header: dict[str, Any], scenarios: list[Scenario]) -> None:
    print("## GenAuth calls per user, by scenario\n")
    for key, value in header.items():
        if key != "pool":
            print(f"- {key}: {value}")
    print()
    print_table(["users in the pool", "count"], [[kind, n] for kind, n in header["pool"].items()], title="Pool")
    rows = []
    for scenario in scenarios:
        data = scenario.as_dict()
        rows.append(
            [
                scenario.name,
                f"{scenario.units:,} ({scenario.unit}s)",
                data["calls"],
                f"{data['calls_per_unit']:.2f}",
                f"{data['reads_per_unit']:.2f} / {data['writes_per_unit']:.2f}",
                scenario.target,
                scenario.issue_now,
                f"{scenario.seconds:.1f}",
            ]
        )
    print_table(
        ["scenario", "per", "GenAuth calls", "calls per", "reads / writes per", "target", 'issue 13 "now"', "s"],
        rows,
        title="GenAuth calls (emulator journal, every /api/v3 request including the token)",
    )
    detail = []
    for scenario in scenarios:
        by_endpoint = ", ".join(f"{name} {n:,}" for name, n in sorted(scenario.tally.by_endpoint.items()))
        extra = "; ".join(f"{key}: {value:g}" for key, value in scenario.breakdown.items())
        notes = "; ".join(scenario.notes)
        detail.append([scenario.name, by_endpoint, extra, f"{scenario.tally.failed}", notes or "—"])
    print_table(["scenario", "calls by endpoint", "breakdown", "failed answers", "notes"], detail, title="Detail")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_database_arguments(parser)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to each GenAuth API request")
    parser.add_argument("--probes", type=int, default=10, help="logins per login scenario")
    parser.add_argument("--concurrency", type=int, default=4, help="connections posting the move deliveries")
    parser.add_argument("--timeout", type=float, default=900.0, help="longest wait for one scenario (s)")
    parser.add_argument("--scale", type=float, default=1.0, help="shrink the pool (0.1: 100 users), for a quick try")
    parser.add_argument("--json", action="store_true", help="print the results as JSON on stdout")
    parser.add_argument("--json-out", type=Path, help="also write the JSON results to this file")
    parser.add_argument("--logs", type=Path, help="keep the service's logs in this folder")
    parser.add_argument("--no-verify", action="store_true", help="ENFORCER_VERIFY_WRITES=false: no read-back per write")
    arguments = parser.parse_args()
    if not 1 <= arguments.probes <= 200 or not 0 < arguments.scale <= 1 or arguments.timeout > 3600:
        parser.error("need 1 <= --probes <= 200, 0 < --scale <= 1 and --timeout <= 3600")
    started = time.perf_counter()
    header: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "command": command_line(),
        **machine(),
        "code": code_revision(),
        "database": arguments.db,
        "GenAuth latency": f"{arguments.latency * 1000:.0f} ms",
        "writes read back": "no (ENFORCER_VERIFY_WRITES=false)" if arguments.no_verify else "yes",
    }
    scenarios: list[Scenario] = []
    with tempfile.TemporaryDirectory(prefix="bench-calls-") as scratch:
        folder = arguments.logs or Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        with world(arguments, folder, "calls") as first:
            header["pool"] = first.pool.describe()
            scenarios.append(dry_run(first, arguments))
            scenarios.append(enforcing(first, arguments))
            compliant = first.pool.finance_compliant[: arguments.probes]
            scenarios.append(
                logins(first, arguments, compliant, "login, already compliant user", "≤ 2 reads, 0 writes", "3 reads")
            )
            new_users = add_probe_users(first.emulator.state, arguments.probes)
            scenarios.append(logins(first, arguments, new_users, "login, non-compliant user", "—", "—"))
            scenarios.append(member_moves(first, arguments))
        with world(arguments, folder, "nodemove") as second:
            scenarios.append(node_move(second, arguments))
    header["run took"] = f"{time.perf_counter() - started:.0f} s"
    text = json.dumps({**header, "scenarios": [s.as_dict() for s in scenarios]}, indent=2, ensure_ascii=False)
    if arguments.json_out:
        arguments.json_out.write_text(text + "\n")
    if arguments.json:
        print(text)
    else:
        report_human(header, scenarios)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
