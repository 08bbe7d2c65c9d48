"""The documents say what the code does: the README's Commands table names every command, the operations
guide's Procfile section shows the Procfile, the webhook event lists name every event the service subscribes
to, and the documented exit codes are the ones the commands use."""

from __future__ import annotations

import importlib
import re

import click

from service.cli import main
from service.cli.webhooks import BASE_EVENTS, FACT_EVENTS
from tests.support.deploy import DEPLOY, ROOT

README = (ROOT / "README.md").read_text(encoding="utf-8")
OPERATIONS = (ROOT / "docs" / "operations.md").read_text(encoding="utf-8")
SETUP = (ROOT / "docs" / "setup.md").read_text(encoding="utf-8")
CONFIGURATION = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")


def commands_table(text: str) -> str:
    start = text.index("### Commands")
    return text[start : text.index("\n### ", start + 1)]


def test_the_readme_commands_table_names_every_command_and_subcommand():
    """Each top-level command, and each subcommand of a group, appears in the README's Commands table."""
    table = commands_table(README)
    for name, command in main.commands.items():
        assert f"`{name}" in table or f"`{name} " in table or f", `{name}" in table, name
        if isinstance(command, click.Group):
            for sub in command.commands:
                assert sub in table, f"{name} {sub}"


def test_the_operations_guide_shows_the_procfile_as_it_is():
    """The Procfile section lists exactly the Procfile's process types, in a code block."""
    procfile = [line for line in (ROOT / "Procfile").read_text().splitlines() if line.strip()]
    section = OPERATIONS[OPERATIONS.index("### Procfile platforms") :]
    section = section[: section.index("\n### ", 1)]
    block = re.search(r"```\n(.*?)```", section, re.S)
    assert block is not None and block.group(1).strip().splitlines() == procfile
    assert f"declares {['one', 'two', 'three', 'four'][len(procfile) - 1]} process types" in section


def test_every_event_the_service_subscribes_to_is_in_the_deploy_guide_and_the_readme():
    """deploy/README.md and README.md list every event `webhooks subscribe` may subscribe."""
    deploy_guide = (DEPLOY / "README.md").read_text(encoding="utf-8")
    events = [*BASE_EVENTS, *(event for group in FACT_EVENTS.values() for event in group)]
    for event in events:
        assert f"`{event}`" in deploy_guide, event
        spellings = (f"`{event}`", f"`{event.rsplit('-', 1)[0]}-*`", f"`{event.split(':')[0]}:*`")
        assert any(spelling in README for spelling in spellings), event


def test_metrics_port_zero_is_documented_as_off():
    """ENFORCER_METRICS_PORT=0 is accepted and means no server; the guides must not say it is refused."""
    assert "`0` is refused" not in OPERATIONS
    row = next(line for line in CONFIGURATION.splitlines() if line.startswith("| `ENFORCER_METRICS_PORT`"))
    assert "`0`: none" in row


def test_the_documented_reconcile_exit_codes_are_the_ones_it_uses():
    """README, setup and operations guides give reconcile's codes as the command defines them."""
    reconcile_module = importlib.import_module("service.cli.reconcile")
    codes = {
        "another sweep": reconcile_module.EXIT_BUSY,
        "failed or dead-lettered": reconcile_module.EXIT_USERS_FAILED,
    }
    assert codes == {"another sweep": 4, "failed or dead-lettered": 3}
    assert "`4`\n(another sweep is running)" in README or "`4` (another sweep is running)" in README
    assert "`3` (with `--wait`: some users ended failed or dead-lettered)" in README
    assert "A second sweep exits with code 4" in SETUP
    assert "- **4**: another sweep is running." in OPERATIONS
    assert "exit code 3" not in (reconcile_module.__doc__ or "").replace("3 with ``--wait``", "")


def test_setup_steps_say_where_the_command_lives():
    """A newcomer is told that `mfa-enforcer` is .venv/bin/mfa-enforcer before the steps use it."""
    first_steps = README[README.index("## First-time setup") :]
    assert ".venv/bin/mfa-enforcer" in first_steps[:600]
    assert ".venv/bin/mfa-enforcer" in SETUP[:800]
