"""Against a naive handler: bench/naive_app.py calls GenAuth through the official SDK inside the request
(get-mfa-status, then set-users-mfa-status); the service acknowledges from its database and a worker calls
GenAuth later. Both run under gunicorn with config/gunicorn.conf.py (the service as a single node: SQLite,
ENFORCER_RUN_WORKER=true, default retry settings).

    .venv/bin/python bench/naive.py
    .venv/bin/python bench/naive.py --deliveries 40 --rate 4 --ack-timeout 5

Two scenarios, each on a fresh emulator and a fresh server per system:

* slow GenAuth: every management API request takes ``--latency`` (2 s);
* outage: the emulator is stopped while the deliveries are sent, then started again (50 ms latency).

``--deliveries`` deliveries, each about a different non-compliant Finance user, are sent by a paced sender at
``--rate`` per second with a ``--ack-timeout`` client timeout, standing in for GenAuth's webhook sender (no
redelivery is modelled: the first attempt is what counts). A delivery is **lost** when it got no 2xx or when
its effect (SMS enabled for that user in the emulator) never happened. After sending, the run waits until every
effect has happened or nothing more can happen (service: no pending work row; naive app: no GenAuth request
for 2 x latency + 2 s after the last answer), at most ``--settle`` seconds.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import sqlalchemy as sa

from bench.common import (
    Gunicorn,
    LoadResult,
    database,
    emulator_env,
    entry_user_id,
    has_sms,
    log,
    paced,
    percentile,
    print_header,
    print_table,
    seed_population,
    start_emulator,
    upgrade_database,
    webhook_request,
)

SYSTEMS = {
    "naive handler (SDK in the request)": "bench.naive_app:app",
    "mfa-enforcer (ack from the database)": "service.app:create_app()",
}


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--latency", type=float, default=2.0, help="GenAuth latency in the slow scenario (s)")
    parser.add_argument("--recovery-latency", type=float, default=0.05, help="GenAuth latency after the outage")
    parser.add_argument("--deliveries", type=int, default=16, help="deliveries per scenario and system")
    parser.add_argument("--rate", type=float, default=2.0, help="deliveries per second (paced)")
    parser.add_argument("--ack-timeout", type=float, default=10.0, help="the sender's timeout per delivery (s)")
    parser.add_argument("--settle", type=float, default=180.0, help="longest wait for effects after sending (s)")
    parser.add_argument("--scenario", choices=("slow", "outage", "both"), default="both")
    parser.add_argument("--logs", type=Path, help="keep server logs in this folder")
    parser.add_argument(
        "--worker-threads", type=int, default=1, help="the service's ENFORCER_WORKER_THREADS (default 1)"
    )
    arguments = parser.parse_args()
    if not 1 <= arguments.deliveries <= 2000 or arguments.rate <= 0 or arguments.settle > 3600:
        parser.error("need 1 <= --deliveries <= 2000, --rate > 0 and --settle <= 3600")
    if not 1 <= arguments.worker_threads <= 32:
        parser.error("need 1 <= --worker-threads <= 32")
    return arguments


def run_one(arguments, system: str, app: str, scenario: str, folder: Path) -> dict:  # type: ignore[type-arg]
    """One system through one scenario, on a fresh emulator, database and gunicorn."""
    emulator = start_emulator(latency=arguments.latency if scenario == "slow" else arguments.recovery_latency)
    state = emulator.state
    users = seed_population(state, non_compliant=arguments.deliveries).non_compliant
    requests = [webhook_request(state, user_id) for user_id in users]
    tag = f"{scenario}-{'naive' if 'naive' in app else 'service'}"
    try:
        with database("sqlite", folder, name=tag) as database_url:
            env = emulator_env(
                emulator,
                database_url,
                ENFORCER_RUN_WORKER="true",
                ENFORCER_WORKER_THREADS=str(arguments.worker_threads),
            )
            upgrade_database(env)
            with Gunicorn(app, env, folder / f"{tag}.log") as server:
                if scenario == "outage":
                    emulator.stop()
                log(f"{scenario}: {system}: {len(requests)} deliveries at {arguments.rate}/s")
                offset = time.time() - time.perf_counter()
                result = paced(
                    int(env["PORT"]),
                    lambda index: requests[index],
                    rate=arguments.rate,
                    count=len(requests),
                    senders=max(4, min(256, int(arguments.rate * arguments.ack_timeout) + 4)),
                    timeout=arguments.ack_timeout,
                    keepalive=False,
                )
                outage_seconds = None
                if scenario == "outage":
                    outage_seconds = result.finished - result.started
                    emulator.start()
                    log(f"{scenario}: {system}: emulator back after {outage_seconds:.1f}s")
                settled = wait_for_effects(
                    arguments, emulator, users, result, database_url, server, is_service="naive" not in app
                )
            return summarise(system, emulator, users, result, offset, settled, outage_seconds)
    finally:
        emulator.stop()


def wait_for_effects(  # type: ignore[no-untyped-def]
    arguments, emulator, users, result: LoadResult, database_url: str, server: Gunicorn, *, is_service: bool
) -> float:
    """Wait until every user has SMS, or nothing more can happen; returns seconds waited."""
    started = time.monotonic()
    quiet = 2 * arguments.latency + 2.0
    engine = sa.create_engine(database_url) if is_service else None
    try:
        while time.monotonic() - started < arguments.settle:
            server.check_alive()
            if all(has_sms(emulator.state, user) for user in users):
                break
            if is_service:
                assert engine is not None
                try:
                    with engine.connect() as connection:
                        pending = connection.execute(
                            sa.text("SELECT count(*) FROM work WHERE state = 'pending'")
                        ).scalar_one()
                except sa.exc.OperationalError:
                    pending = 1
                if pending == 0:
                    break
            else:
                entries = emulator.journal.entries()
                last = entries[-1].time if entries else 0.0
                if time.time() - last > quiet and time.monotonic() - started > quiet:
                    break
            time.sleep(0.25)
    finally:
        if engine is not None:
            engine.dispose()
    return time.monotonic() - started


def summarise(system, emulator, users, result: LoadResult, offset: float, settled: float, outage) -> dict:  # type: ignore[no-untyped-def, type-arg]
    effect_at: dict[str, float] = {}
    for entry in emulator.journal.entries("/api/v3/set-mfa-status"):
        user = entry_user_id(entry)
        if user is not None and entry.status_code == 200 and user not in effect_at:
            effect_at[user] = entry.time
    effects, no_ack_but_effect, acked_no_effect, lost = [], 0, 0, 0
    for sample in result.samples:
        user = users[sample.index]
        happened = has_sms(emulator.state, user)
        if happened and user in effect_at:
            effects.append(effect_at[user] - (sample.due + offset))
        if not sample.ok or not happened:
            lost += 1
        if not sample.ok and happened:
            no_ack_but_effect += 1
        if sample.ok and not happened:
            acked_no_effect += 1
    calls = len(emulator.journal.entries())
    return {
        "system": system,
        "result": result,
        "effects": effects,
        "lost": lost,
        "no_ack_but_effect": no_ack_but_effect,
        "acked_no_effect": acked_no_effect,
        "settled": settled,
        "calls": calls,
        "outage": outage,
    }


def report(arguments, scenario: str, rows: list[dict]) -> None:  # type: ignore[type-arg]
    table = []
    for row in rows:
        result: LoadResult = row["result"]
        all_latencies = result.latencies_ms(acked_only=False)
        effects = row["effects"]
        table.append(
            [
                row["system"],
                f"{result.acked}/{result.sent}",
                percentile(all_latencies, 50),
                percentile(all_latencies, 99),
                max(all_latencies, default=float("nan")),
                result.failure_text(),
                f"{row['lost']}/{result.sent}",
                f"{len(effects)}/{result.sent}",
                percentile(effects, 50) if effects else float("nan"),
                max(effects) if effects else float("nan"),
                row["calls"],
            ]
        )
    if scenario == "slow":
        title = (
            f"GenAuth latency {arguments.latency:.1f} s: {arguments.deliveries} deliveries at {arguments.rate}/s, "
            f"sender timeout {arguments.ack_timeout:.0f} s"
        )
    else:
        outage = max((row["outage"] or 0.0) for row in rows)
        title = (
            f"GenAuth outage (emulator stopped for the ~{outage:.0f} s of sending, then back at "
            f"{arguments.recovery_latency * 1000:.0f} ms): {arguments.deliveries} deliveries at {arguments.rate}/s, "
            f"sender timeout {arguments.ack_timeout:.0f} s"
        )
    print_table(
        [
            "system",
            "2xx",
            "ack p50 ms",
            "ack p99 ms",
            "ack max ms",
            "not acknowledged",
            "lost",
            "effect happened",
            "effect p50 s",
            "effect max s",
            "GenAuth requests",
        ],
        table,
        title=title,
    )
    for row in rows:
        if row["no_ack_but_effect"] or row["acked_no_effect"]:
            print(
                f"- {row['system']}: {row['no_ack_but_effect']} deliveries got no 2xx although their effect happened "
                f"(GenAuth would send them again); {row['acked_no_effect']} were acknowledged but had no effect."
            )
    print()


def main() -> int:
    arguments = parse_arguments()
    print_header("Naive handler vs mfa-enforcer")
    scenarios = ("slow", "outage") if arguments.scenario == "both" else (arguments.scenario,)
    outcomes: dict[str, list[dict]] = {}  # type: ignore[type-arg]
    with tempfile.TemporaryDirectory(prefix="bench-naive-") as scratch:
        folder = arguments.logs or Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        for scenario in scenarios:
            rows = [run_one(arguments, system, app, scenario, folder) for system, app in SYSTEMS.items()]
            outcomes[scenario] = rows
            report(arguments, scenario, rows)
    print("Summary:\n")
    for scenario, rows in outcomes.items():
        naive, ours = rows
        ours_p50 = percentile(ours["result"].latencies_ms(acked_only=False), 50)
        naive_p50 = percentile(naive["result"].latencies_ms(acked_only=False), 50)
        sent = ours["result"].sent
        print(
            f"- {scenario}: acknowledgement p50 {ours_p50:,.0f} ms (mfa-enforcer) vs {naive_p50:,.0f} ms (naive); "
            f"lost {ours['lost']}/{sent} (mfa-enforcer) vs {naive['lost']}/{naive['result'].sent} (naive)"
        )
    print(flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
