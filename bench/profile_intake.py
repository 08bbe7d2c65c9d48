"""Where an intake delivery's CPU goes, stage by stage: the service's own code in this process (no gunicorn, no
sockets), each stage run on its own over the same deliveries, then the whole request through WSGI.

    .venv/bin/python bench/profile_intake.py --db sqlite
    .venv/bin/python bench/profile_intake.py --db postgres --requests 3000

Stages, in the order the view runs them (service/intake/views.py):

- **secret**: ``is_authentic`` on the request's headers;
- **parse**: ``decode_body`` (the values pre-count and ``json.loads``);
- **validate + subjects**: ``interpret`` (the marshmallow schemas, whose ``post_load`` extracts the subjects);
- **delivery**: the pool check, the keyed body digest and the ``Delivery`` the inbox gets;
- **commit, alone**: ``Inbox.record`` from one thread (one transaction per delivery); and **commit, batch of 8**:
  ``write_deliveries`` with 8 deliveries per transaction, per delivery (what group commit does under load);
- **logs**: the ``webhook_received`` line into memory, in JSON (the request below uses that) and console format;
- **metrics**: the delivery counter and the ack histogram (prometheus multiprocess mode, as under gunicorn);
- **framework**: the whole request through the service's WSGI app with a free inbox, minus the stages above
  but the commit; and the bare Flask app (bench/bare_app.py) through WSGI, for comparison.

Every stage is timed ``--repeats`` times over ``--requests`` deliveries; the table shows the median, in CPU
microseconds per delivery (``time.thread_time``), and wall time for the commit (which waits for fsync or the
server). One thread, sequential: the cost of contention under load (locks, the scheduler) is not in it,
``bench/intake.py`` measures that.
"""

from __future__ import annotations

import argparse
import io
import logging
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

_METRICS_DIR = tempfile.mkdtemp(prefix="bench-profile-metrics-")
os.environ["PROMETHEUS_MULTIPROC_DIR"] = _METRICS_DIR  # before prometheus_client is imported, as under gunicorn

from bench.common import (  # noqa: E402
    ROOT,
    WEBHOOK_SECRET,
    add_database_arguments,
    database,
    print_header,
    print_table,
    seed_population,
    service_env,
    upgrade_database,
    webhook_request,
)
from genauth_emulator.state import EmulatorState  # noqa: E402


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_database_arguments(parser)
    parser.add_argument("--requests", type=int, default=2000, help="deliveries per stage and repeat (default 2000)")
    parser.add_argument("--repeats", type=int, default=5, help="repeats of each stage; the median is shown")
    parser.add_argument("--profile", type=int, default=0, help="also print the top N cProfile lines of a request")
    arguments = parser.parse_args()
    if not 0 < arguments.requests <= 200_000 or not 0 < arguments.repeats <= 50:
        parser.error("--requests must be 1..200000 and --repeats 1..50")
    return arguments


def measure(count: int, repeats: int, action: Callable[[int], object]) -> tuple[float, float]:
    """Median CPU and wall microseconds per call of ``action(index)`` over ``repeats`` runs of ``count``."""
    cpus, walls = [], []
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.thread_time()
        for index in range(count):
            action(index)
        cpus.append((time.thread_time() - cpu) / count * 1e6)
        walls.append((time.perf_counter() - wall) / count * 1e6)
    return statistics.median(cpus), statistics.median(walls)


def wsgi_caller(app: Any, request: Any) -> Callable[[], bytes]:
    """Calls ``app`` as gunicorn would with ``request`` (a fresh environ each time), returns the body."""
    template = wsgi_caller_environ(request)

    def call() -> bytes:
        environ = dict(template)
        environ["wsgi.input"] = io.BytesIO(request.body)
        status: list[str] = []
        body = b"".join(app(environ, lambda line, _headers, _exc=None: status.append(line)))
        if not status[0].startswith("200"):
            raise RuntimeError(f"unexpected {status[0]}: {body[:200]!r}")
        return body

    return call


def main() -> int:
    arguments = parse_arguments()
    print_header(f"Intake CPU by stage ({arguments.db}, in-process, one thread)")
    from flask import Flask
    from werkzeug.datastructures import EnvironHeaders

    from bench.ablated_app import FreeInbox
    from bench.bare_app import app as bare_app
    from service import metrics
    from service.app import create_app
    from service.intake.authentication import is_authentic
    from service.intake.context import EXTENSION, Runtime
    from service.intake.parsing import decode_body
    from service.intake.schemas import interpret
    from service.logs import ConsoleFormatter, log_event
    from service.settings import GenAuthSettings, Settings, WebhookSettings, WorkerSettings
    from service.store.inbox import Delivery, Inbox, write_deliveries
    from service.store.keys import body_digest

    state = EmulatorState()
    users = seed_population(state, non_compliant=1000).non_compliant
    requests = [webhook_request(state, user_id) for user_id in users]
    count, repeats = arguments.requests, arguments.repeats
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
            log_format="json",
            metrics_dir=_METRICS_DIR,
        )
        app: Flask = create_app(settings, configure_logs=True)
        sink = io.StringIO()
        logging.getLogger().handlers[-1].stream = sink  # formatted as in production, kept off the report
        runtime = app.extensions[EXTENSION]
        assert isinstance(runtime, Runtime)
        webhook = runtime.settings.webhook
        headers = [EnvironHeaders(wsgi_caller_environ(request)) for request in requests]
        bodies = [decode_body("application/json", request.body) for request in requests]
        interpretations = [interpret(body) for body in bodies]
        view_logger = logging.getLogger("service.intake.views")

        def pick(index: int) -> int:
            return index % len(requests)

        def secret(index: int) -> object:
            return is_authentic(headers[pick(index)], webhook.secrets)

        def parse(index: int) -> object:
            return decode_body("application/json", requests[pick(index)].body, max_values=webhook.max_values)

        def validate(index: int) -> object:
            return interpret(bodies[pick(index)])

        def delivery(index: int) -> Delivery:
            interpretation = interpretations[pick(index)]
            pools = {*headers[pick(index)].getlist("x-authing-userpool-id"), *interpretation.userpool_ids}
            if pools - {webhook.userpool_id}:
                raise RuntimeError("pool check failed")
            return Delivery(
                event_name=interpretation.event_name,
                userpool_id=runtime.settings.pool_key,
                subjects=interpretation.subjects,
                digest=body_digest(runtime.digest_key, requests[pick(index)].body),
                content_type="application/json",
                outcome=interpretation.outcome,
            )

        prepared = [delivery(index) for index in range(len(requests))]
        inbox = Inbox(runtime.engine)

        def commit_alone(index: int) -> object:
            return inbox.record(prepared[pick(index)], now=time.time())

        batch = 8

        def commit_batch(index: int) -> object:
            if index % batch:
                return None
            with runtime.engine.begin() as connection:
                now = time.time()
                return write_deliveries(connection, [(prepared[pick(index + k)], now) for k in range(batch)])

        def logs(index: int) -> None:
            subject = prepared[pick(index)]
            log_event(view_logger, "webhook_received", event_id=index, event_name=subject.event_name,
                      outcome=subject.outcome, users=1, expansions=0)  # fmt: skip
            if sink.tell() > 1 << 22:
                sink.seek(0)
                sink.truncate()

        console_logger = logging.getLogger("bench.profile.console")
        console_logger.propagate = False
        console_handler = logging.StreamHandler(io.StringIO())
        console_handler.setFormatter(ConsoleFormatter())
        console_logger.addHandler(console_handler)

        def console_logs(index: int) -> None:
            subject = prepared[pick(index)]
            log_event(console_logger, "webhook_received", event_id=index, event_name=subject.event_name,
                      outcome=subject.outcome, users=1, expansions=0)  # fmt: skip
            stream = console_handler.stream
            if stream.tell() > 1 << 22:
                stream.seek(0)
                stream.truncate()

        def count_metrics(_index: int) -> None:
            metrics.DELIVERIES.labels(event="login", outcome="queued").inc()
            metrics.ACK_SECONDS.observe(0.002)

        def commit_threaded(threads: int) -> tuple[float, float, float]:
            """Process CPU and wall µs per delivery, and deliveries per batch, with ``threads`` threads submitting
            to one Inbox at once (as a gunicorn process's request threads do), median of the repeats."""
            cpus, walls, sizes = [], [], []
            for _ in range(repeats):
                shared = Inbox(runtime.engine)
                per_thread = max(1, count // threads)
                start = threading.Barrier(threads + 1)

                def submit(offset: int, shared: Inbox, per_thread: int, start: threading.Barrier) -> None:
                    start.wait()
                    for index in range(per_thread):
                        shared.record(prepared[pick(offset + index * threads)], now=time.time())

                workers = [
                    threading.Thread(target=submit, args=(offset, shared, per_thread, start))
                    for offset in range(threads)
                ]
                for worker in workers:
                    worker.start()
                start.wait()
                wall, cpu = time.perf_counter(), time.process_time()
                for worker in workers:
                    worker.join()
                done = per_thread * threads
                cpus.append((time.process_time() - cpu) / done * 1e6)
                walls.append((time.perf_counter() - wall) / done * 1e6)
                sizes.append(shared.commits.items / max(shared.commits.batches, 1))
            return statistics.median(cpus), statistics.median(walls), statistics.median(sizes)

        runtime.inbox = FreeInbox()  # type: ignore[assignment]
        service_calls = [wsgi_caller(app, request) for request in requests]
        bare_calls = [wsgi_caller(bare_app, request) for request in requests]

        def service_request(index: int) -> object:
            return service_calls[pick(index)]()

        def bare_request(index: int) -> object:
            return bare_calls[pick(index)]()

        for action in (service_request, bare_request, commit_alone):
            action(0)  # warm up: first request, connection pool
        stages: list[tuple[str, Callable[[int], object]]] = [
            ("secret check (is_authentic)", secret),
            ("parse (decode_body)", parse),
            ("validate + subjects (interpret)", validate),
            ("delivery (pool check, digest, Delivery)", delivery),
            ("logs (webhook_received line, JSON format)", logs),
            ("logs (the same line, console format: LOG_FORMAT's default)", console_logs),
            ("metrics (counter + histogram)", count_metrics),
        ]
        results = {label: measure(count, repeats, action) for label, action in stages}
        whole = measure(count, repeats, service_request)
        bare = measure(count, repeats, bare_request)
        alone = measure(count, repeats, commit_alone)
        grouped = measure(count - count % batch or batch, repeats, commit_batch)
        threaded = commit_threaded(batch)
        framework = whole[0] - sum(cpu for label, (cpu, _wall) in results.items() if "console" not in label)
        rows: list[list[object]] = [[label, cpu, "", ""] for label, (cpu, _wall) in results.items()]
        rows.append(["framework and view glue (the rest of the free-store request)", framework, "", ""])
        rows.append(["**whole request, free store** (service WSGI app)", whole[0], "", f"{whole[0] / bare[0]:.2f}"])
        rows.append(["bare Flask app (bench/bare_app.py, WSGI)", bare[0], "", "1.00"])
        rows.append(["commit, alone (Inbox.record, one transaction each)", alone[0], alone[1], ""])
        rows.append([f"commit, {batch} per transaction (write_deliveries), per delivery", grouped[0], grouped[1], ""])
        rows.append(
            [
                f"commit, {batch} threads through one Inbox (group commit; process CPU), {threaded[2]:.1f} per batch",
                threaded[0],
                threaded[1],
                "",
            ]
        )
        print_table(
            ["stage", "CPU µs/delivery", "wall µs/delivery", "x bare"],
            rows,
            title=f"Median of {repeats} runs of {count} deliveries each",
        )
        print(
            f"Service request over the bare app: {whole[0] - bare[0]:.1f} µs CPU before any commit; "
            f"the commit adds {grouped[0]:.1f} µs CPU per delivery at {batch} per transaction.\n"
        )
        if arguments.profile:
            import cProfile
            import pstats

            profiler = cProfile.Profile()
            profiler.enable()
            for index in range(count):
                service_request(index)
            profiler.disable()
            text = io.StringIO()
            pstats.Stats(profiler, stream=text).strip_dirs().sort_stats(
                os.environ.get("PROFILE_SORT", "tottime")
            ).print_stats(arguments.profile)
            print("```")
            print("\n".join(line for line in text.getvalue().splitlines() if line.strip()))
            print("```")
        runtime.engine.dispose()
    return 0


def wsgi_caller_environ(request: Any) -> dict[str, Any]:
    from werkzeug.test import EnvironBuilder

    builder = EnvironBuilder(path=request.path, method="POST", data=request.body, headers=dict(request.headers))
    try:
        return builder.get_environ()
    finally:
        builder.close()


if __name__ == "__main__":
    raise SystemExit(main())
