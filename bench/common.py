"""Shared helpers for the benchmarks in ``bench/``.

* the machine and the command, printed at the top of every run (``print_header``);
* the GenAuth emulator in this process (``start_emulator``, ``seed_population``);
* gunicorn as a subprocess with ``config/gunicorn.conf.py`` on a free loopback port (``Gunicorn``);
* a throw-away database: a SQLite file, or a PostgreSQL database created and dropped for the run;
* a load generator (threads + ``http.client``): closed loop (fixed concurrency for a fixed duration or count)
  and paced open loop (a fixed rate, latency counted from each request's scheduled send time);
* percentiles and Markdown tables.

Every loop here is bounded in count and time, and all traffic goes to 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import datetime
import http.client
import itertools
import math
import os
import platform
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from genauth_emulator.payloads import event_body  # noqa: E402
from genauth_emulator.sender import JSON_TYPE, WebhookSender, encode_body  # noqa: E402
from genauth_emulator.server import EmulatorServer  # noqa: E402
from genauth_emulator.state import EmulatorState  # noqa: E402

BIN = Path(sys.executable).parent
GUNICORN_CONFIG = "config/gunicorn.conf.py"
LOOPBACK = "127.0.0.1"
WEBHOOK_SECRET = "bench-webhook-secret-0123456789"  # a fixed local-only value
DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
WEBHOOK_PATH = "/webhooks/genauth"
# A client connection idle longer than this is reopened before use, so it never races gunicorn's keepalive (5 s).
MAX_IDLE_SECONDS = 2.0


# -- the machine and the command ---------------------------------------------------------------------------


def machine() -> dict[str, str]:
    """Cores, CPU model, Python, OS and load average of this machine."""
    model = platform.processor() or "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = os.cpu_count() or 0
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
    return {
        "cores": f"{os.cpu_count()} ({usable} usable)",
        "cpu": model,
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "os": platform.platform(terse=True),
        "load average (1, 5, 15 min)": load,
    }


def command_line() -> str:
    """The command that started this run, as someone would type it from the repository root."""
    executable = Path(sys.executable)
    with contextlib.suppress(ValueError):
        executable = executable.relative_to(ROOT)
    script = Path(sys.argv[0]).resolve()
    with contextlib.suppress(ValueError):
        script = script.relative_to(ROOT)
    return shlex.join([str(executable), str(script), *sys.argv[1:]])


def code_revision() -> str:
    """The commit benchmarked, and whether the working tree had local changes (read-only git commands).

    ``BENCH_REVISION`` overrides it, for a run in an exported tree (``git archive``) that is not a checkout.
    """
    if os.environ.get("BENCH_REVISION"):
        return os.environ["BENCH_REVISION"]
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown (not a git checkout)"
    return f"{head}{' + uncommitted changes' if dirty else ''}"


def print_header(title: str) -> None:
    """Title, date, exact command, machine and code revision, as Markdown."""
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    print(f"## {title}\n")
    print(f"- date: {now}")
    print(f"- command: `{command_line()}`")
    for name, value in machine().items():
        print(f"- {name}: {value}")
    print(f"- code: {code_revision()}")
    print(flush=True)


def print_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], *, title: str | None = None) -> None:
    """A Markdown table (paste-ready for docs/benchmarks.md)."""
    cells = [[_cell(value) for value in row] for row in rows]
    widths = [max(len(str(header)), *(len(row[i]) for row in cells)) for i, header in enumerate(headers)]
    if title:
        print(f"{title}\n")
    print("| " + " | ".join(str(h).ljust(w) for h, w in zip(headers, widths, strict=True)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in cells:
        print("| " + " | ".join(value.ljust(w) for value, w in zip(row, widths, strict=True)) + " |")
    print(flush=True)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "n/a"
        return f"{value:,.1f}" if abs(value) >= 100 else f"{value:.2f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def log(message: str) -> None:
    """Progress on stderr, so stdout stays a clean report."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def verdict(met: bool) -> str:
    return "**met**" if met else "**not met**"


# -- statistics --------------------------------------------------------------------------------------------


def percentile(values: Sequence[float], pct: float) -> float:
    """The ``pct``-th percentile (0-100) with linear interpolation between closest ranks; NaN when empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * pct / 100.0
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def median(values: Sequence[float]) -> float:
    return percentile(values, 50)


# -- waiting -----------------------------------------------------------------------------------------------


def wait_until(check: Callable[[], Any], *, timeout: float, interval: float = 0.1, what: str = "a condition") -> Any:
    """Poll ``check`` until it returns something truthy; raise TimeoutError after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        return int(probe.getsockname()[1])


# -- the GenAuth emulator ----------------------------------------------------------------------------------


@dataclass
class Population:
    """Users seeded for a benchmark, by kind."""

    non_compliant: list[str] = field(default_factory=list)
    """In Finance, with a phone, no MFA yet: the finance-sms rule must enable SMS (one write)."""
    compliant: list[str] = field(default_factory=list)
    """In Finance with SMS already on: costs reads only."""
    outside: list[str] = field(default_factory=list)
    """In Engineering: no rule matches."""


def start_emulator(latency: float = 0.0) -> EmulatorServer:
    """The emulator on 127.0.0.1 and a free port, in a daemon thread of this process, with ``latency`` seconds
    added to every management API request."""
    server = EmulatorServer(EmulatorState(), host=LOOPBACK, port=0)
    server.start()
    server.faults.latency = latency
    return server


def seed_population(
    state: EmulatorState, *, non_compliant: int, compliant: int = 0, outside: int = 0, prefix: str = "bench"
) -> Population:
    """An ``acme`` organization with Finance and Engineering, and users of each kind."""
    with contextlib.suppress(Exception):
        state.add_organization("acme", "ACME")
        state.add_department("acme", "finance", "Finance")
        state.add_department("acme", "engineering", "Engineering")
    population = Population()
    serial = itertools.count(len(state.user_ids()))
    kinds = (("non_compliant", non_compliant), ("compliant", compliant), ("outside", outside))
    for kind, how_many in kinds:
        for _ in range(how_many):
            number = next(serial)
            username = f"{prefix}.{kind}.{number:06d}"
            phone = f"139{number:08d}"
            user = state.add_user(
                username=username,
                email=f"{username}@acme.example",
                phone=phone,
                departments=("engineering",) if kind == "outside" else ("finance",),
                application_mfa=["SMS"] if kind == "compliant" else (),
                mfa_phone=phone if kind == "compliant" else None,
            )
            getattr(population, kind).append(user["userId"])
    return population


def has_sms(state: EmulatorState, user_id: str) -> bool:
    """True when the user's stored MFA trigger data has SMS enabled (the effect a delivery is meant to have)."""
    factors = state.get_mfa(user_id).get("applicationMfa") or []
    return any(isinstance(f, dict) and f.get("mfaPolicy") == "SMS" and f.get("status") == 1 for f in factors)


def entry_user_id(entry: Any) -> str | None:
    """The user a management API journal entry was about (query ``userId`` or body ``userId``)."""
    values = entry.query.get("userId") if isinstance(entry.query, dict) else None
    if values:
        return str(values[0])
    if isinstance(entry.body, dict) and isinstance(entry.body.get("userId"), str):
        return str(entry.body["userId"])
    return None


def calls_by_user(entries: Sequence[Any]) -> dict[str, Counter[str]]:
    """``user id -> Counter(endpoint name)`` over journal entries (token requests carry no user)."""
    result: dict[str, Counter[str]] = {}
    for entry in entries:
        user_id = entry_user_id(entry)
        if user_id is not None:
            result.setdefault(user_id, Counter())[entry.path.rsplit("/", 1)[-1]] += 1
    return result


WRITE_ENDPOINTS = frozenset({"set-mfa-status"})


def reads_and_writes(counts: Mapping[str, int]) -> tuple[int, int]:
    writes = sum(n for name, n in counts.items() if name in WRITE_ENDPOINTS)
    return sum(counts.values()) - writes, writes


# -- webhook requests --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    """One pre-encoded HTTP request."""

    method: str
    path: str
    body: bytes
    headers: dict[str, str]


def webhook_request(state: EmulatorState, user_id: str, event: str = "login", secret: str = WEBHOOK_SECRET) -> Request:
    """A delivery exactly as the emulator's WebhookSender (GenAuth's shape and headers) would post it."""
    text, content_type = encode_body(event_body(state, event, user_id), "json")
    sender = WebhookSender(f"http://{LOOPBACK}{WEBHOOK_PATH}", secret, state.userpool_id)
    headers = sender.headers("authing", content_type or JSON_TYPE)
    sender.close()
    return Request("POST", WEBHOOK_PATH, text.encode("utf-8"), headers)


# -- gunicorn ----------------------------------------------------------------------------------------------


def service_env(
    *,
    port: int,
    database_url: str,
    genauth_url: str,
    access_key_id: str,
    access_key_secret: str,
    userpool_id: str | None = None,
    **extra: str,
) -> dict[str, str]:
    """The production environment of the service (README table), on loopback; ``extra`` overrides."""
    dropped = ("GENAUTH_", "ENFORCER_", "DATABASE_URL", "WEB_CONCURRENCY", "GUNICORN_THREADS", "LOG_", "POLICY_FILE")
    env = {key: value for key, value in os.environ.items() if not key.startswith(dropped)}
    env.update(
        PYTHONPATH=str(ROOT),  # this checkout's code, whatever the virtualenv's editable install points at
        HOST=LOOPBACK,
        PORT=str(port),
        GENAUTH_HOST=genauth_url,
        GENAUTH_ACCESS_KEY_ID=access_key_id,
        GENAUTH_ACCESS_KEY_SECRET=access_key_secret,
        GENAUTH_WEBHOOK_SECRET=WEBHOOK_SECRET,
        DATABASE_URL=database_url,
        POLICY_FILE=str(ROOT / "config" / "policies.yaml"),
        ENFORCER_CHANGE_BUDGET="off",  # benches measure throughput; bench/brakes.py measures the budget
    )
    if userpool_id:
        env["GENAUTH_USERPOOL_ID"] = userpool_id
    env.update(extra)
    return env


def emulator_env(
    emulator: EmulatorServer, database_url: str, *, port: int | None = None, **extra: str
) -> dict[str, str]:
    """``service_env`` pointed at ``emulator`` with its keys and user pool, on ``port`` or a free one."""
    state = emulator.state
    return service_env(
        port=free_port() if port is None else port,
        database_url=database_url,
        genauth_url=emulator.url,
        access_key_id=state.access_key_id,
        access_key_secret=state.access_key_secret,
        userpool_id=state.userpool_id,
        **extra,
    )


def upgrade_database(env: Mapping[str, str], *, timeout: float = 180.0) -> None:
    """``mfa-enforcer db upgrade`` on ``env``'s DATABASE_URL, as an operator does before starting the service.

    gunicorn's ``on_starting`` hook refuses a database without the current schema, for the service and also for
    the bare and naive apps served with the same config, so every benchmark prepares its fresh database first.
    """
    result = subprocess.run(
        [str(BIN / "mfa-enforcer"), "db", "upgrade"],
        cwd=ROOT,
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"`mfa-enforcer db upgrade` failed ({result.returncode}):\n{result.stdout}{result.stderr}")


class Gunicorn:
    """``gunicorn --config config/gunicorn.conf.py APP`` as a subprocess (its own process group), logging to a file."""

    def __init__(self, app: str, env: Mapping[str, str], log_path: Path, *, ready_path: str = "/healthz") -> None:
        self.app = app
        self.env = dict(env)
        self.port = int(self.env["PORT"])
        self.log_path = log_path
        self.ready_path = ready_path
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def start(self, *, timeout: float = 60.0) -> Gunicorn:
        command = [str(BIN / "gunicorn"), "--config", GUNICORN_CONFIG, self.app]
        with self.log_path.open("ab") as log_file:
            self.process = subprocess.Popen(
                command, cwd=ROOT, env=self.env, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True
            )
        try:
            wait_until(self._ready, timeout=timeout, interval=0.1, what=f"gunicorn ({self.app}) to answer")
        except TimeoutError:
            self.stop()
            raise RuntimeError(f"gunicorn did not start; last log lines:\n{self.log_tail()}") from None
        return self

    def _ready(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise RuntimeError(f"gunicorn exited with {self.process.returncode}; log:\n{self.log_tail()}")
        try:
            connection = http.client.HTTPConnection(LOOPBACK, self.port, timeout=1.0)
            connection.request("GET", self.ready_path)
            status = connection.getresponse().status
            connection.close()
        except OSError:
            return False
        return status == 200

    def worker_pids(self) -> list[int]:
        """The pids of gunicorn's worker processes (children of the master)."""
        if self.process is None:
            return []
        try:
            children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children").read_text().split()
        except OSError:
            return []
        return [int(pid) for pid in children]

    def check_alive(self) -> None:
        """Raise if the master has exited (e.g. another program on this shared machine signalled it)."""
        if self.process is not None and self.process.poll() is not None:
            raise RuntimeError(
                f"gunicorn ({self.app}) exited with {self.process.returncode} during the run; log:\n{self.log_tail()}"
            )

    def pids(self) -> list[int]:
        """The master and its workers."""
        return [] if self.process is None else [self.process.pid, *self.worker_pids()]

    def stop(self, *, timeout: float = 40.0) -> int | None:
        """SIGTERM the master (graceful, as in production), then SIGKILL its own process group if it hangs."""
        process, self.process = self.process, None
        if process is None:
            return None
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)  # the group start_new_session made for this master
                process.wait(10)
        return process.returncode

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def __enter__(self) -> Gunicorn:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


# -- databases ---------------------------------------------------------------------------------------------


def add_database_arguments(parser: Any) -> None:
    """``--db`` (sqlite or postgres) and ``--pg-url``, which ``database`` takes."""
    parser.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite", help="the service's database")
    parser.add_argument("--pg-url", default=DEFAULT_PG_URL, help="PostgreSQL server to create the bench database on")


@contextlib.contextmanager
def database(kind: str, directory: Path, *, name: str, pg_url: str = DEFAULT_PG_URL) -> Iterator[str]:
    """A fresh, empty database URL: a SQLite file in ``directory``, or a PostgreSQL database made for the run and
    dropped afterwards (``CREATE DATABASE bench_…`` on the server of ``pg_url``)."""
    if kind == "sqlite":
        yield f"sqlite:///{directory / (name + '.db')}"
        return
    if kind != "postgres":
        raise ValueError(f"unknown database kind {kind!r}")
    import sqlalchemy as sa
    from sqlalchemy.engine import make_url

    db_name = f"bench_{name}_{uuid.uuid4().hex[:10]}".lower().replace("-", "_")
    admin = sa.create_engine(pg_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{db_name}"'))
    try:
        yield make_url(pg_url).set(database=db_name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)'))
        admin.dispose()


class Tables:
    """Read-only counts on the service's tables, for waiting; -1 while the database is busy or not there yet."""

    def __init__(self, url: str) -> None:
        import sqlalchemy as sa

        self.engine = sa.create_engine(url)

    def scalar(self, sql: str, **params: object) -> int:
        import sqlalchemy as sa

        try:
            with self.engine.connect() as connection:
                return int(connection.execute(sa.text(sql), params).scalar_one() or 0)
        except sa.exc.OperationalError:
            return -1  # the table does not exist yet, or the file is busy: ask again later

    def pending(self) -> int:
        return self.scalar("SELECT count(*) FROM work WHERE state = 'pending'")

    def dead(self) -> int:
        return self.scalar("SELECT count(*) FROM work WHERE state = 'dead'")

    def decisions(self, user_id: str | None = None) -> int:
        if user_id is None:
            return self.scalar("SELECT count(*) FROM decisions")
        return self.scalar("SELECT count(*) FROM decisions WHERE user_id = :user", user=user_id)

    def last_action(self, user_id: str) -> str:
        """The action of the user's latest decision, or "-" when there is none."""
        import sqlalchemy as sa

        with self.engine.connect() as connection:
            row = connection.execute(
                sa.text("SELECT action FROM decisions WHERE user_id = :user ORDER BY id DESC LIMIT 1"),
                {"user": user_id},
            ).first()
        return str(row[0]) if row else "-"

    def close(self) -> None:
        self.engine.dispose()


def count_rows(database_url: str, table: str, where: str = "") -> int:
    """``SELECT count(*)`` on one of the service's tables."""
    import sqlalchemy as sa

    engine = sa.create_engine(database_url)
    try:
        with engine.connect() as connection:
            return int(connection.execute(sa.text(f"SELECT count(*) FROM {table} {where}")).scalar_one())  # noqa: S608
    finally:
        engine.dispose()


# -- load generation ---------------------------------------------------------------------------------------


@dataclass
class Sample:
    """One request: when it was due (paced) or sent (closed loop), when it ended, and what came back."""

    index: int
    due: float
    sent: float
    ended: float
    status: int  # 0 when there was no HTTP answer (timeout, refused, reset)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def latency_ms(self) -> float:
        """From when the request was due (paced: its scheduled time, so queueing in the client counts)."""
        return (self.ended - self.due) * 1000.0


@dataclass
class LoadResult:
    """What a load run measured."""

    samples: list[Sample]
    started: float
    finished: float
    mode: str
    concurrency: int
    target_rate: float | None = None

    @property
    def elapsed(self) -> float:
        return max(self.finished - self.started, 1e-9)

    @property
    def sent(self) -> int:
        return len(self.samples)

    @property
    def acked(self) -> int:
        return sum(1 for sample in self.samples if sample.ok)

    @property
    def acked_per_second(self) -> float:
        return self.acked / self.elapsed

    @property
    def failures(self) -> Counter[str]:
        """Non-2xx answers (``HTTP 503``) and errors (``timeout``), counted."""
        return Counter((sample.error or f"HTTP {sample.status}") for sample in self.samples if not sample.ok)

    def latencies_ms(self, *, acked_only: bool = True) -> list[float]:
        return [s.latency_ms for s in self.samples if s.ok or not acked_only]

    def pct(self, value: float, *, acked_only: bool = True) -> float:
        return percentile(self.latencies_ms(acked_only=acked_only), value)

    def failure_text(self) -> str:
        return ", ".join(f"{name}: {n}" for name, n in sorted(self.failures.items())) or "none"


class _Client:
    """One keep-alive HTTP/1.1 connection used by one load thread."""

    def __init__(
        self,
        host: str,
        port: int,
        timeout: float,
        keepalive: bool,
        connection: http.client.HTTPConnection | None = None,
    ) -> None:
        self.host, self.port, self.timeout, self.keepalive = host, port, timeout, keepalive
        self.connection = connection
        self.last_used = time.monotonic()

    def send(self, request: Request) -> tuple[int, str | None]:
        now = time.monotonic()
        if self.connection is not None and (not self.keepalive or now - self.last_used > MAX_IDLE_SECONDS):
            self.close()
        if self.connection is None:
            self.connection = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        headers = request.headers if self.keepalive else {**request.headers, "Connection": "close"}
        try:
            self.connection.request(request.method, request.path, body=request.body, headers=headers)
            response = self.connection.getresponse()
            response.read()
            status = response.status
            if response.will_close:
                self.close()
        except TimeoutError:
            self.close()
            return 0, "timeout"
        except (OSError, http.client.HTTPException) as error:
            self.close()
            return 0, _error_name(error)
        finally:
            self.last_used = time.monotonic()
        return status, None

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close()
            self.connection = None


def _server_pid(port: int, local_port: int) -> int | None:
    """The pid of the process holding the server side of our connection from ``local_port`` (via ``ss``)."""
    output = subprocess.run(
        ["ss", "-tnpH", "state", "established", f"( sport = :{port} and dport = :{local_port} )"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    marker = output.find("pid=")
    if marker < 0:
        return None
    return int(output[marker + 4 :].split(",", 1)[0])


def spread_connections(
    port: int, pids: Sequence[int], count: int, *, path: str = "/healthz", timeout: float = 60.0
) -> list[http.client.HTTPConnection]:
    """``count`` keep-alive connections, spread evenly over the server processes ``pids`` (gunicorn workers).

    Gunicorn's workers race to accept on one shared socket, so where a burst of connections lands is luck: a
    load test whose connections all land on one of two workers measures one core, not two (seen here, for
    either app). Each connection is opened, answered once (so a worker has accepted it), and kept only if its
    worker still has room; the result is as even as ``count`` allows, the same for every system measured.
    """
    quota = {pid: count // len(pids) + (1 if index < count % len(pids) else 0) for index, pid in enumerate(pids)}
    kept: list[http.client.HTTPConnection] = []
    deadline = time.monotonic() + timeout
    while len(kept) < count:
        if time.monotonic() > deadline:
            for connection in kept:
                connection.close()
            raise RuntimeError(f"could not spread {count} connections over workers {list(pids)}")
        connection = http.client.HTTPConnection(LOOPBACK, port, timeout=10.0)
        connection.request("GET", path)
        connection.getresponse().read()
        assert connection.sock is not None
        owner = _server_pid(port, connection.sock.getsockname()[1])
        if owner in quota and quota[owner] > 0:
            quota[owner] -= 1
            kept.append(connection)
        else:
            connection.close()
    return kept


def _error_name(error: BaseException) -> str:
    if isinstance(error, ConnectionRefusedError):
        return "connection refused"
    if isinstance(error, ConnectionResetError | http.client.RemoteDisconnected | BrokenPipeError):
        return "connection reset"
    return type(error).__name__


def closed_loop(
    port: int,
    request_for: Callable[[int], Request],
    *,
    concurrency: int,
    duration: float | None = None,
    count: int | None = None,
    timeout: float = 10.0,
    keepalive: bool = True,
    max_seconds: float = 900.0,
    spread_over: Sequence[int] = (),
) -> LoadResult:
    """``concurrency`` threads, each sending its next request as soon as the previous one is answered, until
    ``duration`` seconds have passed or ``count`` requests were sent (and never longer than ``max_seconds``).

    With ``spread_over`` (worker pids) and keep-alive, the connections start spread evenly over those workers.
    """
    if duration is None and count is None:
        raise ValueError("give a duration or a count")
    connections = _opening_connections(port, spread_over, concurrency, keepalive)
    limit = count if count is not None else sys.maxsize
    started = time.perf_counter()
    deadline = started + min(duration if duration is not None else max_seconds, max_seconds)
    numbers = itertools.count()
    samples: list[Sample] = []
    lock = threading.Lock()

    def run() -> None:
        client = _Client(LOOPBACK, port, timeout, keepalive, connections.pop() if connections else None)
        mine: list[Sample] = []
        try:
            while time.perf_counter() < deadline:
                index = next(numbers)
                if index >= limit:
                    break
                sent = time.perf_counter()
                status, error = client.send(request_for(index))
                mine.append(Sample(index, sent, sent, time.perf_counter(), status, error))
        finally:
            client.close()
            with lock:
                samples.extend(mine)

    _run_threads(run, concurrency, join_timeout=max_seconds + timeout + 30)
    finished = max((s.ended for s in samples), default=time.perf_counter())
    samples.sort(key=lambda s: s.index)
    return LoadResult(samples, started, finished, "closed loop", concurrency)


def paced(
    port: int,
    request_for: Callable[[int], Request],
    *,
    rate: float,
    duration: float | None = None,
    count: int | None = None,
    senders: int = 64,
    timeout: float = 10.0,
    keepalive: bool = True,
    spread_over: Sequence[int] = (),
) -> LoadResult:
    """Open loop: request ``i`` is due at ``start + i / rate``, whatever happened to earlier ones. ``senders``
    threads take the next due request; latency is counted from the due time, so a slow server that makes the
    senders fall behind is charged for it (no coordinated omission). ``spread_over`` as in ``closed_loop``."""
    if rate <= 0:
        raise ValueError("rate must be positive")
    connections = _opening_connections(port, spread_over, senders, keepalive)
    total = count if count is not None else max(1, int(rate * (duration or 0)))
    started = time.perf_counter() + 0.2
    numbers = itertools.count()
    samples: list[Sample] = []
    lock = threading.Lock()

    def run() -> None:
        client = _Client(LOOPBACK, port, timeout, keepalive, connections.pop() if connections else None)
        mine: list[Sample] = []
        try:
            while True:
                index = next(numbers)
                if index >= total:
                    break
                due = started + index / rate
                pause = due - time.perf_counter()
                if pause > 0:
                    time.sleep(pause)
                sent = time.perf_counter()
                status, error = client.send(request_for(index))
                mine.append(Sample(index, due, sent, time.perf_counter(), status, error))
        finally:
            client.close()
            with lock:
                samples.extend(mine)

    _run_threads(run, senders, join_timeout=total / rate + timeout * total / max(senders, 1) + 60)
    finished = max((s.ended for s in samples), default=time.perf_counter())
    samples.sort(key=lambda s: s.index)
    return LoadResult(samples, started, finished, "paced", senders, target_rate=rate)


def _opening_connections(
    port: int, spread_over: Sequence[int], count: int, keepalive: bool
) -> list[http.client.HTTPConnection]:
    """Connections for the load threads to start with (``list.pop`` is atomic, so threads may share it)."""
    if not spread_over or not keepalive:
        return []
    return spread_connections(port, spread_over, count)


def _run_threads(target: Callable[[], None], how_many: int, *, join_timeout: float) -> None:
    threads = [threading.Thread(target=target, name=f"load-{n}", daemon=True) for n in range(how_many)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + join_timeout
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))


# -- CPU accounting ----------------------------------------------------------------------------------------

_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def process_cpu_seconds(pids: Sequence[int]) -> float:
    """User + system CPU seconds used so far by these processes (Linux /proc; 0 for a pid that is gone)."""
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        total += (int(fields[11]) + int(fields[12])) / _TICKS
    return total


def machine_cpu_seconds() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far, from /proc/stat."""
    try:
        numbers = [int(value) for value in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    except (OSError, ValueError, IndexError):
        return 0.0, 0.0
    idle = numbers[3] + (numbers[4] if len(numbers) > 4 else 0)
    total = sum(numbers[:8])
    return (total - idle) / _TICKS, total / _TICKS


@dataclass
class CpuUse:
    """CPU used during a measurement: by the server processes, by this (load generator) process, by the machine."""

    server: float
    client: float
    machine_busy: float
    machine_total: float

    @property
    def machine_busy_fraction(self) -> float:
        return self.machine_busy / self.machine_total if self.machine_total else math.nan


@contextlib.contextmanager
def cpu_meter(server_pids: Callable[[], Sequence[int]]) -> Iterator[list[CpuUse]]:
    """Measure CPU used inside the block; the result is appended to the yielded list."""
    pids = list(server_pids())
    holder: list[CpuUse] = []
    server0, client0 = process_cpu_seconds(pids), time.process_time()
    busy0, total0 = machine_cpu_seconds()
    try:
        yield holder
    finally:
        busy1, total1 = machine_cpu_seconds()
        holder.append(
            CpuUse(
                server=process_cpu_seconds(pids) - server0,
                client=time.process_time() - client0,
                machine_busy=busy1 - busy0,
                machine_total=total1 - total0,
            )
        )
