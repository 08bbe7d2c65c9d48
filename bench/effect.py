"""Time to effect (issue 13): from a new hire's ``user:created`` webhook being sent to GenAuth answering the
``set-mfa-status`` that gives them SMS, for the service and for the naive in-request handler, in the same run.

    .venv/bin/python bench/effect.py                          # 50 ms, 300 ms, 2 s; 20 hires (6 at 2 s)
    .venv/bin/python bench/effect.py --latencies 0.3 --hires 40 --json

For each GenAuth latency (``--latencies``, seconds added by the emulator to every management API request) and
each system, a fresh emulator (this process), a fresh SQLite database and a fresh gunicorn with
``config/gunicorn.conf.py``:

* the service as a single node with its defaults (``ENFORCER_RUN_WORKER=true``, 2 web processes, the default
  poll interval, worker threads and ``GENAUTH_RATE_LIMIT``) and ``config/policies.yaml`` (Finance needs SMS);
* ``bench/naive_app.py``, the handler most teams write first: it calls GenAuth through the official SDK inside
  the request (``get-mfa-status``, then ``set-users-mfa-status``) and only then answers.

Hires arrive one at a time, as they do: the user is created in the emulator (Finance, a phone, no MFA), the
``user:created`` delivery is posted on a new connection, and the run waits for the emulator's journal to show a
successful ``set-mfa-status`` for that user. Time to effect is the journal's timestamp of that answer minus the
moment the delivery was sent (both ``time.time()`` in this process). The next hire follows after a pause drawn
from ``--gap`` (seeded), so arrivals fall at every phase of the worker's poll. ``--warmup`` hires per system go
first, together, and are not counted (each process fetches its management token on its first call).

Baselines, same run: the naive handler's time to effect; and 4 x one GenAuth round trip through the service's
own client (median of 20; of 5 at 1 s or more), the "4 sequential calls" issue 13 names. Results are reported
as ratios to them.
"""

from __future__ import annotations

import argparse
import http.client
import json
import random
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    LOOPBACK,
    Gunicorn,
    Request,
    code_revision,
    command_line,
    database,
    emulator_env,
    entry_user_id,
    log,
    machine,
    percentile,
    print_table,
    start_emulator,
    upgrade_database,
    webhook_request,
)
from genauth_emulator.server import EmulatorServer

SYSTEMS = (
    ("naive", "naive handler (SDK in the request)", "bench.naive_app:app"),
    ("service", "mfa-enforcer", "service.app:create_app()"),
)
SET_MFA = "/api/v3/set-mfa-status"
SEQUENTIAL_CALLS = 4


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--latencies", default="0.05,0.3,2", help="GenAuth latencies to measure, seconds, comma-separated"
    )
    parser.add_argument("--hires", type=int, default=20, help="measured hires per system and latency")
    parser.add_argument(
        "--slow-hires", type=int, default=6, help="measured hires per system at a latency of 1 s or more"
    )
    parser.add_argument("--warmup", type=int, default=2, help="hires per system sent first and not counted")
    parser.add_argument("--gap", default="0.2,1.2", help="pause between hires: min,max seconds (uniform, seeded)")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--timeout", type=float, default=90.0, help="longest wait for one hire's effect (s)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON on stdout")
    parser.add_argument("--json-out", type=Path, help="also write the JSON results to this file")
    parser.add_argument("--logs", type=Path, help="keep the servers' logs in this folder")
    arguments = parser.parse_args()
    try:
        arguments.latency_list = [float(value) for value in arguments.latencies.split(",") if value.strip()]
        low, high = (float(value) for value in arguments.gap.split(","))
    except ValueError:
        parser.error("--latencies and --gap take comma-separated numbers")
    arguments.gap_range = (low, high)
    if not arguments.latency_list or any(not 0 <= value <= 10 for value in arguments.latency_list):
        parser.error("latencies must be between 0 and 10 s")
    if not (1 <= arguments.hires <= 500 and 1 <= arguments.slow_hires <= 500 and 0 <= arguments.warmup <= 10):
        parser.error("need 1 <= --hires, --slow-hires <= 500 and 0 <= --warmup <= 10")
    if not 0 <= low <= high <= 30:
        parser.error("need 0 <= gap min <= gap max <= 30")
    return arguments


def call_round_trip(emulator: EmulatorServer, samples: int = 20) -> float:
    """Median seconds of one management API call through the service's own client (token fetched first)."""
    from service.genauth.client import GenAuthClient
    from service.settings import GenAuthSettings

    client = GenAuthClient(
        GenAuthSettings(
            host=emulator.url,
            access_key_id=emulator.state.access_key_id,
            access_key_secret=emulator.state.access_key_secret,
            rate_limit=0.0,
        )
    )
    params = {"userId": emulator.state.user_ids()[0]}
    client.call("GET", "/api/v3/get-mfa-status", params=params)
    times = []
    for _ in range(samples):
        started = time.perf_counter()
        client.call("GET", "/api/v3/get-mfa-status", params=params)
        times.append(time.perf_counter() - started)
    client.close()
    return statistics.median(times)


def seed(emulator: EmulatorServer) -> None:
    state = emulator.state
    state.add_organization("acme", "ACME")
    state.add_department("acme", "finance", "Finance")
    state.add_user(
        username="existing.0", email="existing.0@acme.example", phone="13700000000", departments=("finance",)
    )


class Hires:
    """New Finance users, one per call, each with a phone and no MFA."""

    def __init__(self, emulator: EmulatorServer) -> None:
        self.emulator = emulator
        self.number = 0

    def next(self) -> tuple[str, Request]:
        self.number += 1
        username = f"hire.{self.number:04d}"
        user = self.emulator.state.add_user(
            username=username, email=f"{username}@acme.example", phone=f"139{self.number:08d}", departments=("finance",)
        )
        return user["userId"], webhook_request(self.emulator.state, user["userId"], "user:created")


def post(port: int, request: Request, timeout: float) -> int:
    """Send one delivery on a new connection, as GenAuth's sender does; the HTTP status (0: no answer)."""
    connection = http.client.HTTPConnection(LOOPBACK, port, timeout=timeout)
    try:
        connection.request(request.method, request.path, body=request.body, headers=request.headers)
        response = connection.getresponse()
        response.read()
        return response.status
    except (OSError, http.client.HTTPException):
        return 0
    finally:
        connection.close()


def effect_time(emulator: EmulatorServer, user_id: str, timeout: float) -> float:
    """The journal time of the first successful set-mfa-status about ``user_id`` (waits for it)."""

    def matches(entry: Any) -> bool:
        return entry.path == SET_MFA and entry.status_code == 200 and entry_user_id(entry) == user_id

    return float(emulator.journal.wait_for(matches, timeout=timeout)[0].time)


def run_system(
    arguments: argparse.Namespace, latency: float, key: str, app: str, count: int, folder: Path, rng: random.Random
) -> dict[str, Any]:
    emulator = start_emulator(latency=0.0)
    try:
        seed(emulator)
        emulator.faults.latency = latency
        samples = 20 if latency < 1 else 5  # the injected latency is steady; 21 calls at 2 s would take 42 s
        round_trip = call_round_trip(emulator, samples) if key == "service" else None
        hires = Hires(emulator)
        tag = f"{key}-{int(latency * 1000)}ms"
        with database("sqlite", folder, name=tag) as database_url:
            env = emulator_env(
                emulator,
                database_url,
                ENFORCER_RUN_WORKER="true",
            )
            upgrade_database(env)
            with Gunicorn(app, env, folder / f"{tag}.log") as server:
                timeout = arguments.timeout + 10 * latency
                warm = [hires.next() for _ in range(arguments.warmup)]
                senders = [
                    threading.Thread(target=post, args=(server.port, request, timeout), daemon=True)
                    for _, request in warm
                ]
                for sender in senders:
                    sender.start()
                for sender in senders:
                    sender.join(timeout)
                for user_id, _ in warm:
                    effect_time(emulator, user_id, timeout)
                log(f"{latency * 1000:.0f} ms: {key}: {count} hires")
                effects, acks, failures = [], [], 0
                for _ in range(count):
                    time.sleep(rng.uniform(*arguments.gap_range))
                    user_id, request = hires.next()
                    sent = time.time()
                    status = post(server.port, request, timeout)
                    acks.append(time.time() - sent)
                    if not 200 <= status < 300:
                        failures += 1
                    server.check_alive()
                    effects.append(effect_time(emulator, user_id, timeout) - sent)
        return {"effects": effects, "acks": acks, "failures": failures, "round_trip": round_trip}
    finally:
        emulator.stop()


def summary(values: list[float]) -> dict[str, float]:
    return {
        "median": round(percentile(values, 50), 3),
        "p90": round(percentile(values, 90), 3),
        "min": round(min(values), 3),
        "max": round(max(values), 3),
    }


def main() -> int:
    arguments = parse_arguments()
    started = time.perf_counter()
    header: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "command": command_line(),
        **machine(),
        "code": code_revision(),
    }
    rng = random.Random(arguments.seed)
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-effect-") as scratch:
        folder = arguments.logs or Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        for latency in arguments.latency_list:
            count = arguments.slow_hires if latency >= 1 else arguments.hires
            measured = {
                key: run_system(arguments, latency, key, app, count, folder, rng) for key, _name, app in SYSTEMS
            }
            naive, service = measured["naive"], measured["service"]
            round_trip = float(service["round_trip"])
            row = {
                "latency_s": latency,
                "hires": count,
                "round_trip_s": round(round_trip, 4),
                "four_calls_s": round(SEQUENTIAL_CALLS * round_trip, 3),
                "naive": {**summary(naive["effects"]), "ack_median": round(percentile(naive["acks"], 50), 3)},
                "service": {**summary(service["effects"]), "ack_median": round(percentile(service["acks"], 50), 3)},
                "not_acknowledged": {"naive": naive["failures"], "service": service["failures"]},
            }
            row["ratio_median_vs_naive"] = round(row["service"]["median"] / row["naive"]["median"], 2)
            row["ratio_p90_vs_naive"] = round(row["service"]["p90"] / row["naive"]["p90"], 2)
            row["ratio_median_vs_four_calls"] = round(row["service"]["median"] / row["four_calls_s"], 2)
            results.append(row)
            log(
                f"{latency * 1000:.0f} ms: service median {row['service']['median']:.2f} s, naive "
                f"{row['naive']['median']:.2f} s (x{row['ratio_median_vs_naive']})"
            )
    header["run took"] = f"{time.perf_counter() - started:.0f} s"
    text = json.dumps({**header, "results": results}, indent=2)
    if arguments.json_out:
        arguments.json_out.write_text(text + "\n")
    if arguments.json:
        print(text)
        return 0
    print("## Time to effect: user:created sent -> set-mfa-status answered\n")
    for key, value in header.items():
        print(f"- {key}: {value}")
    print()
    rows = []
    for row in results:
        service, naive = row["service"], row["naive"]
        rows.append(
            [
                f"{row['latency_s'] * 1000:.0f} ms",
                row["hires"],
                f"{service['median']:.2f} / {service['p90']:.2f}",
                f"{naive['median']:.2f} / {naive['p90']:.2f}",
                f"{row['four_calls_s']:.2f}",
                f"{row['ratio_median_vs_naive']:.2f}",
                f"{row['ratio_p90_vs_naive']:.2f}",
                f"{row['ratio_median_vs_four_calls']:.2f}",
                f"{service['ack_median'] * 1000:.0f} / {naive['ack_median'] * 1000:.0f}",
                f"{row['not_acknowledged']['service']} / {row['not_acknowledged']['naive']}",
            ]
        )
    print_table(
        [
            "GenAuth latency",
            "hires",
            "mfa-enforcer median / p90 s",
            "naive median / p90 s",
            "4 calls s",
            "median vs naive",
            "p90 vs naive",
            "median vs 4 calls",
            "ack median ms (enforcer / naive)",
            "not acked (enforcer / naive)",
        ],
        rows,
        title="Time to effect per new hire (ratios: mfa-enforcer / baseline; below 1 is faster)",
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
