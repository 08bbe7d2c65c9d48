"""``mfa-enforcer replay`` and ``mfa-enforcer dead-letters``: see parked work and put work back on the queue.

Replay only enqueues; the worker does the rest through the one enforcement path. It needs ``DATABASE_URL``
and nothing else, so it runs anywhere the database is reachable.
"""

from __future__ import annotations

import json
import time

import click

from service.cli.common import MOMENT, engine_from_environment, show_time
from service.store.replaying import dead_letters as list_dead_letters
from service.store.replaying import replay as enqueue_targets
from service.store.replaying import replay_targets


@click.command(name="dead-letters")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@click.option("--limit", default=1000, show_default=True, type=click.IntRange(1, 100000))
def dead_letters(as_json: bool, limit: int) -> None:
    """List work that ran out of retries, with its last error."""
    engine = engine_from_environment()
    try:
        rows = list_dead_letters(engine, limit=limit)
    finally:
        engine.dispose()
    if as_json:
        click.echo(json.dumps({"dead_letters": rows}, indent=2))
        return
    if not rows:
        click.echo("no dead letters")
        return
    click.echo(f"{len(rows)} dead letter(s):")
    for row in rows:
        click.echo(
            f"- user {row['user_id']} (pool {row['userpool_id'] or '-'}), {row['attempts']} attempt(s) since "
            f"{show_time(row['first_enqueued_at'])}, last trigger {row['reason']}: {row['last_error']}"
        )
    click.echo("Put them back on the queue with: mfa-enforcer replay --all")


@click.command()
@click.option("--all", "all_dead", is_flag=True, help="Every dead letter.")
@click.option("--user", "users", multiple=True, metavar="USER_ID", help="This user (repeatable).")
@click.option("--since", type=MOMENT, help="Users of deliveries (and dead letters) from this time on.")
@click.option("--until", type=MOMENT, help="…and before this time.")
@click.option("--dry-run", is_flag=True, help="Show what would be enqueued and change nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def replay(
    all_dead: bool, users: tuple[str, ...], since: float | None, until: float | None, dry_run: bool, as_json: bool
) -> None:
    """Put dead or past work back on the queue (the worker reconciles it again)."""
    if not (all_dead or users or since is not None or until is not None):
        raise click.UsageError("say what to replay: --all, --user USER_ID, or a time range with --since/--until")
    if since is not None and until is not None and since >= until:
        raise click.BadParameter("--since must be before --until")
    engine = engine_from_environment()
    try:
        targets = replay_targets(engine, all_dead=all_dead, user_ids=users, since=since, until=until)
        count = 0 if dry_run else enqueue_targets(engine, targets, now=time.time())
    finally:
        engine.dispose()
    if as_json:
        listed = [
            {"user_id": t.user_id, "kind": t.kind, "userpool_id": t.userpool_id, "source": t.source} for t in targets
        ]
        click.echo(json.dumps({"dry_run": dry_run, "selected": len(targets), "enqueued": count, "users": listed}))
        return
    for target in targets:
        subject = target.user_id if target.kind == "user" else f"{target.kind} {target.user_id}"
        click.echo(f"{'would enqueue' if dry_run else 'enqueued'} {subject} ({target.source})")
    verb = "would be enqueued (dry run)" if dry_run else "enqueued"
    click.echo(f"{len(targets)} user(s) {verb}")
