"""``mfa-enforcer reconcile --wait``: follow a sweep on the queue until the worker has decided every user in it,
with progress on stderr from the sweep's row, and sum up what it decided per rule.

The sweep is done when its row says ``finished`` (every page read and its users decided) and no user it
handed to the queue as an ordinary row (a temporary failure on its page) is still waiting. What the worker
decided is then each user's latest decision with the ``reconcile`` trigger since the sweep started
(``service.store.waiting``), counted as it is read.
"""

from __future__ import annotations

import sys
import threading
import time
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from service.cli.progress import ProgressDisplay, WaitDisplay
from service.enforcement.decisions import Decision
from service.enforcement.scoping import Progress
from service.store.engine import create_engine
from service.store.people import names_of
from service.store.reporting import CATEGORIES
from service.store.sweeps import SweepRow, get_sweep
from service.store.waiting import sweep_decisions, users_waiting
from service.vocabulary import bucket, not_effective_rules

WAIT_POLL = 0.5
WAIT_IDLE_HINT = 60.0
"""Seconds without progress after which ``--wait`` says that perhaps no worker is running."""
FAILED_LISTED = 1000
"""Failed users the summary names (the count covers them all)."""


@dataclass(frozen=True)
class WaitResult:
    """What following found: the sweep as last read, the summary, and whether it ended early."""

    sweep: SweepRow
    summary: dict[str, Any]
    timed_out: bool = False
    stopped: bool = False


def follow_sweep(
    database_url: str,
    sweep_id: int,
    rule_modes: dict[str, str],
    *,
    display: ProgressDisplay,
    quiet: bool,
    stop: threading.Event,
    timeout: float,
) -> WaitResult:
    """Poll the sweep until it is over and its users are decided (or ``timeout`` seconds, 0: none, or ``stop``)."""
    engine = create_engine(database_url)
    waiting = WaitDisplay(sys.stderr, enabled=not quiet)
    started = last_change = time.monotonic()
    hinted = timed_out = stopped = False
    last: tuple[int, int, str] | None = None
    try:
        while True:
            sweep = get_sweep(engine, sweep_id)
            assert sweep is not None, "a sweep row is kept while it runs"
            now = time.monotonic()
            queued = users_waiting(engine) if sweep.state == "finished" else 0
            if sweep.state == "running":
                display.update(Progress(sweep.listed, sweep.expected, sweep.in_scope, 0, now - started, sweep.listed))
            elif queued:
                display.close()
                waiting.update(sweep.in_scope - queued, sweep.in_scope, 0, now - started)
            if sweep.state != "running" and not queued:
                break
            if (sweep.listed, queued, sweep.state) != last:
                last, last_change, hinted = (sweep.listed, queued, sweep.state), now, False
            if not hinted and now - last_change >= WAIT_IDLE_HINT:
                waiting.note(f"no progress for {WAIT_IDLE_HINT:.0f} s: is a worker running against this database?")
                hinted = True
            if timeout and now - started >= timeout:
                waiting.note(f"gave up after {timeout:g} s (--wait-timeout): the sweep goes on in the worker")
                timed_out = True
                break
            if stop.wait(WAIT_POLL):
                stopped = True
                break
        display.close()
        summary = _waited_summary(engine, sweep, rule_modes, time.monotonic() - started, queued)
        total = summary["decided"] + summary["pending"]
        waiting.update(summary["decided"], total, summary["failed"], time.monotonic() - started)
    finally:
        waiting.close()
        engine.dispose()
    return WaitResult(sweep, summary, timed_out=timed_out, stopped=stopped)


def _waited_summary(
    engine: sa.Engine, sweep: SweepRow, rule_modes: dict[str, str], seconds: float, pending: int
) -> dict[str, Any]:
    per_rule: dict[str, dict[str, int]] = {}
    failed_users: list[dict[str, str | None]] = []
    decided = failed = 0
    for decision in sweep_decisions(engine, sweep.started_at, into=Decision):
        if decision.action == "unknown":
            continue  # its write is being confirmed: the user is still waiting
        decided += 1
        if decision.action == "failed":
            failed += 1
            if len(failed_users) < FAILED_LISTED:
                failed_users.append(
                    {"user_id": decision.user_id, "username": decision.username, "reason": decision.reason}
                )
            continue
        gaps = not_effective_rules(decision.not_effective)
        for rule, label in decision.outcomes.items():  # a removed user: under the rules of their last known status
            counts = per_rule.setdefault(rule, dict.fromkeys(CATEGORIES, 0))
            rule_mode, gap = rule_modes.get(rule, "enforce"), rule in gaps
            counts[
                bucket(label, action=decision.action, mode=decision.mode, rule_mode=rule_mode, not_effective=gap)
            ] += 1
    # A dead-letter decision carries no name: show the one recorded earlier.
    names = names_of(engine, [str(entry["user_id"]) for entry in failed_users])
    for entry in failed_users:
        name = names.get(str(entry["user_id"]))
        entry["username"] = entry["username"] or (name.username or name.email if name else None)
    return {
        "decided": decided,
        "pending": pending if sweep.state != "running" else max(pending, sweep.in_scope - decided),
        "failed": failed,
        "failed_users": failed_users,
        "rules": per_rule,
        "seconds": round(seconds, 3),
    }
