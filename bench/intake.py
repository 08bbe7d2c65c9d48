"""Intake benchmark: acknowledged deliveries per second, and p50/p99 latency at half of peak, through gunicorn
with the production settings (config/gunicorn.conf.py), against a bare Flask app under the same settings.

    .venv/bin/python bench/intake.py --db sqlite
    .venv/bin/python bench/intake.py --db postgres        # CREATE DATABASE bench_… for the run, dropped after

The service runs with ENFORCER_RUN_WORKER=false (intake only: nothing reconciles, nothing calls GenAuth), so
every acknowledged delivery is exactly one committed transaction (event row + work-row upsert). Both servers
are up for the whole run and the closed-loop measurements alternate bare / service for ``--rounds`` rounds, so
noise on this shared machine hits both. Then each is driven at ``--fraction`` (0.5) of its own peak by a paced
sender, and p50/p99 are counted from each request's scheduled send time.

Connections are spread evenly over each server's gunicorn workers before every measurement (see
``bench.common.spread_connections``). ``--ablated`` also measures ``bench/ablated_app.py``, the service with a
store that writes nothing, as an upper bound for the peak.

Targets (issue 3): service peak >= 70% of the bare app's; p99 < 20 ms at half of peak.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    DEFAULT_PG_URL,
    Gunicorn,
    LoadResult,
    closed_loop,
    count_rows,
    cpu_meter,
    database,
    free_port,
    log,
    median,
    paced,
    print_header,
    print_table,
    seed_population,
    service_env,
    upgrade_database,
    verdict,
    webhook_request,
)
from genauth_emulator.state import EmulatorState

THROUGHPUT_TARGET = 0.70
ABLATED = "upper bound: service, free store"
P99_TARGET_MS = 20.0


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite", help="the service's database")
    parser.add_argument("--pg-url", default=DEFAULT_PG_URL, help="PostgreSQL server to create the bench database on")
    parser.add_argument("--concurrency", type=int, default=16, help="closed-loop connections (default 16)")
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per closed-loop measurement")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of unmeasured load before each")
    parser.add_argument("--rounds", type=int, default=3, help="alternating bare/service closed-loop rounds")
    parser.add_argument("--paced-duration", type=float, default=10.0, help="seconds of paced load per system")
    parser.add_argument("--fraction", type=float, default=0.5, help="paced rate as a fraction of the peak")
    parser.add_argument("--users", type=int, default=1000, help="distinct users the deliveries are about")
    parser.add_argument("--no-keepalive", action="store_true", help="a new TCP connection per delivery")
    parser.add_argument("--web-concurrency", type=int, help="WEB_CONCURRENCY (default: the config's, 2)")
    parser.add_argument("--threads", type=int, help="GUNICORN_THREADS (default: the config's, 4)")
    parser.add_argument("--logs", type=Path, help="keep gunicorn logs in this folder (default: a temp folder)")
    parser.add_argument(
        "--ablated",
        action="store_true",
        help="also measure the service with a database that costs nothing (bench/ablated_app.py): an upper bound",
    )
    arguments = parser.parse_args()
    if not 0 < arguments.fraction <= 1 or arguments.rounds < 1 or arguments.duration <= 0:
        parser.error("need 0 < --fraction <= 1, --rounds >= 1 and --duration > 0")
    if arguments.duration * arguments.rounds * 2 + arguments.paced_duration * 2 > 3600:
        parser.error("that run would take over an hour; shorten --duration, --rounds or --paced-duration")
    return arguments


def main() -> int:
    arguments = parse_arguments()
    print_header(f"Intake benchmark ({arguments.db})")
    state = EmulatorState()  # only to build realistic deliveries; no server, the intake never calls GenAuth
    population = seed_population(state, non_compliant=arguments.users)
    deliveries = [webhook_request(state, user_id) for user_id in population.non_compliant]

    def request_for(index: int):  # type: ignore[no-untyped-def]
        return deliveries[index % len(deliveries)]

    keepalive = not arguments.no_keepalive
    with tempfile.TemporaryDirectory(prefix="bench-intake-") as scratch:
        folder = arguments.logs or Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        with database(arguments.db, Path(scratch), name="intake", pg_url=arguments.pg_url) as database_url:
            sizing = {}
            if arguments.web_concurrency:
                sizing["WEB_CONCURRENCY"] = str(arguments.web_concurrency)
            if arguments.threads:
                sizing["GUNICORN_THREADS"] = str(arguments.threads)

            def env(port: int) -> dict[str, str]:
                return service_env(
                    port=port,
                    database_url=database_url,
                    genauth_url="http://127.0.0.1:9",  # never called: the intake does not talk to GenAuth
                    access_key_id=state.access_key_id,
                    access_key_secret=state.access_key_secret,
                    userpool_id=state.userpool_id,
                    ENFORCER_RUN_WORKER="false",
                    **sizing,
                )

            upgrade_database(env(0))
            bare = Gunicorn("bench.bare_app:app", env(free_port()), folder / "bare.log")
            service = Gunicorn("service.app:create_app()", env(free_port()), folder / "service.log")
            servers = {"bare Flask": bare, "mfa-enforcer": service}
            if arguments.ablated:
                servers[ABLATED] = Gunicorn("bench.ablated_app:create()", env(free_port()), folder / "ablated.log")
            with contextlib.ExitStack() as running:
                for server in servers.values():
                    running.enter_context(server)
                log(f"bare app on {bare.url}, service on {service.url} ({arguments.db})")
                results = run_measurements(arguments, servers, request_for, keepalive)
                time.sleep(0.5)
            recorded = count_rows(database_url, "events")
    report(arguments, results, recorded)
    return 0


def run_measurements(arguments, servers, request_for, keepalive):  # type: ignore[no-untyped-def]
    closed: dict[str, list[LoadResult]] = {name: [] for name in servers}
    acked_by_service = 0
    for round_number in range(1, arguments.rounds + 1):
        for name, server in servers.items():
            log(f"round {round_number}: {name}, closed loop x{arguments.concurrency}, {arguments.duration:.0f}s")
            warm = closed_loop(
                server.port,
                request_for,
                concurrency=arguments.concurrency,
                duration=arguments.warmup,
                keepalive=keepalive,
                spread_over=server.worker_pids(),
            )
            with cpu_meter(server.pids) as cpu:
                result = closed_loop(
                    server.port,
                    request_for,
                    concurrency=arguments.concurrency,
                    duration=arguments.duration,
                    keepalive=keepalive,
                    spread_over=server.worker_pids(),
                )
            server.check_alive()
            result.cpu = cpu[0]  # type: ignore[attr-defined]
            closed[name].append(result)
            if name == "mfa-enforcer":
                acked_by_service += warm.acked + result.acked
    peaks = {name: median([r.acked_per_second for r in runs]) for name, runs in closed.items()}
    paced_results: dict[str, LoadResult] = {}
    for name, server in servers.items():
        if name == ABLATED:
            continue  # a bound on the peak only
        rate = peaks[name] * arguments.fraction
        log(f"{name}: paced at {rate:.0f}/s for {arguments.paced_duration:.0f}s")
        result = paced(
            server.port,
            request_for,
            rate=rate,
            duration=arguments.paced_duration,
            keepalive=keepalive,
            senders=64,
            spread_over=server.worker_pids(),
        )
        paced_results[name] = result
        if name == "mfa-enforcer":
            acked_by_service += result.acked
    return {"closed": closed, "peaks": peaks, "paced": paced_results, "acked_by_service": acked_by_service}


def report(arguments, results, recorded: int) -> None:  # type: ignore[no-untyped-def]
    closed, peaks, paced_results = results["closed"], results["peaks"], results["paced"]
    rows = []
    for name, runs in closed.items():
        for number, run in enumerate(runs, 1):
            cpu = run.cpu
            rows.append(
                [
                    number,
                    name,
                    run.acked,
                    run.acked_per_second,
                    run.pct(50),
                    run.pct(99),
                    cpu.server / max(run.acked, 1) * 1000,
                    cpu.client / max(run.acked, 1) * 1000,
                    f"{cpu.machine_busy_fraction:.0%}",
                    run.failure_text(),
                ]
            )
    print_table(
        [
            "round",
            "system",
            "acked",
            "acked/s",
            "p50 ms",
            "p99 ms",
            "server CPU ms/ack",
            "client CPU ms/ack",
            "machine busy",
            "failures",
        ],
        rows,
        title=f"Closed loop: {arguments.concurrency} connections, {arguments.duration:.0f} s per measurement "
        f"(after {arguments.warmup:.0f} s warm-up), rounds alternate bare/service",
    )
    bare_peak, service_peak = peaks["bare Flask"], peaks["mfa-enforcer"]
    ratio = service_peak / bare_peak if bare_peak else float("nan")
    print_table(
        ["system", "peak acked/s (median of rounds)", "vs bare Flask"],
        [
            ["bare Flask (baseline)", bare_peak, "1.00"],
            [f"mfa-enforcer ({arguments.db})", service_peak, f"{ratio:.2f}"],
            *(
                [[ABLATED, peaks[ABLATED], f"{peaks[ABLATED] / bare_peak:.2f}" if bare_peak else "nan"]]
                if ABLATED in peaks
                else []
            ),
        ],
        title="Peak",
    )
    rows = []
    for name, run in paced_results.items():
        rows.append(
            [
                name,
                run.target_rate or 0.0,
                run.acked_per_second,
                run.pct(50),
                run.pct(99),
                run.pct(100),
                run.failure_text(),
            ]
        )
    print_table(
        ["system", "paced rate/s", "acked/s", "p50 ms", "p99 ms", "max ms", "failures"],
        rows,
        title=f"Paced at {arguments.fraction:.0%} of each system's own peak for {arguments.paced_duration:.0f} s "
        "(latency from the scheduled send time)",
    )
    service_paced = paced_results["mfa-enforcer"]
    p99 = service_paced.pct(99)
    acked = results["acked_by_service"]
    print("Verdicts:\n")
    print(
        f"- throughput >= {THROUGHPUT_TARGET:.0%} of bare Flask: {verdict(ratio >= THROUGHPUT_TARGET)} "
        f"({service_peak:,.0f}/s vs {bare_peak:,.0f}/s = {ratio:.0%})"
    )
    print(
        f"- p99 < {P99_TARGET_MS:.0f} ms at {arguments.fraction:.0%} of peak: {verdict(p99 < P99_TARGET_MS)} "
        f"(p99 {p99:.1f} ms, p50 {service_paced.pct(50):.1f} ms at {service_paced.target_rate:,.0f}/s)"
    )
    print(
        f"- durability: {acked:,} deliveries acknowledged by the service, {recorded:,} event rows in the database "
        f"({'every acknowledged delivery is on disk' if recorded >= acked else 'ACKNOWLEDGED DELIVERIES MISSING'}; "
        "more rows than acks would mean a client timed out after the commit)"
    )
    print(flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
