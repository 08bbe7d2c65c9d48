"""The ``mfa-enforcer`` command line: one module per command group, wired here.

Every command reads the same environment variables as the web service (``service.settings``); a bad or
missing setting ends the command with exit code 1 and the list of problems (2: the command line itself is wrong).
"""

from __future__ import annotations

import click

from service.cli.database import db
from service.cli.insight import explain, report
from service.cli.policy import policy
from service.cli.reconcile import reconcile
from service.cli.replay import dead_letters, replay
from service.cli.sandbox import sandbox
from service.cli.serving import serve, worker, worker_alive
from service.cli.webhooks import webhooks


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="mfa-enforcer")
def main() -> None:
    """Keep GenAuth user pools compliant with MFA policy."""


main.add_command(serve)
main.add_command(worker)
main.add_command(worker_alive)
main.add_command(db)
main.add_command(policy)
main.add_command(sandbox)
main.add_command(replay)
main.add_command(dead_letters)
main.add_command(reconcile)
main.add_command(webhooks)
main.add_command(explain)
main.add_command(report)
