"""``mfa-enforcer reconcile``: put every user in scope of the rules on the work queue (or, with ``--dry-run``,
evaluate them and print the plan without enqueueing or writing anything).

It catches whatever webhooks missed. Scope and paging are ``service.enforcement.scoping``; the enqueueing
sweep, its lock and its resumable progress are ``service.worker.sweeping``. The worker then reconciles each
user through the one enforcement path. Progress goes to stderr (a bar on a terminal, a line every 500 users
or 10 s otherwise); the summary to stdout, as JSON with ``--json``. Ctrl-C (or SIGTERM) stops after the page
in hand; running the command again resumes.

Exit codes: 0 done; 1 failed (GenAuth or the database; progress is kept); 2 bad usage or settings; 3 another
sweep holds the lock; 128 + signal number when interrupted.
"""

from __future__ import annotations

import json
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
from service.errors import ServiceError, TemporaryError
from service.genauth.client import GenAuthClient
from service.genauth.throttling import RateLimiter
from service.policy.errors import PolicyError
from service.policy.loading import load_policy
from service.policy.rules import Rule
from service.settings import Settings
from service.store.decisions import Decision
from service.store.engine import create_engine, prepare_database
from service.store.sweeps import ALL_RULES, SweepLockLostError
from service.worker.sweeping import StoredSweep, SweepBusyError, SweepResult, userpool_id_for

EXIT_FAILED = 1
EXIT_BUSY = 3
OUTCOMES = ("compliant", "to_enforce", "unsatisfiable", "exempt", "failed", "not_matched")
PLAN_LINES = 50


class Interrupted(Exception):
    """Ctrl-C or SIGTERM arrived; ``signum`` says which."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


@click.command()
@click.option("--dry-run", is_flag=True, help="Evaluate each user in scope and print the plan; change nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON on stdout.")
@click.option("--rule", "rule_name", metavar="NAME", help="Only the users in scope of this rule.")
@click.option("--restart", is_flag=True, help="Start over instead of resuming an unfinished sweep.")
@click.option("--quiet", is_flag=True, help="No progress on stderr.")
def reconcile(dry_run: bool, as_json: bool, rule_name: str | None, restart: bool, quiet: bool) -> None:
    """Enqueue every user in scope of the rules, so the worker reconciles them (catches missed webhooks)."""
    settings = settings_or_exit(logs=False)
    try:
        policy = load_policy(settings.policy_file)
    except PolicyError as error:
        raise click.ClickException(str(error)) from error
    rules = _select_rules(policy.rules, rule_name)
    if not rules:
        _emit(
            as_json, {"dry_run": dry_run, "finished": True, "in_scope": 0, "rules": {}}, "no rules: nobody is in scope"
        )
        return
    display = ProgressDisplay(sys.stderr, enabled=not quiet)
    limiter = RateLimiter(settings.genauth.rate_limit, settings.genauth.rate_burst)
    client = GenAuthClient(settings.genauth, limiter=limiter)
    stop = threading.Event()
    started = time.monotonic()
    try:
        with _stop_on_signals(stop) as received:
            if dry_run:
                summary, code = _dry_run(settings, client, rules, display, stop, received)
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
def _stop_on_signals(stop: threading.Event) -> Iterator[list[int]]:
    """Ctrl-C or SIGTERM sets ``stop`` (the sweep ends after the page in hand); a second Ctrl-C aborts."""
    received: list[int] = []

    def _handle(signum: int, _frame: FrameType | None) -> None:
        if stop.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt
        received.append(signum)
        stop.set()

    previous = {signum: signal.signal(signum, _handle) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield received
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _interrupted_code(received: list[int]) -> int:
    return 128 + (received[0] if received else signal.SIGINT)


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
        prepare_database(engine)
        sweep.start()
        sweep.step()
    except SweepBusyError as busy:
        holder = busy.holder
        raise click.ClickException(
            f"another reconcile sweep is running (lock held by {holder.owner} until "
            f"{time.strftime('%H:%M:%S', time.localtime(holder.expires_at))}, renewed while it works); "
            "not starting a second one. Try again when it has finished."
        ) from busy if False else _exit_with(EXIT_BUSY, busy)
    except SweepStoppedError:
        code = _interrupted_code(received)
    except (ServiceError, SweepLockLostError, sa.exc.SQLAlchemyError) as error:
        if sweep.sweeper is None:
            raise click.ClickException(f"reconcile failed before it started: {_reason(error)}") from error
        click.echo(f"reconcile failed: {_reason(error)}; progress is saved, run it again to resume", err=True)
        code = EXIT_FAILED
    finally:
        sweep.close()
        engine.dispose()
    if sweep.sweeper is None:  # interrupted while planning
        raise click.ClickException("interrupted before the sweep started; nothing was enqueued")
    return _sweep_summary(sweep.result(), interrupted=bool(received)), code


def _exit_with(code: int, error: SweepBusyError) -> click.ClickException:
    failure = click.ClickException(
        f"another reconcile sweep is running (lock held by {error.holder.owner}, renewed while it works); "
        "not starting a second one. Try again when it has finished."
    )
    failure.exit_code = code
    return failure


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
    }
    summary.update(dict.fromkeys(OUTCOMES))
    summary["rules"] = {name: {"in_scope": count} for name, count in result.rule_counts.items()}
    summary.update(_plan_fields(result.plan))
    summary["pages"] = result.pages
    return summary


# -- the dry run ----------------------------------------------------------------------------------------------


def _dry_run(
    settings: Settings,
    client: GenAuthClient,
    rules: tuple[Rule, ...],
    display: ProgressDisplay,
    stop: threading.Event,
    received: list[int],
) -> tuple[dict[str, Any], int]:
    names = {rule.name for rule in rules}
    reconciler = Reconciler(
        client,
        lambda: load_policy(settings.policy_file) if False else policy_of(rules, settings),
        force_audit=settings.is_audit,
    )
    ledger = MemoryLedger()
    outcome_of: dict[str, str] = {}
    changes: list[dict[str, Any]] = []
    userpool_id = userpool_id_for(settings)

    def evaluate(user_ids: list[str]) -> None:
        for user_id in user_ids:
            if stop.is_set():
                raise SweepStoppedError()
            try:
                decision = call_with_retries(
                    lambda user_id=user_id: reconciler.preview(userpool_id, user_id, trigger="reconcile-dry-run"),
                    stop=stop,
                    base=settings.worker.backoff_base,
                )
            except ServiceError as error:
                outcome_of[user_id] = "failed"
                changes.append({"user_id": user_id, "outcome": "failed", "reason": _reason(error)})
                continue
            outcome = _outcome(decision, names)
            outcome_of[user_id] = outcome
            if outcome not in ("compliant", "not_matched"):
                changes.append(_change(decision, outcome))

    code = 0
    plan: ScopePlan | None = None
    sweeper: Sweeper | None = None
    try:
        plan = call_with_retries(
            lambda: plan_scope(rules, DepartmentResolver(client)), stop=stop, base=settings.worker.backoff_base
        )
        sweeper = Sweeper(
            client,
            plan,
            ledger,
            on_new_users=evaluate,
            on_progress=display.update,
            stop=stop,
            retry_base=settings.worker.backoff_base,
        )
        sweeper.run()
    except SweepStoppedError:
        code = _interrupted_code(received)
    except ServiceError as error:
        click.echo(f"dry run failed: {_reason(error)}", err=True)
        code = EXIT_FAILED
    if plan is None:
        raise click.ClickException("interrupted before the plan was made" if received else "no plan was made")
    summary: dict[str, Any] = {
        "dry_run": True,
        "finished": sweeper is not None and sweeper.is_finished and code == 0,
        "interrupted": bool(received),
        "in_scope": ledger.in_scope(),
        "enqueued": 0,
    }
    counted = {outcome: 0 for outcome in OUTCOMES}
    for outcome in outcome_of.values():
        counted[outcome] = counted.get(outcome, 0) + 1
    summary.update(counted)
    per_rule: dict[str, dict[str, int]] = {rule.name: {"in_scope": 0, **dict.fromkeys(OUTCOMES, 0)} for rule in rules}
    for user_id, in_rules in ledger.rules_of.items():
        outcome = outcome_of.get(user_id)
        for name in in_rules:
            per_rule[name]["in_scope"] += 1
            if outcome is not None:
                per_rule[name][outcome] = per_rule[name].get(outcome, 0) + 1
    summary["rules"] = per_rule
    summary.update(_plan_fields(plan))
    summary["pages"] = sweeper.pages if sweeper is not None else 0
    summary["changes"] = changes
    return summary, code
