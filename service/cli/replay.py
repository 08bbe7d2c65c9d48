"""``mfa-enforcer replay`` and ``mfa-enforcer dead-letters``: see parked work and put work back on the queue.

Replay only enqueues; the worker does the rest through the one enforcement path. It needs ``DATABASE_URL``
and nothing else, so it runs anywhere the database is reachable. ``--user`` takes the name an admin has for
the user: an id, or a username or email the service has recorded; with GenAuth credentials set it also looks
up any username, email or phone in GenAuth (``service.genauth.users.find_user``). Users are enqueued under
the same user-pool key as everything else about them, so ``report`` counts each once. A replay needs
``--reason`` (a dry run does not) and leaves an audit record (``service.store.audit``).
"""

from __future__ import annotations

import json
import re
import time

import click
import sqlalchemy as sa

from service.cli.common import (
    MOMENT,
    actor_option,
    engine_from_environment,
    reason_option,
    reason_or_refuse,
    settings_or_exit,
    show_time,
    who,
)
from service.genauth.client import GenAuthClient
from service.genauth.errors import GenAuthUserNotFoundError
from service.genauth.users import find_user
from service.services import Services
from service.settings import has_genauth_credentials, pool_key_from
from service.store.audit import REPLAY, operator, record
from service.store.engine import disposing
from service.store.people import names_of, recorded_user_id
from service.store.replaying import dead_letters as list_dead_letters
from service.store.replaying import replay as enqueue_targets
from service.store.replaying import replay_targets

OBJECT_ID = re.compile(r"^[0-9a-f]{24}\Z")
"""The shape of a GenAuth user id."""


@click.command(name="dead-letters")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@click.option("--limit", default=1000, show_default=True, type=click.IntRange(1, 100000))
def dead_letters(as_json: bool, limit: int) -> None:
    """List work that ran out of retries, with its last error."""
    with disposing(engine_from_environment()) as engine:
        rows = list_dead_letters(engine, limit=limit)
    if as_json:
        click.echo(json.dumps({"dead_letters": rows}, indent=2))
        return
    if not rows:
        click.echo("no dead letters")
        return
    click.echo(f"{len(rows)} dead letter(s):")
    for row in rows:
        subject = (
            f"user {row['user_id']} ({who(row['username'], row['email'])})"
            if row["kind"] == "user"
            else f"{row['kind']} {row['user_id']}"
        )
        click.echo(
            f"- {subject}, {row['attempts']} attempt(s) since {show_time(row['first_enqueued_at'])}, "
            f"last trigger {row['reason']}: {row['last_error']}"
        )
    click.echo('Put them back on the queue with: mfa-enforcer replay --all --reason "..."')


@click.command()
@click.option("--all", "all_dead", is_flag=True, help="Every dead letter.")
@click.option(
    "--user", "users", multiple=True, metavar="USER", help="This user: id, username, email or phone (repeatable)."
)
@click.option("--since", type=MOMENT, help="Users of deliveries (and dead letters) from this time on.")
@click.option("--until", type=MOMENT, help="…and before this time.")
@click.option("--dry-run", is_flag=True, help="Show what would be enqueued and change nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@reason_option("required, except with --dry-run")
@actor_option()
def replay(
    all_dead: bool,
    users: tuple[str, ...],
    since: float | None,
    until: float | None,
    dry_run: bool,
    as_json: bool,
    reason: str | None,
    actor: str | None,
) -> None:
    """Put dead or past work back on the queue (the worker reconciles it again)."""
    if not (all_dead or users or since is not None or until is not None):
        raise click.UsageError("say what to replay: --all, --user USER, or a time range with --since/--until")
    if since is not None and until is not None and since >= until:
        raise click.BadParameter("--since must be before --until")
    why = "" if dry_run else reason_or_refuse("replay", reason)
    with disposing(engine_from_environment()) as engine:
        user_ids = _user_ids(engine, users)
        targets = replay_targets(
            engine,
            all_dead=all_dead,
            user_ids=user_ids,
            userpool_id=pool_key_from(),
            since=since,
            until=until,
        )
        names = names_of(engine, [t.subject.id for t in targets if t.subject.is_user])
        count = 0 if dry_run else enqueue_targets(engine, targets, now=time.time())
        if not dry_run:
            scope = {"all": all_dead, "users": user_ids, "since": since, "until": until}
            record(engine, REPLAY, reason=why, actor=operator(actor), scope=scope, counts={"enqueued": count})

    def name_of(user_id: str) -> tuple[str | None, str | None]:
        name = names.get(user_id)
        return (name.username, name.email) if name else (None, None)

    if as_json:
        listed = [
            {
                "user_id": t.subject.id,
                "kind": t.subject.kind,
                "userpool_id": t.userpool_id,
                "source": t.source,
                **dict(zip(("username", "email"), name_of(t.subject.id), strict=True)),
            }
            for t in targets
        ]
        click.echo(json.dumps({"dry_run": dry_run, "selected": len(targets), "enqueued": count, "users": listed}))
        return
    for target in targets:
        subject = (
            f"{target.subject.id} ({who(*name_of(target.subject.id))})"
            if target.subject.is_user
            else (f"{target.subject.kind} {target.subject.id}")
        )
        click.echo(f"{'would enqueue' if dry_run else 'enqueued'} {subject} ({target.source})")
    verb = "would be enqueued (dry run)" if dry_run else "enqueued"
    click.echo(f"{len(targets)} user(s) {verb}")


def _user_ids(engine: sa.Engine, references: tuple[str, ...]) -> list[str]:
    """Each ``--user`` as a user id: recorded by the service, else looked up in GenAuth when credentials are
    set, else taken as an id if it has the shape of one."""
    found: list[str] = []
    client: GenAuthClient | None = None
    try:
        for reference in references:
            user_id = recorded_user_id(engine, reference)
            if user_id is None and has_genauth_credentials():
                if client is None:
                    client = Services(settings_or_exit(logs=False, role="worker")).genauth()
                try:
                    user_id = find_user(client, reference).user_id
                except GenAuthUserNotFoundError as error:
                    raise click.ClickException(
                        f"no user {reference!r} in GenAuth (by id, username, email or phone)"
                    ) from error
            if user_id is None and OBJECT_ID.match(reference.strip()):
                user_id = reference.strip()
            if user_id is None:
                raise click.ClickException(
                    f"{reference!r} is no user this service has seen: pass the user id, or set GENAUTH_ACCESS_KEY_ID "
                    "and GENAUTH_ACCESS_KEY_SECRET so replay can look the name up in GenAuth"
                )
            found.append(user_id)
    finally:
        if client is not None:
            client.close()
    return found
