"""End-to-end benchmark: webhooks in through gunicorn (production settings, worker thread on), the worker
reconciling against the GenAuth emulator with 50 ms per management API request; GenAuth calls per delivery.

    .venv/bin/python bench/e2e.py                       # SQLite, single node (ENFORCER_RUN_WORKER=true)
    .venv/bin/python bench/e2e.py --db postgres --extra-workers 4   # scale-out: web + 4 `mfa-enforcer worker`

1. Baseline, measured first in the same run: one GenAuth call's round trip through the service's own client at
   the configured latency. From it, the ideal drain rate = worker threads / (6 calls x round trip), the best a
   sequential worker could do for a user who needs a write.
2. Probes, one delivery at a time, each waited for until its decision is recorded: a compliant Finance user,
   a non-compliant one, the same one again once compliant, and a user no rule matches. GenAuth calls are counted
   from the emulator's journal, per user (the management-token request is shown separately).
3. Bulk: ``--deliveries`` (10,000) login deliveries round-robin over ``--users`` (1,000) non-compliant Finance
   users, from ``--concurrency`` connections; then wait (at most ``--drain-timeout`` s) until every user has SMS
   and the queue is empty. Writes per user, calls per delivery and throughput come from the journal and clocks.

Targets (issue 3): a compliant user costs no write and at most three reads; 10,000 deliveries over 1,000 users
drain with at most one write per user.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


from bench.common import (
    BIN,
    ROOT,
    Gunicorn,
    Tables,
    add_database_arguments,
    calls_by_user,
    closed_loop,
    database,
    emulator_env,
    has_sms,
    log,
    print_header,
    print_table,
    reads_and_writes,
    seed_population,
    start_emulator,
    upgrade_database,
    verdict,
    webhook_request,
)

CALLS_FOR_A_WRITE = 4  # get-user with get-mfa-status (sent together), set-mfa-status, read-back


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_database_arguments(parser)
    parser.add_argument("--users", type=int, default=1000, help="non-compliant Finance users in the bulk run")
    parser.add_argument("--deliveries", type=int, default=10000, help="bulk deliveries, round-robin over users")
    parser.add_argument("--latency", type=float, default=0.05, help="seconds added to each GenAuth API request")
    parser.add_argument("--concurrency", type=int, default=8, help="connections posting the bulk deliveries")
    parser.add_argument("--drain-timeout", type=float, default=600.0, help="give up waiting after this many s")
    parser.add_argument("--web-concurrency", type=int, default=2, help="gunicorn processes (WEB_CONCURRENCY)")
    parser.add_argument(
        "--extra-workers",
        type=int,
        default=0,
        help="0: single node, a worker thread in each web process; N: ENFORCER_RUN_WORKER=false on web and N "
        "`mfa-enforcer worker` processes (use --db postgres)",
    )
    parser.add_argument("--logs", type=Path, help="keep the service's logs in this folder")
    arguments = parser.parse_args()
    if arguments.users < 1 or arguments.deliveries < arguments.users or arguments.drain_timeout > 3600:
        parser.error("need --users >= 1, --deliveries >= --users and --drain-timeout <= 3600")
    return arguments


def measure_call_latency(emulator, samples: int = 20) -> float:  # type: ignore[no-untyped-def]
    """Median seconds of one management API call through the service's own client (token fetched first)."""
    from service.genauth import users
    from service.genauth.client import GenAuthClient
    from service.settings import GenAuthSettings

    client = GenAuthClient(
        GenAuthSettings(
            host=emulator.url,
            access_key_id=emulator.state.access_key_id,
            access_key_secret=emulator.state.access_key_secret,
        )
    )
    user_id = emulator.state.user_ids()[0]
    users.get_user(client, user_id)
    times = []
    for _ in range(samples):
        started = time.perf_counter()
        users.get_user(client, user_id)
        times.append(time.perf_counter() - started)
    client.close()
    return statistics.median(times)


def main() -> int:
    arguments = parse_arguments()
    print_header(f"End-to-end benchmark ({arguments.db}, GenAuth latency {arguments.latency * 1000:.0f} ms)")
    emulator = start_emulator(latency=0.0)
    state = emulator.state
    probes = seed_population(state, non_compliant=1, compliant=1, outside=1, prefix="probe")
    log(f"seeding {arguments.users} users")
    bulk_users = seed_population(state, non_compliant=arguments.users, prefix="bulk").non_compliant
    bulk_requests = [webhook_request(state, user_id) for user_id in bulk_users]
    emulator.faults.latency = arguments.latency
    call_seconds = measure_call_latency(emulator)
    emulator.journal.clear()
    scale_out = arguments.extra_workers > 0
    worker_threads = arguments.extra_workers if scale_out else arguments.web_concurrency
    log(f"one GenAuth call: {call_seconds * 1000:.1f} ms; {worker_threads} worker thread(s)")
    processes = []
    try:
        with tempfile.TemporaryDirectory(prefix="bench-e2e-") as scratch:
            folder = arguments.logs or Path(scratch)
            folder.mkdir(parents=True, exist_ok=True)
            with database(arguments.db, Path(scratch), name="e2e", pg_url=arguments.pg_url) as database_url:
                env = emulator_env(
                    emulator,
                    database_url,
                    ENFORCER_RUN_WORKER="false" if scale_out else "true",
                    WEB_CONCURRENCY=str(arguments.web_concurrency),
                )
                upgrade_database(env)
                web = Gunicorn("service.app:create_app()", env, folder / "web.log")
                with web:
                    for number in range(arguments.extra_workers):
                        processes.append(start_worker(env, folder / f"worker-{number}.log"))
                    db = Tables(database_url)
                    try:
                        probe_rows, probe_checks = run_probes(web, emulator, probes, db)
                        bulk = run_bulk(arguments, web, emulator, bulk_users, bulk_requests, db)
                    finally:
                        db.close()
                    for process in processes:
                        stop_process(process)
                    processes.clear()
    finally:
        for process in processes:
            stop_process(process)
        emulator.stop()
    report(arguments, call_seconds, worker_threads, probe_rows, probe_checks, bulk)
    return 0


def start_worker(env, log_path: Path):  # type: ignore[no-untyped-def]
    import subprocess

    with log_path.open("ab") as log_file:
        return subprocess.Popen(
            [str(BIN / "mfa-enforcer"), "worker"], cwd=ROOT, env=env, stdout=log_file, stderr=subprocess.STDOUT
        )


def stop_process(process) -> None:  # type: ignore[no-untyped-def]
    import signal
    import subprocess

    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(40)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def deliver_and_wait(web, emulator, db, user_id: str, *, decisions_before: int, timeout: float = 60.0):  # type: ignore[no-untyped-def]
    """Post one delivery, wait for the user's next decision; return (ack ms, calls by endpoint, status)."""
    mark = len(emulator.journal.entries())
    request = webhook_request(emulator.state, user_id)
    result = closed_loop(web.port, lambda _i: request, concurrency=1, count=1, timeout=10)
    sample = result.samples[0]
    deadline = time.monotonic() + timeout
    while db.decisions(user_id) <= decisions_before:
        web.check_alive()
        if time.monotonic() > deadline:
            raise TimeoutError(f"no decision for {user_id} within {timeout}s")
        time.sleep(0.05)
    time.sleep(0.2)  # let the journal record the last answer
    calls = calls_by_user(emulator.journal.entries()[mark:]).get(user_id, Counter())
    return sample.latency_ms, calls, sample.status


def run_probes(web, emulator, probes, db):  # type: ignore[no-untyped-def]
    compliant, non_compliant, outside = probes.compliant[0], probes.non_compliant[0], probes.outside[0]
    cases = [
        ("compliant Finance user (SMS on)", compliant, 0),
        ("non-compliant Finance user", non_compliant, 0),
        ("same user, delivered again (now compliant)", non_compliant, 1),
        ("user no rule matches (Engineering)", outside, 0),
    ]
    rows, checks = [], {}
    for label, user_id, before in cases:
        log(f"probe: {label}")
        ack_ms, calls, status = deliver_and_wait(web, emulator, db, user_id, decisions_before=before)
        reads, writes = reads_and_writes(calls)
        detail = ", ".join(f"{name} {n}" for name, n in sorted(calls.items()))
        rows.append([label, status, ack_ms, reads, writes, db.last_action(user_id), detail])
        checks[label] = (reads, writes)
    token_requests = emulator.journal.count("/api/v3/get-management-token")
    return rows, {**checks, "token requests": token_requests}


def run_bulk(arguments, web, emulator, users, requests, db):  # type: ignore[no-untyped-def]
    state = emulator.state
    mark = len(emulator.journal.entries())
    decisions_before = db.decisions()
    log(f"bulk: {arguments.deliveries} deliveries over {len(users)} users, {arguments.concurrency} connections")
    started_wall = time.perf_counter()
    intake = closed_loop(
        web.port,
        lambda index: requests[index % len(requests)],
        concurrency=arguments.concurrency,
        count=arguments.deliveries,
        timeout=30,
        max_seconds=arguments.drain_timeout,
    )
    log(f"bulk: intake done in {intake.elapsed:.1f}s ({intake.acked} acked); waiting for the worker to drain")
    remaining = set(users)
    enforced_at = drained_at = None
    deadline = started_wall + arguments.drain_timeout
    last_report = time.monotonic()
    while time.perf_counter() < deadline:
        web.check_alive()
        remaining = {user_id for user_id in remaining if not has_sms(state, user_id)}
        now = time.perf_counter()
        if not remaining and enforced_at is None:
            enforced_at = now
        if enforced_at is not None and db.pending() == 0:
            drained_at = time.perf_counter()
            break
        if time.monotonic() - last_report > 15:
            log(f"bulk: {len(users) - len(remaining)}/{len(users)} enforced, {db.pending()} rows pending")
            last_report = time.monotonic()
        time.sleep(0.25)
    time.sleep(0.3)
    entries = emulator.journal.entries()[mark:]
    per_user = calls_by_user(entries)
    bulk_set = set(users)
    writes = Counter({user: per_user.get(user, Counter())["set-mfa-status"] for user in users})
    totals: Counter[str] = Counter()
    for user, counts in per_user.items():
        if user in bulk_set:
            totals.update(counts)
    reconciles = db.decisions() - decisions_before
    return {
        "intake": intake,
        "started": started_wall,
        "enforced_at": enforced_at,
        "drained_at": drained_at,
        "remaining": len(remaining),
        "writes": writes,
        "totals": totals,
        "token_requests": sum(1 for e in entries if e.path.endswith("get-management-token")),
        "reconciles": reconciles,
        "pending_left": db.pending(),
    }


def report(arguments, call_seconds, worker_threads, probe_rows, probe_checks, bulk) -> None:  # type: ignore[no-untyped-def]
    mode = (
        f"scale-out: web ENFORCER_RUN_WORKER=false + {arguments.extra_workers} `mfa-enforcer worker`"
        if arguments.extra_workers
        else f"single node: ENFORCER_RUN_WORKER=true, {arguments.web_concurrency} web processes"
    )
    ideal_rate = worker_threads / (CALLS_FOR_A_WRITE * call_seconds)
    print_table(
        ["baseline (same run)", "value"],
        [
            ["one GenAuth call through the service's client (median of 20)", f"{call_seconds * 1000:.1f} ms"],
            ["worker threads", f"{worker_threads} ({mode})"],
            [
                f"ideal drain, sequential worker, {CALLS_FOR_A_WRITE} calls per non-compliant user",
                f"{ideal_rate:.1f} users/s",
            ],
        ],
        title="Baseline",
    )
    print_table(
        ["probe", "HTTP", "ack ms", "GenAuth reads", "GenAuth writes", "decision", "calls"],
        probe_rows,
        title="GenAuth calls per delivery (one delivery at a time, waited for)",
    )
    print(
        f"Management-token requests during the probes: {probe_checks['token requests']} (one per worker client, "
        "cached until shortly before expiry; not counted above)\n"
    )
    intake = bulk["intake"]
    totals = bulk["totals"]
    reads = sum(n for name, n in totals.items() if name != "set-mfa-status")
    writes_total = totals["set-mfa-status"]
    writes = bulk["writes"]
    users = arguments.users
    started = bulk["started"]
    enforced_s = (bulk["enforced_at"] - started) if bulk["enforced_at"] else float("nan")
    drained_s = (bulk["drained_at"] - started) if bulk["drained_at"] else float("nan")
    rows = [
        ["deliveries sent / acknowledged (2xx)", f"{intake.sent:,} / {intake.acked:,}"],
        [
            "intake: time, acked/s, p50 / p99 ack",
            f"{intake.elapsed:.1f} s, {intake.acked_per_second:,.0f}/s, {intake.pct(50):.1f} / {intake.pct(99):.1f} ms",
        ],
        ["every user enforced after", f"{enforced_s:.1f} s"],
        ["queue drained after", f"{drained_s:.1f} s"],
        ["deliveries to enforced users per second (end to end)", f"{intake.acked / drained_s:,.1f}/s"],
        ["users enforced per second", f"{users / enforced_s:.2f}/s"],
        ["vs ideal sequential drain (baseline)", f"{(users / enforced_s) / ideal_rate:.2f}"],
        [
            "GenAuth-bound floor: calls made x round trip / worker threads (ratio)",
            f"{(reads + writes_total) * call_seconds / worker_threads:.1f} s "
            f"({(reads + writes_total) * call_seconds / worker_threads / enforced_s:.2f} of the time to enforce)",
        ],
        ["reconciles (decisions recorded)", f"{bulk['reconciles']:,} ({bulk['reconciles'] / users:.2f} per user)"],
        ["GenAuth reads / writes", f"{reads:,} / {writes_total:,}"],
        ["GenAuth calls per delivery", f"{(reads + writes_total) / max(intake.acked, 1):.3f}"],
        [
            "writes per user: max, users with 0 / 1 / >1",
            f"{max(writes.values(), default=0)}, {sum(1 for n in writes.values() if n == 0)} / "
            f"{sum(1 for n in writes.values() if n == 1)} / {sum(1 for n in writes.values() if n > 1)}",
        ],
        ["management-token requests", f"{bulk['token_requests']}"],
        ["users without SMS at the end / pending rows left", f"{bulk['remaining']} / {bulk['pending_left']}"],
        ["reads by endpoint", ", ".join(f"{k} {v:,}" for k, v in sorted(totals.items()) if k != "set-mfa-status")],
    ]
    print_table(
        ["bulk run", "value"],
        rows,
        title=f"Bulk: {arguments.deliveries:,} deliveries round-robin over {users:,} users, "
        f"{arguments.concurrency} connections, GenAuth latency {arguments.latency * 1000:.0f} ms",
    )
    compliant = probe_checks["compliant Finance user (SMS on)"]
    again = probe_checks["same user, delivered again (now compliant)"]
    compliant_ok = compliant[1] == 0 and compliant[0] <= 3 and again[1] == 0 and again[0] <= 3
    max_writes = max(writes.values(), default=0)
    drain_ok = bulk["drained_at"] is not None and bulk["remaining"] == 0 and max_writes <= 1
    print("Verdicts:\n")
    print(
        f"- a compliant user costs no write and at most three reads: {verdict(compliant_ok)} "
        f"({compliant[0]} reads / {compliant[1]} writes; again after enforcement: {again[0]} / {again[1]})"
    )
    print(
        f"- {arguments.deliveries:,} deliveries over {users:,} users drain with at most one write per user: "
        f"{verdict(drain_ok)} (drained in {drained_s:.1f} s, max {max_writes} write(s) per user, "
        f"{bulk['remaining']} users left without SMS)"
    )
    print(flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
