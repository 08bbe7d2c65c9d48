"""``mfa-enforcer explain USER`` (live, from GenAuth) and ``mfa-enforcer report`` (from decision records).

Users are shown by their id and their username (else email) as the decisions recorded them; a phone number is
never shown unmasked. ``report --users --format csv`` is for spreadsheets: one row per (rule, user).
"""

from __future__ import annotations

import csv
import json
import sys
from contextlib import closing
from datetime import UTC, datetime
from typing import Any

import click
import sqlalchemy as sa

from service.cli.common import engine_from_environment, services_or_exit, show_time, who
from service.enforcement.deadlines import DeadlineBook
from service.enforcement.explaining import explain_user
from service.errors import ConfigurationError, ReportFilterError
from service.genauth.errors import GenAuthUserNotFoundError
from service.genauth.users import find_user
from service.policy import load_policy
from service.reports import OUTCOMES, build_report
from service.settings import policy_file_from
from service.store.engine import disposing
from service.store.reporting import CATEGORIES


@click.command()
@click.argument("user")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def explain(user: str, as_json: bool) -> None:
    """Why USER has, or would get, the MFA factors: every rule, matched or not, and the change the worker would
    make. USER is a user id, username, email or phone number. Reads GenAuth live and writes nothing."""
    services = services_or_exit(role="worker", database=False)
    policies = services.policy_source(strict=True)
    reconciler = services.explainer(policies.current)
    reconciler.deadlines = _deadline_book()
    with closing(reconciler.client) as client:
        try:
            found = find_user(client, user)
            explanation = explain_user(reconciler, found.user_id, userpool_id=services.settings.pool_key)
        except GenAuthUserNotFoundError as error:
            raise click.ClickException(f"no user {user!r} in GenAuth (by id, username, email or phone)") from error
    if as_json:
        click.echo(json.dumps(explanation, indent=2, ensure_ascii=False))
        return
    for line in render_explanation(explanation):
        click.echo(line)


def _deadline_book() -> DeadlineBook | None:
    """The stored rollout sightings, read only, when DATABASE_URL reaches a current schema; else None (a user
    then counts as first seen today)."""
    try:
        return DeadlineBook(engine_from_environment())
    except (ConfigurationError, sa.exc.SQLAlchemyError):
        return None


def render_explanation(explanation: dict[str, Any]) -> list[str]:
    user = explanation["user"]
    name = ", ".join(part for part in (user.get("username"), user.get("email") or "no email") if part)
    lines = [f"User {user['id']} ({name}, {user.get('status') or 'unknown status'})"]
    facts = []
    if "departments" in user:
        facts.append(
            "departments: "
            + (
                ", ".join(
                    f"{d['code'] or d['name']}" + (f" (under {' / '.join(d['ancestors'])})" if d["ancestors"] else "")
                    for d in user["departments"]
                )
                or "none"
            )
        )
    for key in ("groups", "roles"):
        if key in user:
            facts.append(f"{key}: {', '.join(user[key]) or 'none'}")
    if facts:
        lines.append("  " + "; ".join(facts))
    lines.append(f"Rules ({explanation['mode']} mode):")
    for rule in explanation["rules"]:
        mark = "matched" if rule["matched"] else "not matched"
        why = "; ".join(rule["reasons"]) or "-"
        lines.append(f"  - {rule['rule']} ({rule['mode']}, requires {', '.join(rule['requires'])}): {mark}: {why}")
        if rule["matched"]:
            lines.append(f"      outcome: {rule['outcome']}")
        if rule.get("deadline"):
            deadline = rule["deadline"]
            state = "pending until then" if deadline["pending"] else "reached: enforced"
            lines.append(f"      deadline: {deadline['date']} from {deadline['source']} ({state})")
        lines.extend(f"      {detail}" for detail in rule["details"])
        lines.extend(f"      expired exception: {text}" for text in rule["expired_exemptions"])
        if rule.get("fix"):
            lines.append(f"      to fix: {rule['fix'].split(': ', 1)[1]}")
    current = explanation["current_factors"]
    lines.append(
        f"Factors now: {'not read' if current is None else ', '.join(current) or 'none'}; "
        f"required: {', '.join(explanation['required_factors']) or 'none'}"
    )
    change = explanation["change"]
    if change["enable"]:
        lines.append(f"Enforcement would enable {', '.join(change['enable'])} (nothing was written), changing:")
        lines.extend(
            f"  {field}: {json.dumps(values['before'], ensure_ascii=False)} -> "
            f"{json.dumps(values['after'], ensure_ascii=False)}"
            for field, values in change["fields"].items()
        )
    else:
        lines.append("Enforcement would change nothing.")
    if change["would_enable_in_audit"]:
        lines.append(f"Audit rules would enable: {', '.join(change['would_enable_in_audit'])}")
    for gap in explanation.get("not_effective", []):
        lines.append(f"Not effective ({', '.join(gap['rules'])}): {gap['why']}; to fix: {gap['fix']}")
    decision = explanation["decision"]
    lines.append(f"If the worker ran now: {decision['action']} — {decision['reason']}")
    policy = decision["policy_digest"] or "not from a file"
    lines.append(f"Policy in force: {policy} (mfa-enforcer {decision['service_version']})")
    return lines


FORMATS = ("text", "csv", "json")
CSV_COLUMNS = ("rule", "outcome", "user_id", "username", "email", "status", "decided_at")


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts (the same as --format json).")
@click.option("--format", "output", type=click.Choice(FORMATS), default="text", show_default=True)
@click.option("--rule", "rule_name", metavar="NAME", help="Only this rule.")
@click.option("--users", "with_users", is_flag=True, help="List the users behind each count.")
@click.option("--outcome", metavar="KIND", help=f"With --users: only users with this outcome ({', '.join(OUTCOMES)}).")
def report(as_json: bool, output: str, rule_name: str | None, with_users: bool, outcome: str | None) -> None:
    """Compliance now, from the decision records: per rule and in total; with --users, who is behind each
    count. Suspended users are counted apart (inactive), not as compliant or not; deleted and archived ones
    count as removed."""
    output = "json" if as_json else output
    if outcome is not None and outcome not in OUTCOMES:
        raise click.BadParameter(f"{outcome!r} is not one of {', '.join(OUTCOMES)}", param_hint="--outcome")
    if output == "csv" and not with_users:
        raise click.UsageError("--format csv lists users: add --users")
    policy = load_policy(policy_file_from())
    with disposing(engine_from_environment()) as engine:
        try:
            result = build_report(
                engine,
                policy,
                today=datetime.now(UTC).date(),
                rule=rule_name,
                with_users=with_users or outcome is not None,
                outcome=outcome,
            )
        except ReportFilterError as error:
            raise click.BadParameter(str(error), param_hint="--rule") from error
    if output == "json":
        click.echo(json.dumps(result, indent=2, ensure_ascii=False))
    elif output == "csv":
        writer = csv.DictWriter(sys.stdout, fieldnames=CSV_COLUMNS, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        for entry in result["users_listed"]:
            writer.writerow({**entry, "decided_at": show_time(entry["decided_at"])})
    else:
        for line in render_report(result):
            click.echo(line)


def render_report(result: dict[str, Any]) -> list[str]:
    header = f"{'rule':<28}{'mode':<9}" + "".join(f"{name:>15}" for name in CATEGORIES) + "  oldest non-compliance"
    lines = [f"Compliance as of {result['as_of']}: {result['users']} user(s) covered by the rules", header]
    for name, counts in result["rules"].items():
        oldest = show_time(counts["oldest_non_compliance"])
        lines.append(f"{name:<28}{counts['mode']:<9}" + "".join(f"{counts[c]:>15}" for c in CATEGORIES) + f"  {oldest}")
    totals = result["totals"]
    lines.append(f"{'all rules (worst per user)':<37}" + "".join(f"{totals[c]:>15}" for c in CATEGORIES))
    for name, counts in result["rules"].items():
        deadlines = counts.get("deadlines") or {}
        if counts.get("pending"):
            lines.append(
                f"Pending in {name}: {counts['pending']} user(s), earliest deadline {deadlines.get('earliest')}, "
                f"{deadlines.get('due_in_7_days', 0)} due in the next 7 days"
            )
    for flagged in result.get("long_in_audit", ()):
        lines.append(
            f"Rule {flagged['rule']} has been in mode: audit since {flagged['since']} ({flagged['days']} days): "
            "audit is a rollout step; switch it to enforce (with enforce_from or waves) or remove it"
        )
    if result.get("switch_on"):
        users = result["totals"].get("not-effective", 0)
        lines.append(f"Not effective: {users} user(s) will not be asked for a factor the rules enforce. Switch on:")
        lines.extend(f"  - {item['fix']}: {item['users']} user(s)" for item in result["switch_on"])
    if result.get("inactive"):
        statuses = "/".join(status.lower() for status in result["inactive_statuses"])
        lines.append(f"Not counted: {result['inactive']} inactive user(s) ({statuses}); see --users --outcome inactive")
    brakes = result.get("brakes") or {}
    if brakes.get("paused"):
        lines.append("Writes are PAUSED (mfa-enforcer pause): nothing is written until mfa-enforcer resume")
    if brakes.get("held"):
        lines.append(f"Held: {brakes['held']} user(s) whose write waits for an operator; see mfa-enforcer holds")
    webhook_log = result.get("webhook_log") or {}
    if "webhook_log_read_at" in webhook_log:  # gap recovery (service.intake.recovery)
        lines.append(
            f"GenAuth's delivery log last read: {show_time(webhook_log['webhook_log_read_at'])}"
            f" ({webhook_log['webhook_log_recovered']} delivery(ies) recovered by that read)"
        )
    for expired in result["expired_exceptions"]:
        names = ", ".join(expired["users"] + [f"group {g}" for g in expired["groups"]])
        lines.append(f"Expired exception in {expired['rule']} ({expired['expired']}): {names} — {expired['reason']}")
    if "users_listed" in result:
        lines.append("Users:" if result["users_listed"] else "Users: none")
        for entry in result["users_listed"]:
            name = who(entry["username"], entry["email"])
            lines.append(f"  {entry['rule']:<28}{entry['outcome']:<15}{entry['user_id']}  {name}")
            lines.extend(f"      {gap['why']}; to fix: {gap['fix']}" for gap in entry.get("not_effective", ()))
    return lines
