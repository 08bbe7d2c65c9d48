"""``mfa-enforcer explain USER`` (live, from GenAuth) and ``mfa-enforcer report`` (from decision records)."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from service.app import build_worker
from service.cli.common import engine_from_environment, settings_or_exit, show_time
from service.enforcement.explaining import explain_user
from service.genauth.errors import GenAuthUserNotFoundError
from service.policy import PolicyError, load_policy
from service.policy_source import PolicySource
from service.reports import build_report
from service.store.reporting import CATEGORIES


@click.command()
@click.argument("user_id")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def explain(user_id: str, as_json: bool) -> None:
    """Why USER_ID has, or would get, the MFA factors: every rule, matched or not, and the exact change."""
    settings = settings_or_exit(logs=False, role="worker")
    try:
        policies = PolicySource(settings.policy_file)
    except PolicyError as error:
        raise click.ClickException(str(error)) from error
    engine = engine_from_environment()
    worker = build_worker(settings, engine, policy_getter=policies.current)
    try:
        explanation = explain_user(worker.reconciler, user_id, userpool_id=settings.pool_key)
    except GenAuthUserNotFoundError as error:
        raise click.ClickException(f"no user {user_id} in GenAuth") from error
    finally:
        worker.reconciler.client.close()
        engine.dispose()
    if as_json:
        click.echo(json.dumps(explanation, indent=2, ensure_ascii=False))
        return
    for line in render_explanation(explanation):
        click.echo(line)


def render_explanation(explanation: dict[str, Any]) -> list[str]:
    user = explanation["user"]
    lines = [f"User {user['id']} ({user.get('email') or 'no email'}, {user.get('status') or 'unknown status'})"]
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
        lines.extend(f"      {detail}" for detail in rule["details"])
        lines.extend(f"      expired exception: {text}" for text in rule["expired_exemptions"])
    lines.append(
        f"Factors now: {', '.join(explanation['current_factors']) or 'none'}; "
        f"required: {', '.join(explanation['required_factors']) or 'none'}"
    )
    change = explanation["change"]
    if change["enable"]:
        lines.append(f"Enforcement would enable {', '.join(change['enable'])}, changing:")
        lines.extend(
            f"  {field}: {json.dumps(values['before'], ensure_ascii=False)} -> "
            f"{json.dumps(values['after'], ensure_ascii=False)}"
            for field, values in change["fields"].items()
        )
    else:
        lines.append("Enforcement would change nothing.")
    if change["would_enable_in_audit"]:
        lines.append(f"Audit rules would enable: {', '.join(change['would_enable_in_audit'])}")
    lines.append(f"Decision: {explanation['decision']['action']} — {explanation['decision']['reason']}")
    return lines


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@click.option("--rule", "rule_name", metavar="NAME", help="Only this rule.")
def report(as_json: bool, rule_name: str | None) -> None:
    """Compliance now, from the decision records: per rule and in total."""
    path = Path(os.environ.get("POLICY_FILE", "").strip() or "config/policies.yaml")
    try:
        policy = load_policy(path)
    except PolicyError as error:
        raise click.ClickException(str(error)) from error
    engine = engine_from_environment()
    try:
        result = build_report(engine, policy, today=datetime.now(UTC).date(), rule=rule_name)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--rule") from error
    finally:
        engine.dispose()
    if as_json:
        click.echo(json.dumps(result, indent=2))
        return
    for line in render_report(result):
        click.echo(line)


def render_report(result: dict[str, Any]) -> list[str]:
    header = f"{'rule':<28}{'mode':<9}" + "".join(f"{name:>15}" for name in CATEGORIES) + "  oldest non-compliance"
    lines = [f"Compliance as of {result['as_of']}: {result['users']} user(s) with decisions", header]
    for name, counts in result["rules"].items():
        oldest = show_time(counts["oldest_non_compliance"])
        lines.append(f"{name:<28}{counts['mode']:<9}" + "".join(f"{counts[c]:>15}" for c in CATEGORIES) + f"  {oldest}")
    totals = result["totals"]
    lines.append(f"{'all rules (worst per user)':<37}" + "".join(f"{totals[c]:>15}" for c in CATEGORIES))
    for expired in result["expired_exceptions"]:
        who = ", ".join(expired["users"] + [f"group {g}" for g in expired["groups"]])
        lines.append(f"Expired exception in {expired['rule']} ({expired['expired']}): {who} — {expired['reason']}")
    return lines
