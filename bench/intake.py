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
store that writes nothing, as an upper bound for the peak. ``--compare-gthread`` also measures the bare app and
the service under gunicorn's stock ``gthread`` worker (``GUNICORN_CMD_ARGS=--worker-class gthread``) instead of
the configured one (``service/intake/connections.py``, which reads each request whole before a thread takes
it), so the cost of that worker shows as a same-run ratio. ``--slow-clients N`` ends with one more paced
phase per system (at ``--slow-rate``, default 50/s, with a 2 s client timeout) while N connections each hold
half a request open, the attack of issue 10 (16 such connections used to stop a pod); a connection the server
closes is reopened. ``--baseline-code DIR`` also measures the service from another checkout in the same rounds;
``--sample`` ends the closed loop with one round per server under py-spy, split by stage (bench/sampling.py).

Targets (issue 3): service peak >= 70% of the bare app's; p99 < 20 ms at half of peak.
"""

from __future__ import annotations

import argparse
import contextlib
import selectors
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    Gunicorn,
    LoadResult,
    add_database_arguments,
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
from bench.sampling import ORDER, sampled, stage_shares
from genauth_emulator.state import EmulatorState

THROUGHPUT_TARGET = 0.70
ABLATED = "upper bound: service, free store"
BASELINE_CODE = "mfa-enforcer, --baseline-code"
STOCK = " (stock gthread)"
MAIN = ("bare Flask", "mfa-enforcer")
P99_TARGET_MS = 20.0


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_database_arguments(parser)
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
        "--compare-gthread",
        action="store_true",
        help="also measure the bare app and the service under gunicorn's stock gthread worker",
    )
    parser.add_argument("--slow-clients", type=int, default=0, help="connections holding half a request, last phase")
    parser.add_argument("--slow-rate", type=float, default=50.0, help="paced rate/s while the slow clients hold on")
    parser.add_argument(
        "--baseline-code",
        type=Path,
        help="also measure the service from another checkout of the code (e.g. `git archive main | tar -x -C DIR`)",
    )
    parser.add_argument(
        "--sample",
        action="store_true",
        help="one more closed-loop round per server under py-spy: server CPU per delivery by stage (bench/sampling.py)",
    )
    parser.add_argument("--py-spy", default="py-spy", help="the py-spy binary for --sample (default: on PATH)")
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
            if arguments.baseline_code:
                code = arguments.baseline_code.resolve()
                servers[BASELINE_CODE] = Gunicorn(
                    "service.app:create_app()", {**env(free_port()), "PYTHONPATH": str(code)}, folder / "baseline.log"
                )
            if arguments.ablated:
                servers[ABLATED] = Gunicorn("bench.ablated_app:create()", env(free_port()), folder / "ablated.log")
            if arguments.compare_gthread:
                stock = {"GUNICORN_CMD_ARGS": "--worker-class gthread"}
                for name, app, log_name in (
                    ("bare Flask", "bench.bare_app:app", "bare-gthread.log"),
                    ("mfa-enforcer", "service.app:create_app()", "service-gthread.log"),
                ):
                    servers[name + STOCK] = Gunicorn(app, {**env(free_port()), **stock}, folder / log_name)
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

    def closed_round(server, duration: float) -> LoadResult:  # type: ignore[no-untyped-def]
        """One closed loop at the run's concurrency, its connections spread over the server's workers."""
        return closed_loop(
            server.port,
            request_for,
            concurrency=arguments.concurrency,
            duration=duration,
            keepalive=keepalive,
            spread_over=server.worker_pids(),
        )

    for round_number in range(1, arguments.rounds + 1):
        for name, server in servers.items():
            log(f"round {round_number}: {name}, closed loop x{arguments.concurrency}, {arguments.duration:.0f}s")
            warm = closed_round(server, arguments.warmup)
            with cpu_meter(server.pids) as cpu:
                result = closed_round(server, arguments.duration)
            server.check_alive()
            result.cpu = cpu[0]  # type: ignore[attr-defined]
            closed[name].append(result)
            if name.startswith("mfa-enforcer"):  # both share the database
                acked_by_service += warm.acked + result.acked
    peaks = {name: median([r.acked_per_second for r in runs]) for name, runs in closed.items()}
    sampled_rounds: dict[str, tuple[dict[str, float], int, float]] = {}
    if arguments.sample:
        with tempfile.TemporaryDirectory(prefix="bench-intake-samples-") as scratch:
            samples_folder = arguments.logs / "samples" if arguments.logs else Path(scratch)
            for name, server in servers.items():
                log(f"sampled round: {name}, closed loop x{arguments.concurrency}, {arguments.duration:.0f}s, py-spy")
                warm = closed_round(server, arguments.warmup)
                label = name.replace(" ", "_").replace(":", "").replace(",", "")
                with (
                    sampled(arguments.py_spy, server.worker_pids(), arguments.duration, samples_folder, label) as files,
                    cpu_meter(server.pids) as cpu,
                ):
                    result = closed_round(server, arguments.duration)
                if name.startswith("mfa-enforcer"):
                    acked_by_service += warm.acked + result.acked
                shares, samples = stage_shares(files)
                sampled_rounds[name] = (shares, samples, cpu[0].server / max(result.acked, 1) * 1000)
    paced_results: dict[str, LoadResult] = {}
    for name, server in servers.items():
        if name not in MAIN:
            continue  # the upper bound and the stock-gthread variants: peaks only
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
    under_attack: dict[str, LoadResult] = {}
    if arguments.slow_clients:
        for name, server in servers.items():
            if name == ABLATED:
                continue
            log(f"{name}: paced at {arguments.slow_rate:.0f}/s with {arguments.slow_clients} slow clients")
            with slow_clients(server.port, arguments.slow_clients) as reopened:
                time.sleep(1.0)  # every slow connection has sent its half request
                result = paced(
                    server.port,
                    request_for,
                    rate=arguments.slow_rate,
                    duration=arguments.paced_duration,
                    keepalive=keepalive,
                    senders=32,
                    timeout=2.0,
                )
            result.reopened = reopened[0]  # type: ignore[attr-defined]
            under_attack[name] = result
            if name.startswith("mfa-enforcer"):
                acked_by_service += result.acked
    return {
        "closed": closed,
        "peaks": peaks,
        "paced": paced_results,
        "under_attack": under_attack,
        "sampled": sampled_rounds,
        "acked_by_service": acked_by_service,
    }


HALF_A_REQUEST = (
    b"POST /webhooks/genauth HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    b'Content-Length: 2000\r\n\r\n{"eventName": "login", "data": {"id": "'
)


@contextlib.contextmanager
def slow_clients(port: int, count: int) -> Iterator[list[int]]:
    """``count`` connections that send half a request and then nothing; one the server closes is reopened.
    Yields a one-item list: how many were reopened (that is, closed by the server) by the end."""
    reopened = [0]
    stop = threading.Event()
    selector = selectors.DefaultSelector()

    def open_one() -> None:
        client = socket.create_connection(("127.0.0.1", port), timeout=5)
        client.sendall(HALF_A_REQUEST)
        client.setblocking(False)
        selector.register(client, selectors.EVENT_READ)

    def hold() -> None:
        while not stop.is_set():
            for key, _ in selector.select(timeout=0.2):
                client = key.fileobj
                assert isinstance(client, socket.socket)
                try:
                    data = client.recv(65536)
                except OSError:
                    data = b""
                if data and not data.endswith(b"}"):
                    continue  # more of an answer to come
                selector.unregister(client)
                client.close()
                reopened[0] += 1
                if not stop.is_set():
                    with contextlib.suppress(OSError):
                        open_one()

    for _ in range(count):
        open_one()
    holder = threading.Thread(target=hold, name="slow-clients", daemon=True)
    holder.start()
    try:
        yield reopened
    finally:
        stop.set()
        holder.join(5)
        for key in list(selector.get_map().values()):
            with contextlib.suppress(OSError):
                key.fileobj.close()  # type: ignore[union-attr]
        selector.close()


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
                [name, peaks[name], f"{peaks[name] / bare_peak:.2f}" if bare_peak else "nan"]
                for name in (BASELINE_CODE, ABLATED)
                if name in peaks
            ),
            *(
                [
                    [
                        "bare Flask" + STOCK,
                        peaks["bare Flask" + STOCK],
                        f"{peaks['bare Flask' + STOCK] / bare_peak:.2f}",
                    ],
                    [
                        "mfa-enforcer" + STOCK,
                        peaks["mfa-enforcer" + STOCK],
                        f"{peaks['mfa-enforcer' + STOCK] / bare_peak:.2f} "
                        f"({peaks['mfa-enforcer' + STOCK] / peaks['bare Flask' + STOCK]:.2f} of bare Flask{STOCK})",
                    ],
                ]
                if "mfa-enforcer" + STOCK in peaks and bare_peak
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
    if results["under_attack"]:
        print_table(
            ["system", "paced rate/s", "acked/s", "p50 ms", "p99 ms", "max ms", "slow connections closed", "failures"],
            [
                [
                    name,
                    run.target_rate or 0.0,
                    run.acked_per_second,
                    run.pct(50),
                    run.pct(99),
                    run.pct(100),
                    run.reopened,
                    run.failure_text(),
                ]
                for name, run in results["under_attack"].items()
            ],
            title=f"Paced at {arguments.slow_rate:.0f}/s for {arguments.paced_duration:.0f} s while "
            f"{arguments.slow_clients} connections each hold half a request (a closed one is reopened)",
        )
    if results["sampled"]:
        names = list(results["sampled"])
        print_table(
            ["stage", *[f"{name}: µs/ack (share)" for name in names]],
            [
                [
                    stage,
                    *[
                        f"{shares.get(stage, 0.0) * ms * 1000:.0f} ({shares.get(stage, 0.0):.0%})"
                        for shares, _samples, ms in results["sampled"].values()
                    ],
                ]
                for stage in ORDER
            ]
            + [
                [
                    "server CPU per ack (the sampled round)",
                    *[f"{ms * 1000:.0f}" for _s, _n, ms in results["sampled"].values()],
                ]
            ]
            + [["CPU samples", *[f"{samples:,}" for _s, samples, _ms in results["sampled"].values()]]],
            title="Server CPU by stage under load (one more closed-loop round per server, under py-spy: "
            "bench/sampling.py); µs per acknowledged delivery = the stage's share of the samples x the round's "
            "server CPU per ack",
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
    if "mfa-enforcer" + STOCK in peaks:
        stock_service = peaks["mfa-enforcer" + STOCK]
        print(
            f"- the configured worker against stock gthread: service {service_peak:,.0f}/s vs {stock_service:,.0f}/s "
            f"= {service_peak / stock_service:.2f}; bare Flask {bare_peak:,.0f}/s vs "
            f"{peaks['bare Flask' + STOCK]:,.0f}/s = {bare_peak / peaks['bare Flask' + STOCK]:.2f}"
        )
    print(flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
