"""``mfa-enforcer reconcile``: sweep every user in scope of the rules through the worker (or, with
``--dry-run``, evaluate them here and print the plan without writing anything).

It catches whatever webhooks missed. Scope is ``service.enforcement.scoping``; the sweep itself is work on the
queue (``service.worker.sweeping``): this command plans the listings and starts the sweep, and the worker
reads each page and reconciles its users through the one enforcement path. A sweep of the same scope and plan
that is running already is joined rather than started again (and its dead-lettered pages revived). The dry run
walks the same listings and evaluation in memory; its verdict on each user is ``service.cli.verdicts``.
Either leaves an audit record of its start (``service.store.audit``; ``--reason`` and ``--actor`` say why and who).

With ``--wait`` it then follows the sweep (progress on stderr: a bar on a terminal, a line every 500 users or
10 s otherwise, from the sweep's row; ``service.cli.waiting``) until the worker has decided every user in it,
and prints what the worker decided per rule. Ctrl-C or SIGTERM stops waiting, not the sweep.

Exit codes: 0 done; 1 failed (a setting, GenAuth or the database); 2 bad usage; 3 with ``--wait``: some users
ended ``failed`` or dead-lettered (see ``dead-letters``); 4 another sweep is running; 128 + the signal number
when interrupted (130 for Ctrl-C, 143 for SIGTERM).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

import click
import sqlalchemy as sa

from service.cli.common import actor_option, failure_message, reason_option, settings_or_exit, who
from service.cli.progress import ProgressDisplay
from service.cli.verdicts import OUTCOMES, Verdict, outcome_name, verdict_of
from service.cli.waiting import follow_sweep
from service.enforcement.facts import user_flags
from service.enforcement.scoping import DepartmentResolver, Progress, ScopePlan, plan_scope
from service.errors import ServiceError
from service.genauth.client import GenAuthClient
from service.genauth.errors import GenAuthUserNotFoundError
from service.policy.loading import load_policy
from service.policy.rules import Policy, Rule
from service.services import Services, open_engine
from service.settings import Settings
from service.store.audit import RECONCILE, operator, record
from service.store.engine import create_engine, disposing, sqlite_file
from service.store.migrating import ensure_schema
from service.store.reporting import CATEGORIES
from service.store.sweeps import ALL_RULES
from service.vocabulary import Bucket
from service.worker.errors import SweepBusyError
from service.worker.sweeping import Started, begin_sweep

EXIT_FAILED = 1
EXIT_USERS_FAILED = 3
EXIT_BUSY = 4
PLAN_LINES = 50


class SweepBusyExit(click.ClickException):
    """Another sweep is running: exit code 4, so a CronJob run shows it did not sweep."""

    exit_code = EXIT_BUSY


@click.command()
@click.option("--dry-run", is_flag=True, help="Evaluate each user in scope and print the plan; change nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON on stdout.")
@click.option("--rule", "rule_name", metavar="NAME", help="Only the users in scope of this rule.")
@click.option("--restart", is_flag=True, help="Abandon the running sweep and start over.")
@click.option("--quiet", is_flag=True, help="No progress on stderr.")
@click.option("--wait", is_flag=True, help="Then follow the sweep until the worker has decided every user in it.")
@click.option(
    "--wait-timeout",
    type=click.FloatRange(min=0),
    default=0,
    help="With --wait: give up (exit 1) after this many seconds; 0 waits as long as it takes.",
)
@reason_option("optional")
@actor_option()
def reconcile(
    dry_run: bool,
    as_json: bool,
    rule_name: str | None,
    restart: bool,
    quiet: bool,
    wait: bool,
    wait_timeout: float,
    reason: str | None,
    actor: str | None,
) -> None:
    """Sweep every user in scope of the rules through the worker (catches missed webhooks).

    Exit codes: 0 done; 1 failed; 2 bad usage; 3 with --wait, some users ended failed or dead-lettered;
    4 another sweep is running; 130/143 interrupted (the sweep goes on in the worker).
    """
    if dry_run and wait:
        raise click.UsageError("--wait waits for the worker; a --dry-run gives it nothing to do")
    settings = settings_or_exit(logs=False, role="worker")  # GenAuth and the database; no webhook secret
    policy = load_policy(settings.policy_file)
    rules = _select_rules(policy.rules, rule_name)
    if not rules:
        _emit(
            as_json,
            {"dry_run": dry_run, "finished": True, "in_scope": 0, "rules": {}},
            ["no rules: nobody is in scope"],
        )
        return
    display = ProgressDisplay(sys.stderr, enabled=not quiet)
    services = Services(settings)
    client = services.genauth()
    started = time.monotonic()
    try:
        with _stop_on_signals() as (stop, received):
            who_why = (operator(actor), (reason or "").strip())
            if dry_run:
                _audit_dry_run(settings, rule_name, who_why)
                summary, code = _dry_run(services, client, policy, rules, display, stop, received)
            else:
                summary, code = _sweep(settings, client, rules, rule_name, restart, who_why), 0
                if wait:
                    summary, code = _wait(settings, policy, summary, display, quiet, stop, received, wait_timeout)
    finally:
        display.close()
        client.close()
    summary["seconds"] = round(time.monotonic() - started, 3)
    _emit(as_json, summary, _describe(summary))
    if code:
        sys.exit(code)


def _select_rules(rules: tuple[Rule, ...], name: str | None) -> tuple[Rule, ...]:
    if name is None:
        return rules
    chosen = tuple(rule for rule in rules if rule.name == name)
    if not chosen:
        known = ", ".join(rule.name for rule in rules) or "(none)"
        raise click.UsageError(f"no rule named {name!r}; the rules are: {known}")
    return chosen


@contextmanager
def _stop_on_signals() -> Iterator[tuple[threading.Event, list[int]]]:
    """Ctrl-C or SIGTERM sets the event (the dry run ends after the user in hand); a second Ctrl-C aborts."""
    stop = threading.Event()
    received: list[int] = []

    def _handle(signum: int, _frame: FrameType | None) -> None:
        if stop.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt
        received.append(signum)
        stop.set()

    previous = {signum: signal.signal(signum, _handle) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop, received
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _interrupted_code(received: list[int]) -> int:
    return 128 + int(received[0] if received else signal.SIGINT)


# -- the sweep ----------------------------------------------------------------------------------------------


def _sweep(
    settings: Settings,
    client: GenAuthClient,
    rules: tuple[Rule, ...],
    rule_name: str | None,
    restart: bool,
    who_why: tuple[str, str],
) -> dict[str, Any]:
    engine = create_engine(settings.database_url)
    try:
        ensure_schema(engine, migrate=settings.migrate_on_start)
        started = begin_sweep(
            engine,
            client,
            rules,
            scope=rule_name or ALL_RULES,
            userpool_id=settings.pool_key,
            now=time.time(),
            restart=restart,
        )
    except SweepBusyError as busy:
        since = time.strftime("%H:%M:%S", time.localtime(busy.sweep.started_at))
        raise SweepBusyExit(
            f"another reconcile sweep is running (#{busy.sweep.id} of {busy.sweep.scope}, started by "
            f"{busy.sweep.owner} at {since}); not starting a second one. Try again when it has finished, "
            "or abandon it with --restart."
        ) from busy
    except (ServiceError, sa.exc.SQLAlchemyError) as error:
        raise click.ClickException(f"reconcile failed before it started: {_reason(error)}") from error
    else:
        scope = {"rule": rule_name or ALL_RULES, "dry_run": False, "restart": restart, "sweep_id": started.sweep.id}
        counts = {"in_scope": started.sweep.in_scope, "joined": started.joined}
        record(engine, RECONCILE, reason=who_why[1], actor=who_why[0], scope=scope, counts=counts)
    finally:
        engine.dispose()
    return _sweep_summary(started)


def _audit_dry_run(settings: Settings, rule_name: str | None, who_why: tuple[str, str]) -> None:
    """A dry run reads every user in scope from GenAuth and changes nothing, so its audit record is best effort:
    it never prepares the database (a schema that is missing or old, or no database, only costs a warning)."""
    scope = {"rule": rule_name or ALL_RULES, "dry_run": True}
    path = sqlite_file(settings.database_url)
    if path is not None and not (os.path.exists(path) and os.path.getsize(path)):
        click.echo("warning: the dry run is not in the audit trail: the database has not been created", err=True)
        return  # opening it would create the file
    try:
        with disposing(open_engine(settings.database_url, migrate=False)) as engine:
            record(engine, RECONCILE, reason=who_why[1], actor=who_why[0], scope=scope)
    except (ServiceError, sa.exc.SQLAlchemyError) as error:
        click.echo(f"warning: the dry run is not in the audit trail: {_reason(error)}", err=True)


def _sweep_summary(started: Started) -> dict[str, Any]:
    sweep = started.sweep
    return {
        "dry_run": False,
        "sweep_id": sweep.id,
        "scope": sweep.scope,
        "resumed": started.joined,
        "finished": sweep.state == "finished",
        "interrupted": False,
        "in_scope": sweep.in_scope,
        "listed": sweep.listed,
        "decided_by": "worker",
        **dict.fromkeys(OUTCOMES),
        "rules": {name: {"in_scope": sweep.rule_counts.get(name, 0)} for name in started.plan.rules},
        **_plan_fields(started.plan),
    }


def _wait(
    settings: Settings,
    policy: Policy,
    summary: dict[str, Any],
    display: ProgressDisplay,
    quiet: bool,
    stop: threading.Event,
    received: list[int],
    timeout: float,
) -> tuple[dict[str, Any], int]:
    """``--wait``: follow the sweep to its end and the worker's decisions, and the exit code they make."""
    modes = {rule.name: rule.mode for rule in policy.rules}
    result = follow_sweep(
        settings.database_url, summary["sweep_id"], modes, display=display, quiet=quiet, stop=stop, timeout=timeout
    )
    sweep = result.sweep
    summary.update(
        finished=sweep.state == "finished",
        interrupted=result.stopped,
        in_scope=sweep.in_scope,
        listed=sweep.listed,
        rules={name: {"in_scope": sweep.rule_counts.get(name, 0)} for name in summary["rules"]},
        waited=result.summary,
    )
    if result.stopped:
        return summary, _interrupted_code(received)
    if result.timed_out or sweep.state != "finished":
        return summary, EXIT_FAILED
    return summary, EXIT_USERS_FAILED if result.summary["failed"] else 0


# -- the dry run --------------------------------------------------------------------------------------------


def _dry_run(
    services: Services,
    client: GenAuthClient,
    policy: Policy,
    rules: tuple[Rule, ...],
    display: ProgressDisplay,
    stop: threading.Event,
    received: list[int],
) -> tuple[dict[str, Any], int]:
    # The same listings, records and evaluation the worker's sweep uses, in memory: each user is evaluated
    # against the whole policy, as the worker will; each rule's block counts that rule's own outcome, and only
    # the chosen rules (``--rule``) are counted and planned.
    reconciler = services.reconciler(client, lambda: policy)
    chosen = tuple(rule.name for rule in rules)
    try:
        plan = plan_scope(rules, DepartmentResolver(client))
    except ServiceError as error:
        raise click.ClickException(f"dry run failed: {_reason(error)}") from error
    flags = user_flags(policy)
    rules_of: dict[str, set[str]] = {}
    verdicts: dict[str, Verdict] = {}
    totals: dict[str, int | None] = {}
    listed = pages = code = 0
    clock = time.monotonic()
    try:
        for source in plan.sources:
            number = 1
            while True:
                if stop.is_set():
                    raise _Stopped
                page = source.fetch(client, number, flags=flags)
                totals[source.key] = page.total
                pages += 1
                for record in page.items:
                    user_id = record.get("userId")
                    if not isinstance(user_id, str) or not user_id:
                        continue
                    listed += 1
                    rules_of.setdefault(user_id, set()).update(source.rules)
                    if user_id not in verdicts:
                        if stop.is_set():
                            raise _Stopped
                        verdicts[user_id] = _verdict(reconciler, user_id, record, chosen)
                known = None if len(totals) < len(plan.sources) else sum(t or 0 for t in totals.values())
                elapsed = time.monotonic() - clock
                display.update(Progress(listed, known, len(rules_of), pages, elapsed, listed))
                if page.is_last(number):
                    break
                number += 1
    except _Stopped:
        code = _interrupted_code(received)
    except ServiceError as error:
        click.echo(f"dry run failed: {_reason(error)}", err=True)
        code = EXIT_FAILED
    counts = dict.fromkeys(OUTCOMES, 0)
    per_rule = {name: {"in_scope": 0, **dict.fromkeys(OUTCOMES, 0)} for name in chosen}
    changes: list[dict[str, Any]] = []
    for user_id, in_rules in rules_of.items():
        verdict = verdicts.get(user_id)
        if verdict is None:
            continue  # listed, not evaluated yet when the run stopped
        counts[verdict.overall] += 1
        for name in in_rules:
            if name in per_rule:
                per_rule[name]["in_scope"] += 1
                per_rule[name][outcome_name(verdict.outcomes.get(name, Bucket.NOT_MATCHED))] += 1
        if verdict.overall not in ("compliant", "exempt", "not_matched", "inactive", "removed"):
            changes.append(verdict.change())
    summary: dict[str, Any] = {
        "dry_run": True,
        "finished": code == 0,
        "interrupted": bool(received),
        "in_scope": len(verdicts),
        "enqueued": 0,
        **counts,
        "rules": per_rule,
        **_plan_fields(plan),
        "pages": pages,
        "changes": changes,
    }
    return summary, code


class _Stopped(Exception):
    """Ctrl-C or SIGTERM during the dry run."""


def _verdict(reconciler: Any, user_id: str, record: dict[str, Any], chosen: tuple[str, ...]) -> Verdict:
    try:
        return verdict_of(user_id, reconciler.plan(user_id, dry_run=True, user=record), chosen)
    except GenAuthUserNotFoundError:
        return verdict_of(user_id, None, chosen)
    except ServiceError as error:
        return Verdict(user_id, dict.fromkeys(chosen, Bucket.FAILED), reason=_reason(error))


# -- output -------------------------------------------------------------------------------------------------


def _plan_fields(plan: ScopePlan) -> dict[str, Any]:
    return {
        "listings": [{"key": s.key, "label": s.label, "rules": list(s.rules)} for s in plan.sources],
        "unresolved": [{"rule": rule, "department": selector} for rule, selector in plan.unresolved],
    }


def _reason(error: BaseException) -> str:
    return failure_message(error) or str(error) or type(error).__name__


def _emit(as_json: bool, summary: dict[str, Any], lines: list[str]) -> None:
    if as_json:
        click.echo(json.dumps(summary, indent=2))
    else:
        for line in lines:
            click.echo(line)


def _describe(summary: dict[str, Any]) -> list[str]:
    """The human summary: scope, outcomes (dry run) or what was enqueued, per rule, and the plan."""
    lines: list[str] = []
    for item in summary.get("unresolved", []):
        lines.append(f"warning: rule {item['rule']}: department {item['department']!r} matched no department")
    lines.append("Listings:")
    lines.extend(f"  {item['label']}  [{', '.join(item['rules'])}]" for item in summary.get("listings", []))
    if summary["dry_run"]:
        state = "finished" if summary.get("finished") else "INTERRUPTED"
        lines.append(f"Dry run {state}: nothing was enqueued or written.")
        state = "so far" if not summary.get("finished") else ""
        lines.append(f"{summary['in_scope']} user(s) in scope {state}".rstrip())
        lines.extend(f"  {name.replace('_', ' '):<14} {summary[name]}" for name in OUTCOMES)
        lines.append("Per rule:")
        for name, counts in summary["rules"].items():
            detail = ", ".join(f"{counts[o]} {o.replace('_', ' ')}" for o in OUTCOMES if counts.get(o))
            lines.append(f"  {name}: {counts['in_scope']} in scope" + (f" ({detail})" if detail else ""))
        changes = summary.get("changes", [])
        if changes:
            lines.append("Plan (users the worker would change or cannot):")
            for change in changes[:PLAN_LINES]:
                name = who(change.get("username"), change.get("email"))
                lines.append(f"  {change['outcome']:<13} {change['user_id']} ({name})  {change.get('reason', '')}")
            if len(changes) > PLAN_LINES:
                lines.append(f"  … and {len(changes) - PLAN_LINES} more (--json lists them all)")
        return lines
    joined = " (joined: it was running already)" if summary.get("resumed") else ""
    waited = summary.get("waited")
    if waited is None:
        lines.append(
            f"Sweep #{summary['sweep_id']}{joined} started: its pages are on the work queue, and the worker lists "
            "and reconciles every user in scope. Follow it with `reconcile --wait` or /metrics."
        )
        return lines
    state = "finished" if summary.get("finished") else "not finished (the worker goes on with it)"
    lines.append(f"Sweep #{summary['sweep_id']}{joined} {state}: {summary['in_scope']} user(s) in scope.")
    lines.extend(f"  {name}: {counts['in_scope']} in scope" for name, counts in summary["rules"].items())
    if waited is not None:
        lines.append(
            f"Waited {waited['seconds']:.0f} s: {waited['decided']} user(s) decided by the worker, "
            f"{waited['failed']} failed or dead-lettered, {waited['pending']} still waiting. Per rule:"
        )
        for name, counts in waited["rules"].items():
            detail = ", ".join(f"{counts[c]} {c}" for c in CATEGORIES if counts.get(c))
            lines.append(f"  {name}: {detail or 'none'}")
        for failed in waited["failed_users"][:PLAN_LINES]:
            lines.append(f"  failed: {failed['user_id']} ({who(failed['username'], None)}): {failed['reason']}")
        if waited["failed"]:
            lines.append("See `mfa-enforcer dead-letters`; `mfa-enforcer replay --all --reason TEXT` retries them.")
    return lines
