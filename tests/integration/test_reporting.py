"""The compliance report from real decision rows, on SQLite and PostgreSQL: the numbers follow the documented
rules (each user once by their latest decision, open non-compliance dated from the start of its unbroken
run), inactive accounts are left out, and the whole report costs a fixed number of SQL statements however
many users there are."""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import asdict

import pytest
import sqlalchemy as sa

from service.enforcement.decisions import Decision
from service.store.decisions import record_decision
from service.store.engine import create_engine, prepare_database
from service.store.reporting import CATEGORIES, NON_COMPLIANT, compliance
from service.store.tables import decisions
from service.vocabulary import bucket

MODES = {"finance-sms": "enforce", "audit-email": "audit"}
LABELS = ["compliant", "enforce [SMS]", "unsatisfiable [SMS]", "exempt"]


@pytest.fixture
def engine(database_url, schema_template):
    schema_template.apply(database_url)
    engine = create_engine(database_url)
    prepare_database(engine)
    yield engine
    engine.dispose()


def decision(user: str, action: str, outcomes: dict[str, str], *, status: str | None = "Activated", pool: str = "p"):
    return Decision(
        userpool_id=pool,
        user_id=user,
        trigger="login",
        mode="enforce",
        action=action,
        rules=tuple(outcomes),
        required=(),
        before=(),
        after=(),
        reason="r",
        outcomes=outcomes,
        username=f"name-{user}",
        email=f"{user}@acme.example",
        status=status,
    )


def random_history(rng: random.Random, users: int) -> list[tuple[float, Decision]]:
    """Several decisions per user: mixed outcomes per rule, failures, writes of unknown outcome, users no rule
    matches, inactive users, and users GenAuth confirmed removed (with their last known outcomes)."""
    rows = []
    for number in range(users):
        user = f"u{number:05d}"
        last: dict[str, str] = {}
        for step in range(rng.randint(1, 4)):
            at = 1_000_000.0 + number + step * 10_000
            if rng.random() < 0.08:
                rows.append((at, decision(user, "failed", {})))
                continue
            if rng.random() < 0.05:
                rows.append((at, decision(user, "removed", dict(last), status=None)))
                continue
            outcomes = {rule: rng.choice(LABELS) for rule in MODES if rng.random() < 0.8}
            last = outcomes
            if rng.random() < 0.04:
                rows.append((at, decision(user, "unknown", outcomes)))
                continue
            kinds = {label.split(" ")[0] for label in outcomes.values()}
            action = (
                "unsatisfiable"
                if "unsatisfiable" in kinds
                else "enforced"
                if "enforce" in kinds
                else "exempt"
                if kinds == {"exempt"}
                else "none"
            )
            status = "Suspended" if rng.random() < 0.05 else "Activated"
            rows.append((at, decision(user, action, outcomes, status=status)))
    rows.sort(key=lambda row: row[0])
    return rows


def expected_report(rows: list[tuple[float, Decision]]) -> dict:
    """The report computed the plain way, user by user, over every decision (the oracle)."""
    history: dict[str, list[tuple[float, Decision]]] = defaultdict(list)
    for at, row in rows:
        history[row.user_id].append((at, row))
    per_rule = {rule: dict.fromkeys(CATEGORIES, 0) for rule in MODES}
    totals = dict.fromkeys(CATEGORIES, 0)
    oldest: dict[str, float] = {}
    users = inactive = 0
    severity = {"exempt": -1, "compliant": 0, "enforced": 1, "would-enforce": 2, "unsatisfiable": 3}
    for trail in history.values():
        at, latest = trail[-1]
        if latest.action in ("failed", "unknown"):
            totals["failed"] += 1
            users += 1
            continue
        if latest.action == "removed":
            users += 1
            totals["removed"] += 1
            for rule in latest.outcomes:
                per_rule[rule]["removed"] += 1
            continue
        if not latest.outcomes:
            continue
        if latest.status == "Suspended":
            inactive += 1
            continue
        users += 1
        found = {
            rule: bucket(label, action=latest.action, mode=latest.mode, rule_mode=MODES[rule])
            for rule, label in latest.outcomes.items()
        }
        for rule, kind in found.items():
            per_rule[rule][kind] += 1
            if kind in NON_COMPLIANT:
                start = None
                for when, earlier in reversed(trail):
                    if earlier.action in ("failed", "unknown"):
                        continue
                    label = None if earlier.action == "removed" else earlier.outcomes.get(rule)
                    if (
                        label is None
                        or bucket(label, action=earlier.action, mode=earlier.mode, rule_mode=MODES[rule])
                        not in NON_COMPLIANT
                    ):
                        break
                    start = when
                oldest[rule] = min(oldest.get(rule, start), start)
        totals[max(found.values(), key=severity.__getitem__)] += 1
    return {
        "users": users,
        "inactive": inactive,
        "totals": totals,
        "rules": {
            rule: {
                **counts,
                "mode": MODES[rule],
                "oldest_non_compliance": oldest.get(rule),
                "deadlines": {"earliest": None, "due_in_7_days": 0},  # the random history has no rollout
            }
            for rule, counts in per_rule.items()
        },
        "switch_on": [],  # the random history records no gaps (tests/integration/test_effective.py does)
    }


def record(engine, rows):
    """Record the decisions as the worker does (one by one for a few, in one statement for many)."""
    with engine.begin() as connection:
        if len(rows) < 50:
            for at, row in rows:
                record_decision(connection, row, now=at)
            return
        values = []
        for at, row in rows:
            value = asdict(row)
            value.update({key: list(value[key]) for key in ("rules", "required", "before", "after")})
            value["not_effective"] = list(value["not_effective"]) or None
            values.append({**value, "decided_at": at, "started_at": None})
        connection.execute(sa.insert(decisions), values)


def count_statements(engine, call):
    statements = []

    def count(_connection, _cursor, statement, *_args):
        statements.append(statement)

    sa.event.listen(engine, "before_cursor_execute", count)
    try:
        return call(), statements
    finally:
        sa.event.remove(engine, "before_cursor_execute", count)


def test_report_numbers_follow_the_documented_rules_over_thousands_of_decisions(engine):
    """About 3,000 decisions of 1,200 users: every count, total and oldest date equals the plain computation."""
    rows = random_history(random.Random(7), 1200)
    assert len(rows) > 2500
    record(engine, rows)
    report = compliance(engine, MODES)
    assert report == expected_report(rows)
    assert report["inactive"] > 0 and report["totals"]["failed"] > 0 and report["totals"]["exempt"] > 0
    assert report["totals"]["removed"] > 0 and report["rules"]["finance-sms"]["removed"] > 0


def test_the_report_costs_the_same_few_statements_for_ten_users_as_for_thousands(engine):
    """The report is set-based: a fixed number of statements, not one per user (the old _open_since was N+1)."""
    rng = random.Random(11)
    record(engine, random_history(rng, 10))
    _, few = count_statements(engine, lambda: compliance(engine, MODES, with_users=True))
    record(engine, [(at, row) for at, row in random_history(rng, 1500)])
    report, many = count_statements(engine, lambda: compliance(engine, MODES, with_users=True))
    assert report["users"] > 1000
    assert len(many) == len(few) <= 3, many


def test_a_user_counts_once_whatever_pool_key_their_decisions_carry(engine):
    """Decisions of one user recorded under "" (older replays) and under the pool id are one user, not two."""
    record(
        engine,
        [
            (1.0, decision("alice", "unsatisfiable", {"finance-sms": "unsatisfiable [SMS]"}, pool="")),
            (2.0, decision("alice", "enforced", {"finance-sms": "enforce [SMS]"}, pool="pool-1")),
        ],
    )
    report = compliance(engine, MODES)
    assert report["users"] == 1 and report["rules"]["finance-sms"]["enforced"] == 1
    assert report["rules"]["finance-sms"]["unsatisfiable"] == 0


def test_users_behind_the_counts_are_listed_with_their_names_and_inactive_ones_apart(engine):
    """with_users lists (rule, outcome, user, username, email); a suspended user is listed as inactive only, a
    removed one (archived) as removed under their last known rules."""
    record(
        engine,
        [
            (1.0, decision("carol", "unsatisfiable", {"finance-sms": "unsatisfiable [SMS]"})),
            (2.0, decision("frank", "none", {"finance-sms": "compliant"})),
            (3.0, decision("dave", "enforced", {"finance-sms": "enforce [SMS]"}, status="Suspended")),
            (4.0, decision("gone", "removed", {"finance-sms": "enforce [SMS]"}, status="Archived")),
        ],
    )
    report = compliance(engine, MODES, with_users=True)
    assert report["rules"]["finance-sms"]["unsatisfiable"] == 1 and report["inactive"] == 1
    assert report["rules"]["finance-sms"]["enforced"] == 0, "neither a suspended nor a removed user is enforced"
    assert report["rules"]["finance-sms"]["removed"] == 1 and report["totals"]["removed"] == 1
    listed = {(e["user_id"], e["outcome"], e["username"], e["email"]) for e in report["users_listed"]}
    assert listed == {
        ("carol", "unsatisfiable", "name-carol", "carol@acme.example"),
        ("frank", "compliant", "name-frank", "frank@acme.example"),
        ("dave", "inactive", "name-dave", "dave@acme.example"),
        ("gone", "removed", "name-gone", "gone@acme.example"),
    }
    only = compliance(engine, MODES, with_users=True, outcome="unsatisfiable")["users_listed"]
    assert [entry["user_id"] for entry in only] == ["carol"]
