"""``mfa-enforcer revert``: undo what the service's own writes changed, for the writes in a scope (docs/operations.md,
"Revert").

It needs ``DATABASE_URL`` and the policy file (``POLICY_FILE``): it refuses (exit 2) while an enforce-mode rule
still covers a user in scope, since the next reconcile would write them again, unless ``--force``. It only
claims the writes and queues their users (``service.store.operator_actions.revert``); a worker undoes each
through the write gate, with verified writes. ``--wait`` waits for the workers and lists what was undone and
what was left alone (changed since, protected). ``--dry-run`` lists the users and what undoing each write would
do, and writes nothing, not even the audit record.
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from typing import Any

import click

from service.cli.common import MOMENT, RefusedError, actor_option, engine_from_environment, reason_option, who
from service.policy import load_policy
from service.settings import is_audit_from, policy_file_from
from service.store import audit, operator_actions, reverts
from service.store.engine import disposing
from service.store.people import recorded_user_id


@click.command()
@click.option("--since", "since_text", metavar="TIME", help="Writes made at or after this time (ISO 8601, UNIX s, 2h).")
@click.option("--until", "until_text", metavar="TIME", help="Writes made before this time.")
@click.option("--rule", help="Writes made under this rule.")
@click.option("--user", "user", metavar="U", help="Writes to this user (id, or a recorded username or email).")
@click.option("--sweep", type=click.IntRange(1), metavar="ID", help="Writes of this reconcile sweep.")
@reason_option("required")
@click.option("--dry-run", is_flag=True, help="List the users and what would be undone; write nothing.")
@click.option("--force", is_flag=True, help="Revert even while an enforce-mode rule still covers users in scope.")
@click.option(
    "--wait",
    "wait",
    type=click.FloatRange(0),
    default=None,
    metavar="SECONDS",
    help="Wait up to this long for the workers, then list what was undone and what was left alone.",
)
@actor_option()
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def revert(
    since_text: str | None,
    until_text: str | None,
    rule: str | None,
    user: str | None,
    sweep: int | None,
    reason: str | None,
    dry_run: bool,
    force: bool,
    wait: float | None,
    actor: str | None,
    as_json: bool,
) -> None:
    """Undo exactly what the service's writes in scope changed, where GenAuth still holds what it wrote."""
    since, until = _moment("--since", since_text), _moment("--until", until_text)
    scope = reverts.RevertScope(since=since, until=until, rule=rule, user_id=user, sweep=sweep)
    problem = operator_actions.revert_problem(scope)
    if problem:
        raise RefusedError(f"revert: {problem}")
    why = operator_actions.reason_problem(reason)
    if why or reason is None:
        raise RefusedError("revert needs --reason TEXT: say why, it is kept in the audit trail")
    policy = load_policy(policy_file_from())
    enforcing = frozenset() if is_audit_from() else policy.enforcing
    with disposing(engine_from_environment()) as engine:
        if user is not None:
            scope = replace(scope, user_id=recorded_user_id(engine, user) or user)
        plan = operator_actions.plan_revert(engine, scope, enforcing=enforcing, force=force)
        if plan.refused:
            raise RefusedError(f"revert: {plan.refused}")
        if dry_run:
            _show(plan.as_json(), as_json, dry_run=True)
            return
        claimed = operator_actions.revert(
            engine, scope, plan, reason=reason.strip(), actor=audit.operator(actor), now=time.time(), force=force
        )
        result = {**plan.as_json(), "claimed": len(claimed)}
        if wait is not None and claimed:
            result["outcome"] = _waited(engine, claimed, wait)
    _show(result, as_json, dry_run=False)


def _moment(option: str, text: str | None) -> float | None:
    """The time an option names, or a one-line refusal (exit 2)."""
    try:
        return None if text is None else MOMENT.convert(text, None, None)
    except click.BadParameter as error:
        raise RefusedError(f"revert: {option}: {error.message}") from error


def _waited(engine: Any, claimed: list[int], seconds: float) -> list[dict[str, Any]]:
    deadline = time.monotonic() + seconds
    while True:
        outcome = reverts.outcome(engine, claimed)
        if all(row["state"] != reverts.PENDING for row in outcome) or time.monotonic() >= deadline:
            return outcome
        time.sleep(0.2)


def _show(result: dict[str, Any], as_json: bool, *, dry_run: bool) -> None:
    if as_json:
        click.echo(json.dumps(result, indent=2))
        return
    verb = "would revert" if dry_run else "reverting"
    click.echo(f"{verb} {result['writes']} write(s) to {result['users']} user(s)")
    for user in result["plan"]:
        click.echo(f"  {user['user_id']}  {who(user['username'], None)}  ({', '.join(user['rules'])})")
        for write in user["writes"]:
            click.echo(f"    decision {write['decision_id']} at {write['decided_at']}: {'; '.join(write['undo'])}")
    if result["already_reverted"]:
        click.echo(f"{result['already_reverted']} write(s) in scope already reverted (each is undone once)")
    for entry in result["not_revertible"]:
        click.echo(f"not revertible: {entry['user_id']} decision {entry['decision_id']}: {entry['why']}")
    if dry_run:
        return
    if "claimed" in result and result["claimed"] < result["writes"]:
        click.echo(f"{result['writes'] - result['claimed']} write(s) were claimed by another revert meanwhile")
    if "outcome" not in result:
        click.echo("queued: the workers undo each user through the write gate (pause and change budget apply)")
        return
    for row in result["outcome"]:
        left = f" (left alone: {'; '.join(row['left_alone'])})" if row["left_alone"] else ""
        click.echo(f"  {row['user_id']} decision {row['decision_id']}: {row['state']}{left}")
