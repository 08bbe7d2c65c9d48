"""``mfa-enforcer rollout reset --rule R --user U --reason TEXT``: give a user a fresh grace period.

A user's first sighting under a rule with a rollout is stored once and never moves (``service.store.deadlines``);
this forgets it, so the next decision counts the grace period from that day. The user is queued, and the
reset is kept in the audit trail with the first sighting it forgot. Exit 2 without a reason, 1 when the user
has no sighting under the rule.
"""

from __future__ import annotations

import time

import click

from service.cli.common import engine_from_environment
from service.cli.holds import ACTOR_HELP, REASON_HELP, _reason_or_refuse
from service.store import audit, deadlines
from service.store.engine import disposing


@click.group()
def rollout() -> None:
    """Rollout deadlines (enforce_from, waves, grace)."""


@rollout.command()
@click.option("--rule", required=True, help="The rule whose grace period starts over.")
@click.option("--user", "user_id", required=True, help="The user id.")
@click.option("--reason", help=REASON_HELP)
@click.option("--actor", help=ACTOR_HELP)
def reset(rule: str, user_id: str, reason: str | None, actor: str | None) -> None:
    """Forget when USER was first seen under RULE: their grace period counts from the next decision."""
    why = _reason_or_refuse("rollout reset", reason)
    with disposing(engine_from_environment()) as engine:
        done = deadlines.reset(
            engine, rule=rule, user_id=user_id, reason=why, actor=audit.operator(actor), now=time.time()
        )
    if not done:
        raise click.ClickException(f"user {user_id!r} has no rollout deadline under rule {rule!r}")
    click.echo(f"reset: {user_id} under {rule}; queued, the grace period counts from the next decision")
