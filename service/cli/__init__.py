"""The ``mfa-enforcer`` command line: one module per command group, wired here.

Every command reads the same environment variables as the web service (``service.settings``). Exit codes:
0 done; 1 failed, with one clear line on stderr (a bad or missing setting lists every problem; GenAuth refusing
the keys or unreachable, the database unreachable, a port in use: ``service.cli.common.failure_message``);
2 the command line itself is wrong. Some commands add their own (``reconcile``: 3 and 4).
"""

from __future__ import annotations

from typing import Any

import click

from service import __version__
from service.cli.audit import audit
from service.cli.common import failure_message
from service.cli.database import db
from service.cli.holds import holds_command, pause, resume
from service.cli.insight import explain, report
from service.cli.listening import listen
from service.cli.notify import notify
from service.cli.policy import policy
from service.cli.reconcile import reconcile
from service.cli.replay import dead_letters, replay
from service.cli.revert import revert
from service.cli.rollout import rollout
from service.cli.sandbox import sandbox
from service.cli.serving import serve, worker, worker_alive
from service.cli.webhooks import webhooks


class CommandLine(click.Group):
    """The top-level group: a failure any command did not handle itself ends in one line, not a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except Exception as error:
            message = failure_message(error)
            if message is None:
                raise
            raise click.ClickException(message) from error


@click.group(cls=CommandLine, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(version=__version__, prog_name="mfa-enforcer")
def main() -> None:
    """Keep GenAuth user pools compliant with MFA policy."""


for command in (serve, worker, worker_alive, listen, db, policy, sandbox, replay, dead_letters, reconcile, webhooks):
    main.add_command(command)
main.add_command(explain)
main.add_command(report)
main.add_command(audit)
main.add_command(holds_command, name="holds")
main.add_command(pause)
main.add_command(resume)
main.add_command(revert)
main.add_command(rollout)
main.add_command(notify)
