"""``mfa-enforcer holds``, ``holds release``, ``holds discard``, ``pause`` and ``resume``: the brakes an
operator works by hand (docs/operations.md, "Brakes").

They need ``DATABASE_URL`` and nothing else. A release only marks the users released and enqueues them; a
worker then re-plans each against GenAuth as it is now and writes outside the change budget
(``service.enforcement.brakes``). Pause and resume set the switch in the database that every process reads
within seconds; resume also puts the users the pause held back on the queue. Each action needs ``--reason``
and leaves an audit record; the actions themselves are ``service.store.operator_actions``, which the admin API
calls too.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from typing import NoReturn, TypeVar

import click
import sqlalchemy as sa

from service.cli.common import engine_from_environment, show_time, who
from service.enforcement.brakes import PAUSE_TTL
from service.store import audit, budget, holds, operator_actions
from service.store.engine import disposing
from service.store.subjects import REVERT

T = TypeVar("T")
CAUSES = {holds.BUDGET: "change budget", holds.PAUSED: "pause"}
REASON_HELP = "Why (required; kept with the action for the audit trail)."
ACTOR_HELP = "Who acts (default: the OS user and host)."


def _refuse(command: str, message: str) -> NoReturn:
    """A wrong command line in one line (exit 2)."""
    click.echo(f"mfa-enforcer {command}: {message}", err=True)
    sys.exit(2)


def _reason_or_refuse(command: str, reason: str | None) -> str:
    if reason is None or operator_actions.reason_problem(reason):
        _refuse(command, "--reason TEXT is required: say why (it is kept with the action)")
    return reason.strip()


def _act(command: str, reason: str | None, actor: str | None, action: Callable[[sa.Engine, str, str], T]) -> T:
    """The one shape of every action here: refuse a missing reason, then ``action(engine, reason, actor)``."""
    why = _reason_or_refuse(command, reason)
    with disposing(engine_from_environment()) as engine:
        return action(engine, why, audit.operator(actor))


@click.group(invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@click.pass_context
def holds_command(ctx: click.Context, as_json: bool) -> None:
    """Users whose write the change budget or a pause is holding, per rule, with a sample of their planned
    change."""
    if ctx.invoked_subcommand is not None:
        return
    with disposing(engine_from_environment()) as engine:
        if as_json:
            click.echo(json.dumps(operator_actions.holds_view(engine), indent=2, ensure_ascii=False))
            return
        summary = holds.summary(engine)
        with engine.connect() as connection:
            pause = budget.pause_state(connection)
    if pause.paused:
        click.echo(f"writes are PAUSED since {show_time(pause.changed_at)} by {pause.actor}: {pause.reason}")
    if not summary.held:
        waiting = f" ({summary.released} released, waiting for a worker)" if summary.released else ""
        click.echo(f"no users held{waiting}")
        return
    causes = ", ".join(f"{count} by the {CAUSES.get(cause, cause)}" for cause, count in summary.per_cause.items())
    click.echo(f"{summary.held} user(s) held ({causes}):")
    for rule, count in summary.per_rule.items():
        click.echo(f"  {rule:<28}{count:>8}")
    click.echo(f"Sample ({len(summary.sample)}):")
    for entry in summary.sample:
        change = f"enable {', '.join(entry['add'])}" if entry["add"] else "no change"
        if entry["trigger"] == REVERT:
            change = "revert the service's writes"
        click.echo(f"  {entry['user_id']}  {who(entry['username'], None)}  {change} ({', '.join(entry['rules'])})")
    click.echo("Let them through with: mfa-enforcer holds release --all --reason TEXT (or drop them: holds discard)")


@holds_command.command(name="release")
@click.option("--reason", help=REASON_HELP)
@click.option("--all", "release_all", is_flag=True, help="Every held user.")
@click.option("--max", "most", type=click.IntRange(1), help="At most this many, oldest first.")
@click.option("--rule", help="Only users held under this rule.")
@click.option("--actor", help=ACTOR_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def release(
    reason: str | None, release_all: bool, most: int | None, rule: str | None, actor: str | None, as_json: bool
) -> None:
    """Let held users through outside the budget: each is re-planned against GenAuth's current state first."""
    scope = operator_actions.ReleaseScope(release_all=release_all, most=most, rule=rule)
    problem = scope.problem()
    if problem and not operator_actions.reason_problem(reason):
        _refuse("holds release", problem)
    released = _act(
        "holds release",
        reason,
        actor,
        lambda engine, why, who: operator_actions.release(engine, scope, reason=why, actor=who, now=time.time()),
    )
    if as_json:
        click.echo(json.dumps({"released": len(released), "users": released}, indent=2))
    elif not released:
        click.echo("no held users to release" + (f" under rule {rule}" if rule else ""))
    else:
        click.echo(f"released {len(released)} user(s); the worker re-plans and writes each (outside the budget)")


@holds_command.command(name="discard")
@click.option("--reason", help=REASON_HELP)
@click.option("--rule", help="Only users held under this rule.")
@click.option("--actor", help=ACTOR_HELP)
def discard(reason: str | None, rule: str | None, actor: str | None) -> None:
    """Drop held users' planned changes; the next event or sweep plans them again."""
    dropped = _act(
        "holds discard",
        reason,
        actor,
        lambda engine, why, who: operator_actions.discard(engine, reason=why, actor=who, rule=rule),
    )
    click.echo(f"discarded {len(dropped)} held user(s)" if dropped else "no held users to discard")


@click.command()
@click.option("--reason", help=REASON_HELP)
@click.option("--actor", help=ACTOR_HELP)
def pause(reason: str | None, actor: str | None) -> None:
    """Stop every GenAuth write on every process within seconds; work keeps being accepted and is held."""
    changed = _act(
        "pause",
        reason,
        actor,
        lambda engine, why, who: operator_actions.pause(engine, reason=why, actor=who, now=time.time()),
    )
    click.echo("writes paused: every process stops writing within seconds" if changed else "writes were already paused")


@click.command()
@click.option("--reason", help=REASON_HELP)
@click.option("--actor", help=ACTOR_HELP)
def resume(reason: str | None, actor: str | None) -> None:
    """Let writes flow again (within the change budget); the users the pause held go back on the queue."""
    requeued = _act(
        "resume",
        reason,
        actor,
        lambda engine, why, who: operator_actions.resume(
            engine, reason=why, actor=who, now=time.time(), settle=PAUSE_TTL
        ),
    )
    if requeued is not None:
        click.echo(f"writes resumed; {requeued} held user(s) back on the queue")
    else:
        click.echo("writes were not paused")
