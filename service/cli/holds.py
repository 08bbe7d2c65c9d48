"""``mfa-enforcer holds``, ``holds release``, ``holds discard``, ``pause`` and ``resume``: the brakes an
operator works by hand (docs/operations.md, "Brakes").

They need ``DATABASE_URL`` and nothing else. A release only marks the users released and enqueues them; a
worker then re-plans each against GenAuth as it is now and writes outside the change budget
(``service.enforcement.brakes``). Pause and resume set the switch in the database that every process reads
within seconds; resume also puts the users the pause held back on the queue. Each action needs ``--reason``
and leaves an audit record (``record_action``, ``service.store.audit``).
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any, NoReturn

import click
import sqlalchemy as sa

from service.cli.common import engine_from_environment, show_time, who
from service.store import audit, budget, holds
from service.store.engine import disposing

CAUSES = {holds.BUDGET: "change budget", holds.PAUSED: "pause"}
REASON_HELP = "Why (required; kept with the action for the audit trail)."
ACTOR_HELP = "Who acts (default: the OS user and host)."


def record_action(
    engine: sa.Engine, *, action: str, actor: str | None, reason: str, scope: dict[str, Any], count: int
) -> None:
    """The one place an operator's brake action (pause, resume, release, discard) enters the audit trail
    (``service.store.audit``: one append-only record, and its ``audit_record`` log line)."""
    audit.record(engine, action, reason=reason, actor=audit.operator(actor), scope=scope, counts={"users": count})


def _refuse(command: str, message: str) -> NoReturn:
    """A wrong command line in one line (exit 2)."""
    click.echo(f"mfa-enforcer {command}: {message}", err=True)
    sys.exit(2)


def _reason_or_refuse(command: str, reason: str | None) -> str:
    if reason is None or not reason.strip():
        _refuse(command, "--reason TEXT is required: say why (it is kept with the action)")
    return reason.strip()


@click.group(invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@click.pass_context
def holds_command(ctx: click.Context, as_json: bool) -> None:
    """Users whose write the change budget or a pause is holding, per rule, with a sample of their planned
    change."""
    if ctx.invoked_subcommand is not None:
        return
    with disposing(engine_from_environment()) as engine:
        summary = holds.summary(engine)
        with engine.connect() as connection:
            pause = budget.pause_state(connection)
    if as_json:
        click.echo(
            json.dumps(
                {
                    "held": summary.held,
                    "released_pending": summary.released,
                    "paused": pause.paused,
                    "per_rule": summary.per_rule,
                    "per_cause": summary.per_cause,
                    "sample": summary.sample,
                },
                indent=2,
                ensure_ascii=False,
            )
        )
        return
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
    why = _reason_or_refuse("holds release", reason)
    if not (release_all or most or rule):
        _refuse("holds release", "say which: --all, --max N or --rule R")
    if release_all and most:
        _refuse("holds release", "--all and --max exclude each other")
    with disposing(engine_from_environment()) as engine:
        released = holds.release(engine, reason=why, now=time.time(), rule=rule, limit=most)
        scope = {"all": release_all, "max": most, "rule": rule}
        record_action(engine, action=audit.RELEASE, actor=actor, reason=why, scope=scope, count=len(released))
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
    why = _reason_or_refuse("holds discard", reason)
    with disposing(engine_from_environment()) as engine:
        dropped = holds.discard(engine, rule=rule)
        record_action(engine, action=audit.DISCARD, actor=actor, reason=why, scope={"rule": rule}, count=len(dropped))
    click.echo(f"discarded {len(dropped)} held user(s)" if dropped else "no held users to discard")


@click.command()
@click.option("--reason", help=REASON_HELP)
@click.option("--actor", help=ACTOR_HELP)
def pause(reason: str | None, actor: str | None) -> None:
    """Stop every GenAuth write on every process within seconds; work keeps being accepted and is held."""
    why = _reason_or_refuse("pause", reason)
    who_acts = audit.operator(actor)
    with disposing(engine_from_environment()) as engine:
        changed = budget.set_paused(engine, True, reason=why, actor=who_acts, now=time.time())
        if changed:
            record_action(engine, action=audit.PAUSE, actor=who_acts, reason=why, scope={}, count=0)
    click.echo("writes paused: every process stops writing within seconds" if changed else "writes were already paused")


@click.command()
@click.option("--reason", help=REASON_HELP)
@click.option("--actor", help=ACTOR_HELP)
def resume(reason: str | None, actor: str | None) -> None:
    """Let writes flow again (within the change budget); the users the pause held go back on the queue."""
    why = _reason_or_refuse("resume", reason)
    who_acts = audit.operator(actor)
    with disposing(engine_from_environment()) as engine:
        changed = budget.set_paused(engine, False, reason=why, actor=who_acts, now=time.time())
        requeued = holds.requeue_paused(engine, now=time.time()) if changed else 0
        if changed:
            record_action(engine, action=audit.RESUME, actor=who_acts, reason=why, scope={}, count=requeued)
    if changed:
        click.echo(f"writes resumed; {requeued} held user(s) back on the queue")
    else:
        click.echo("writes were not paused")
