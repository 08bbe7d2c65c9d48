"""``mfa-enforcer notify [--dry-run]``: one notification round now, as the worker runs every
``ENFORCER_NOTIFY_INTERVAL`` (docs/operations.md, "Notifications").

It queues what is due (today's admin digest, user notices ahead of their deadlines) and sends every due
notice in the outbox; ``--dry-run`` prints what would go, one line each, and changes nothing. Exit 0 when
everything due went out, 1 when a notice could not be sent (it stays in the outbox and is retried), 2 when no
channel is configured.
"""

from __future__ import annotations

import sys
from contextlib import closing

import click

from service.cli.common import services_or_exit


@click.command()
@click.option("--dry-run", is_flag=True, help="Print what would be sent now; queue and send nothing.")
def notify(dry_run: bool) -> None:
    """Send the notices due now: the daily admin digest and user notices."""
    services = services_or_exit(role="worker")
    try:
        if not services.settings.notify.is_on:
            click.echo(
                "mfa-enforcer notify: no channel is configured: set ENFORCER_NOTIFY_WEBHOOK, or ENFORCER_SMTP_URL "
                "with ENFORCER_NOTIFY_FROM",
                err=True,
            )
            sys.exit(2)
        policies = services.policy_source(strict=True)
        with closing(services.genauth()) as client:
            notifier = services.notifier(policies.current, client)
            if dry_run:
                for problem in notifier.templates.check():
                    click.echo(f"warning: {problem}", err=True)
                due = notifier.preview()
                for row in due:
                    state = "new" if row.get("new") else f"queued, {row['attempts']} attempt(s) so far"
                    click.echo(f"{row['kind']} by {row['channel']} to {row['recipient']} ({state}): {row['key']}")
                click.echo(f"{len(due)} notice(s) due; dry run: nothing queued or sent")
                return
            done = notifier.run()
    finally:
        services.close()
    click.echo(f"queued {done.queued}, sent {done.sent}, not sent {done.failed} (kept in the outbox, retried later)")
    if done.failed:
        sys.exit(1)
