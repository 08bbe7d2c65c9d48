"""Where an intake request's time goes: the service's Flask app in this process (no gunicorn, no sockets),
driven by Flask's test client, timed per stage and profiled with cProfile.

    .venv/bin/python bench/profile_intake.py --db sqlite
    .venv/bin/python bench/profile_intake.py --db postgres --requests 3000

Stages are timed separately on the same kind of delivery: decoding + validating the body, the database
transaction alone (``record_delivery``), and the whole view through the test client. Wall time and CPU time
are both shown: a stage whose wall time exceeds its CPU time is waiting (fsync, a lock, the network).
"""

from __future__ import annotations

import argparse
import cProfile
import hashlib
import io
import pstats
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    DEFAULT_PG_URL,
    ROOT,
    WEBHOOK_SECRET,
    database,
    print_header,
    print_table,
    seed_population,
    service_env,
    upgrade_database,
    webhook_request,
)
from genauth_emulator.state import EmulatorState


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--pg-url", default=DEFAULT_PG_URL)
    parser.add_argument("--requests", type=int, default=2000, help="deliveries per stage (default 2000)")
    parser.add_argument("--top", type=int, default=25, help="profile lines to print")
    arguments = parser.parse_args()
    if not 0 < arguments.requests <= 200_000:
        parser.error("--requests must be between 1 and 200000")
    return arguments


def timed(label: str, count: int, action) -> list[object]:  # type: ignore[no-untyped-def]
    wall, cpu = time.perf_counter(), time.process_time()
    for index in range(count):
        action(index)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return [label, count, wall / count * 1000, cpu / count * 1000, count / wall]


# (file suffix, function name) -> label; cumulative time of each, under the profiler, per request.
COMPONENTS = [
    (("profile_intake.py", "post"), "whole request (Flask test client)"),
    (("views.py", "receive_webhook"), ". the view (receive_webhook)"),
    (("inbox.py", "record_delivery"), ". . record_delivery (one transaction)"),
    (("queue.py", "enqueue"), ". . . enqueue (build + compile + run the work upsert)"),
    (("schemas.py", "interpret"), ". . interpret (marshmallow validation)"),
    (("parsing.py", "decode_body"), ". . decode_body (JSON)"),
    (("authentication.py", "is_authentic"), ". . is_authentic (secret check)"),
    (("logs.py", "log_event"), ". . log_event (the webhook_received line)"),
    (("views.py", "_count_delivery"), ". metrics (after_request)"),
]


def print_components(stats: pstats.Stats, count: int) -> None:
    """Cumulative time of the main pieces of a request, per request and as a share of the whole."""
    totals: dict[str, float] = {}
    for (filename, _line, name), row in stats.stats.items():  # type: ignore[attr-defined]
        for (suffix, function), label in COMPONENTS:
            if name == function and filename.endswith(suffix):
                totals[label] = totals.get(label, 0.0) + row[3]
    whole = totals.get(COMPONENTS[0][1], 0.0) or 1.0
    rows = [
        [label, totals.get(label, 0.0) / count * 1000, f"{totals.get(label, 0.0) / whole:.0%}"]
        for _, label in COMPONENTS
    ]
    print_table(
        ["component (cumulative, under cProfile)", "ms/request", "share"],
        rows,
        title=f"Where a request's time goes ({count} requests under cProfile, which inflates Python-heavy parts)",
    )


def main() -> int:
    arguments = parse_arguments()
    print_header(f"Intake profile ({arguments.db}, in-process, no gunicorn)")
    from service.app import create_app
    from service.intake.context import EXTENSION
    from service.intake.parsing import decode_body
    from service.intake.schemas import interpret
    from service.settings import GenAuthSettings, Settings, WebhookSettings, WorkerSettings
    from service.store.inbox import Delivery, record_delivery

    state = EmulatorState()
    users = seed_population(state, non_compliant=1000).non_compliant
    deliveries = [webhook_request(state, user_id) for user_id in users]
    count = arguments.requests
    with (
        tempfile.TemporaryDirectory(prefix="bench-profile-") as scratch,
        database(arguments.db, Path(scratch), name="profile", pg_url=arguments.pg_url) as database_url,
    ):
        upgrade_database(
            service_env(
                port=0,
                database_url=database_url,
                genauth_url="http://127.0.0.1:9",
                access_key_id="x",
                access_key_secret="y",
                userpool_id=state.userpool_id,
            )
        )
        settings = Settings(
            genauth=GenAuthSettings(host="http://127.0.0.1:9", access_key_id="x", access_key_secret="y"),
            webhook=WebhookSettings(secrets=(WEBHOOK_SECRET,), userpool_id=state.userpool_id),
            worker=WorkerSettings(run_in_web=False),
            database_url=database_url,
            policy_file=ROOT / "config" / "policies.yaml",
        )
        app = create_app(settings, configure_logs=True)
        import logging

        logging.getLogger().handlers[-1].stream = io.StringIO()  # keep the service's log lines off the report
        engine = app.extensions[EXTENSION].engine
        client = app.test_client()

        def post(index: int) -> None:
            request = deliveries[index % len(deliveries)]
            response = client.post(request.path, data=request.body, headers=request.headers)
            if response.status_code != 200:
                raise RuntimeError(f"unexpected {response.status_code}: {response.get_data(as_text=True)[:200]}")

        def parse(index: int) -> None:
            interpret(decode_body("application/json", deliveries[index % len(deliveries)].body))

        def store(index: int) -> None:
            body = deliveries[index % len(deliveries)].body
            record_delivery(
                engine,
                Delivery(
                    "login",
                    state.userpool_id,
                    (users[index % len(users)],),
                    hashlib.sha256(body).hexdigest(),
                    "application/json",
                    "queued",
                ),
                now=time.time(),
            )

        import sqlalchemy as sa

        # Prototype of a fix, for timing only (NOT the service's code): the exact SQL that record_delivery sends
        # (captured from one real call, so it follows the current schema), compiled once and re-executed with
        # new values. The service builds its work upsert with on_conflict_do_update(), which SQLAlchemy cannot
        # cache ("[no key]" in its echo log), so that statement is constructed and compiled on every delivery.
        captured: list[tuple[str, object]] = []

        def capture(_conn, _cursor, statement, parameters, _context, _many):  # type: ignore[no-untyped-def]
            if statement.lstrip().upper().startswith("INSERT"):
                captured.append((statement, parameters))

        # Two real calls with different values; the parameter slots that differ carry the user, time and event id.
        markers = [("capture-user-a", 1111.25), ("capture-user-b", 2222.75)]
        sa.event.listen(engine, "before_cursor_execute", capture)
        event_ids = [
            record_delivery(
                engine,
                Delivery("login", state.userpool_id, (user,), "0" * 64, "application/json", "queued"),
                now=now,
            )
            for user, now in markers
        ]
        sa.event.remove(engine, "before_cursor_execute", capture)
        if len(captured) != 4:
            raise RuntimeError(f"expected record_delivery to send 2 INSERTs, saw {len(captured) // 2}")
        (event_sql, event_a), (work_sql, work_a), (_, event_b), (_, work_b) = captured

        def slots(first, second, value_a, value_b):  # type: ignore[no-untyped-def]
            keys = list(first) if isinstance(first, dict) else range(len(first))
            return [key for key in keys if first[key] == value_a and second[key] == value_b]

        def refill(params, other, user: str, now: float, event: int | None):  # type: ignore[no-untyped-def]
            filled = dict(params) if isinstance(params, dict) else list(params)
            keys = list(filled) if isinstance(filled, dict) else range(len(filled))
            for key in keys:
                if isinstance(filled[key], str):
                    filled[key] = filled[key].replace(markers[0][0], user)
            for key in slots(params, other, markers[0][1], markers[1][1]):
                filled[key] = now
            if event is not None:
                for key in slots(params, other, event_ids[0], event_ids[1]):
                    filled[key] = event
            return filled if isinstance(filled, dict) else tuple(filled)

        def write_one(connection: sa.Connection, index: int) -> None:
            body = deliveries[index % len(deliveries)].body
            user = users[index % len(users)]
            now = time.time()
            hashlib.sha256(body).hexdigest()  # the service hashes every body; keep that cost in
            event_id = connection.exec_driver_sql(event_sql, refill(event_a, event_b, user, now, None)).scalar_one()
            connection.exec_driver_sql(work_sql, refill(work_a, work_b, user, now, int(event_id)))

        def store_precompiled(index: int) -> None:
            with engine.begin() as connection:
                write_one(connection, index)

        group = 10

        def store_grouped(index: int) -> None:
            # Group commit: one transaction (one fsync) for every `group` deliveries, as a writer thread that
            # batches concurrent requests would do. Per-delivery cost = this call's cost / group.
            if index % group == 0:
                with engine.begin() as connection:
                    for offset in range(group):
                        write_one(connection, index + offset)

        def begin_commit(_index: int) -> None:
            with engine.begin() as connection:
                connection.exec_driver_sql("SELECT 1")

        post(0)  # warm up (first request, connection pool)

        def events_and_versions() -> tuple[int, int]:
            with engine.connect() as connection:
                rows = connection.exec_driver_sql("SELECT count(*) FROM events").scalar_one()
                versions = connection.exec_driver_sql("SELECT coalesce(sum(version), 0) FROM work").scalar_one()
            return int(rows), int(versions)

        rows = [
            timed("decode + validate (interpret)", count, parse),
            timed("empty transaction (BEGIN; SELECT 1; COMMIT)", count, begin_commit),
            timed("record_delivery (insert event + upsert work, commit)", count, store),
        ]
        before = events_and_versions()
        rows.append(timed("same SQL, compiled once (prototype, not the service)", count, store_precompiled))
        rows.append(timed(f"same, {group} deliveries per transaction (prototype: group commit)", count, store_grouped))
        after = events_and_versions()
        # Each prototype delivery must add one event row and bump one work row's version, like the service's.
        expected = 2 * count + (group - count % group) % group
        if (after[0] - before[0], after[1] - before[1]) != (expected, expected):
            raise RuntimeError(f"the prototypes did not write what record_delivery writes: {before} -> {after}")
        rows.append(timed("whole request via Flask test client", count, post))
        print_table(
            ["stage", "n", "wall ms/delivery", "CPU ms/delivery", "per second (1 thread)"],
            rows,
            title="Per-stage cost, one thread, sequential",
        )
        profiler = cProfile.Profile()
        profiler.enable()
        for index in range(count):
            post(index)
        profiler.disable()
        print_components(pstats.Stats(profiler), count)
        text = io.StringIO()
        stats = pstats.Stats(profiler, stream=text).strip_dirs().sort_stats("cumulative")
        stats.print_stats(arguments.top)
        print(f"cProfile of {count} whole requests, top {arguments.top} by cumulative time:\n")
        print("```")
        print("\n".join(line for line in text.getvalue().splitlines() if line.strip())[:20000])
        print("```")
        stats_t = io.StringIO()
        pstats.Stats(profiler, stream=stats_t).strip_dirs().sort_stats("tottime").print_stats(arguments.top)
        print(f"\nTop {arguments.top} by own time:\n")
        print("```")
        print("\n".join(line for line in stats_t.getvalue().splitlines() if line.strip())[:20000])
        print("```")
        engine.dispose()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
