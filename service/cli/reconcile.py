"""``mfa-enforcer reconcile``: put every user in scope of the rules on the work queue (or, with ``--dry-run``,
evaluate them and print the plan without enqueueing or writing anything).

It catches whatever webhooks missed. Scope and paging are ``service.enforcement.scoping``; the enqueueing
sweep, its lock and its resumable progress are ``service.worker.sweeping``; the worker then reconciles each
user through the one enforcement path. Progress goes to stderr (a bar on a terminal, a line every 500 users
or 10 s otherwise), the summary to stdout (JSON with ``--json``). Ctrl-C or SIGTERM stops after the page in
hand, and running the command again resumes.

Exit codes: 0 done; 1 failed (GenAuth or the database; progress is kept); 2 bad usage or settings; 3 another
sweep holds the lock; 128 + the signal number when interrupted (130 for Ctrl-C).
"""

from __future__ import annotations

import json
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

import click
import sqlalchemy as sa

from service.cli.common import settings_or_exit
from service.cli.progress import ProgressDisplay
from service.enforcement.reconciling import Reconciler
from service.enforcement.scoping import (
    DepartmentResolver,
    MemoryLedger,
    ScopePlan,
    Sweeper,
    SweepStoppedError,
    call_with_retries,
    plan_scope,
)
from service.errors import ServiceError
from service.genauth.client import GenAuthClient
from service.genauth.throttling import RateLimiter
from service.policy.errors import PolicyError
from service.policy.loading import load_policy
from service.policy.rules import Policy, Rule
from service.settings import Settings
from service.store.decisions import Decision
from service.store.engine import create_engine
from service.store.migrating import ensure_schema
from service.store.sweeps import ALL_RULES, SweepLockLostError
from service.worker.sweeping import StoredSweep, SweepBusyError, SweepResult, userpool_id_for

EXIT_FAILED = 1
EXIT_BUSY = 3
OUTCOMES = ("compliant", "to_enforce", "unsatisfiable", "exempt", "failed", "not_matched")
_OUTCOME_OF_ACTION = {
    "would-enforce": "to_enforce",
    "enforced": "to_enforce",
    "unsatisfiable": "unsatisfiable",
    "exempt": "exempt",
    "failed": "failed",
}
PLAN_LINES = 50


class SweepBusyExit(click.ClickException):
    """Another sweep holds the lock: exit code 3, so a CronJob run shows it did not sweep."""

    exit_code = EXIT_BUSY


@click.command()
@click.option("--dry-run", is_flag=True, help="Evaluate each user in scope and print the plan; change nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON on stdout.")
@click.option("--rule", "rule_name", metavar="NAME", help="Only the users in scope of this rule.")
@click.option("--restart", is_flag=True, help="Start over instead of resuming an unfinished sweep.")
@click.option("--quiet", is_flag=True, help="No progress on stderr.")
def reconcile(dry_run: bool, as_json: bool, rule_name: str | None, restart: bool, quiet: bool) -> None:
    """Enqueue every user in scope of the rules, so the worker reconciles them (catches missed webhooks)."""
    settings = settings_or_exit(logs=False, role="worker")  # GenAuth and the database; no webhook secret
    try:
        policy = load_policy(settings.policy_file)
    except PolicyError as error:
        raise click.ClickException(str(error)) from error
    rules = _select_rules(policy.rules, rule_name)
    if not rules:
        _emit(
            as_json,
            {"dry_run": dry_run, "finished": True, "in_scope": 0, "rules": {}},
            ["no rules: nobody is in scope"],
        )
        return
    display = ProgressDisplay(sys.stderr, enabled=not quiet)
    client = GenAuthClient(
        settings.genauth, limiter=RateLimiter(settings.genauth.rate_limit, settings.genauth.rate_burst)
    )
    started = time.monotonic()
    try:
        with _stop_on_signals() as (stop, received):
            if dry_run:
                summary, code = _dry_run(settings, client, policy, rules, display, stop, received)
            else:
                summary, code = _sweep(settings, client, rules, rule_name, restart, display, stop, received)
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
    """Ctrl-C or SIGTERM sets the event (the sweep ends after the page in hand); a second Ctrl-C aborts."""
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


# -- the enqueueing sweep -----------------------------------------------------------------------------------


def _sweep(
    settings: Settings,
    client: GenAuthClient,
    rules: tuple[Rule, ...],
    rule_name: str | None,
    restart: bool,
    display: ProgressDisplay,
    stop: threading.Event,
    received: list[int],
) -> tuple[dict[str, Any], int]:
    engine = create_engine(settings.database_url)
    sweep = StoredSweep(
        engine,
        client,
        rules,
        scope=rule_name or ALL_RULES,
        userpool_id=userpool_id_for(settings),
        restart=restart,
        on_progress=display.update,
        stop=stop,
        retry_base=settings.worker.backoff_base,
    )
    code = 0
    try:
        ensure_schema(engine, migrate=settings.migrate_on_start)
        sweep.start()
        sweep.step()
    except SweepBusyError as busy:
        until = time.strftime("%H:%M:%S", time.localtime(busy.holder.expires_at))
        raise SweepBusyExit(
            f"another reconcile sweep is running (lock held by {busy.holder.owner}, renewed while it works, "
            f"now until {until}); not starting a second one. Try again when it has finished."
        ) from busy
    except SweepStoppedError:
        code = _interrupted_code(received)
    except (ServiceError, SweepLockLostError, sa.exc.SQLAlchemyError) as error:
        if sweep.sweeper is None:
            raise click.ClickException(f"reconcile failed before it started: {_reason(error)}") from error
        click.echo(f"reconcile failed: {_reason(error)}; progress is saved, run it again to resume", err=True)
        code = EXIT_FAILED
    finally:
        sweep.close()
    if sweep.plan is None:  # stopped (or failed) while the scope was still being planned: nothing to report
        engine.dispose()
        click.echo("reconcile stopped before its plan was made; nothing was enqueued", err=True)
        raise SystemExit(code or EXIT_FAILED)
    try:
        result = sweep.result()
    finally:
        engine.dispose()
    return _sweep_summary(result, interrupted=bool(received)), code


def _sweep_summary(result: SweepResult, *, interrupted: bool) -> dict[str, Any]:
    summary: dict[str, Any] = {
        "dry_run": False,
        "sweep_id": result.sweep_id,
        "scope": result.scope,
        "resumed": result.resumed,
        "finished": result.finished,
        "interrupted": interrupted,
        "in_scope": result.in_scope,
        "enqueued": result.in_scope,
        "enqueued_this_run": result.enqueued,
        "decided_by": "worker",
        **dict.fromkeys(OUTCOMES),
        "rules": {name: {"in_scope": count} for name, count in result.rule_counts.items()},
        **_plan_fields(result.plan),
        "pages": result.pages,
    }
    return summary


# -- the dry run --------------------------------------------------------------------------------------------


def _dry_run(
    settings: Settings,
    client: GenAuthClient,
    policy: Policy,
    rules: tuple[Rule, ...],
    display: ProgressDisplay,
    stop: threading.Event,
    received: list[int],
) -> tuple[dict[str, Any], int]:
    # Each user is previewed against the whole policy: that is what the worker will decide for them.
    reconciler = Reconciler(client, lambda: policy, force_audit=settings.is_audit)
    userpool_id = userpool_id_for(settings)
    base = settings.worker.backoff_base
    ledger = MemoryLedger()
    outcome_of: dict[str, str] = {}
    changes: list[dict[str, Any]] = []

    def evaluate(user_ids: list[str]) -> None:
        for user_id in user_ids:
            if stop.is_set():
                raise SweepStoppedError()
            try:
                decision = call_with_retries(_previewer(reconciler, userpool_id, user_id), stop=stop, base=base)
            except ServiceError as error:
                outcome_of[user_id] = "failed"
                changes.append({"user_id": user_id, "outcome": "failed", "action": "failed", "reason": _reason(error)})
                continue
            outcome_of[user_id] = _outcome(decision)
            if outcome_of[user_id] not in ("compliant", "not_matched"):
                changes.append(_change(decision, outcome_of[user_id]))

    code = 0
    sweeper: Sweeper | None = None
    try:
        plan = call_with_retries(lambda: plan_scope(rules, DepartmentResolver(client)), stop=stop, base=base)
    except SweepStoppedError as stopped:
        raise click.ClickException("interrupted before the plan was made") from stopped
    except ServiceError as error:
        raise click.ClickException(f"dry run failed: {_reason(error)}") from error
    sweeper = Sweeper(
        client, plan, ledger, on_new_users=evaluate, on_progress=display.update, stop=stop, retry_base=base
    )
    try:
        sweeper.run()
    except SweepStoppedError:
        code = _interrupted_code(received)
    except ServiceError as error:
        click.echo(f"dry run failed: {_reason(error)}", err=True)
        code = EXIT_FAILED
    counts = dict.fromkeys(OUTCOMES, 0)
    per_rule = {rule.name: {"in_scope": 0, **dict.fromkeys(OUTCOMES, 0)} for rule in rules}
    for user_id, in_rules in ledger.rules_of.items():
        outcome = outcome_of.get(user_id)
        if outcome is not None:
            counts[outcome] += 1
        for name in in_rules:
            per_rule[name]["in_scope"] += 1
            if outcome is not None:
                per_rule[name][outcome] += 1
    summary: dict[str, Any] = {
        "dry_run": True,
        "finished": sweeper.is_finished and code == 0,
        "interrupted": bool(received),
        "in_scope": ledger.in_scope(),
        "enqueued": 0,
        **counts,
        "rules": per_rule,
        **_plan_fields(plan),
        "pages": sweeper.pages,
        "changes": changes,
    }
    return summary, code


def _previewer(reconciler: Reconciler, userpool_id: str, user_id: str) -> Callable[[], Decision]:
    return lambda: reconciler.preview(userpool_id, user_id, trigger="reconcile-dry-run")


def _outcome(decision: Decision) -> str:
    if decision.action == "none":
        return "compliant" if decision.rules else "not_matched"
    return _OUTCOME_OF_ACTION.get(decision.action, "failed")


def _change(decision: Decision, outcome: str) -> dict[str, Any]:
    return {
        "user_id": decision.user_id,
        "outcome": outcome,
        "action": decision.action,
        "rules": list(decision.rules),
        "required": list(decision.required),
        "before": list(decision.before),
        "reason": decision.reason,
    }


# -- output -------------------------------------------------------------------------------------------------


def _plan_fields(plan: ScopePlan) -> dict[str, Any]:
    return {
        "listings": [{"key": s.key, "label": s.label, "rules": list(s.rules)} for s in plan.sources],
        "unresolved": [{"rule": rule, "department": selector} for rule, selector in plan.unresolved],
    }


def _reason(error: BaseException) -> str:
    return str(error) or type(error).__name__


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
    lines.append("Listings read:")
    lines.extend(f"  {item['label']}  [{', '.join(item['rules'])}]" for item in summary.get("listings", []))
    state = "finished" if summary.get("finished") else "INTERRUPTED (run again to resume)"
    if summary["dry_run"]:
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
                lines.append(f"  {change['outcome']:<13} {change['user_id']}  {change.get('reason', '')}")
            if len(changes) > PLAN_LINES:
                lines.append(f"  … and {len(changes) - PLAN_LINES} more (--json lists them all)")
        return lines
    resumed = " (resumed)" if summary.get("resumed") else ""
    lines.append(
        f"Sweep #{summary['sweep_id']}{resumed} {state}: {summary['in_scope']} user(s) in scope, "
        f"{summary['enqueued']} enqueued ({summary['enqueued_this_run']} by this run). "
        "The worker decides what each one needs."
    )
    lines.extend(f"  {name}: {counts['in_scope']} in scope" for name, counts in summary["rules"].items())
    return lines
