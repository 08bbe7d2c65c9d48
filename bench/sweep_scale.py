"""A reconcile sweep at scale against the emulator: memory stays flat, progress is visible, and a ``kill -9`` of the
worker mid-sweep resumes from the page it was on.

One run: the emulator (in this process) with ``--users`` users under one pool-wide rule, a fresh database
(``mfa-enforcer db upgrade``), gunicorn for ``/metrics`` (no worker in it), one ``mfa-enforcer worker`` process
and ``mfa-enforcer reconcile --wait`` following the sweep. Every ``--sample`` seconds it records the worker's
RSS, the sweep's counts from ``/metrics`` and the CLI's latest progress line. When ``--kill-at`` of the users are
in scope it sends SIGKILL to the worker, notes the sweep's pages on the queue, starts a new worker, and reads
from the emulator's journal which pages the new worker read first and which pages were read more than once.

    .venv/bin/python bench/sweep_scale.py --users 100000

Prints a Markdown report (stdout); progress on stderr. Nothing here runs in the test suite.
"""

from __future__ import annotations

import argparse
import http.client
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from common import (
    BIN,
    LOOPBACK,
    ROOT,
    Gunicorn,
    database,
    emulator_env,
    free_port,
    log,
    print_header,
    print_table,
    start_emulator,
    upgrade_database,
)

USERS_PATH = "/api/v3/list-users"
POLICY = "policies:\n  - name: everyone-email\n    match: {email_domains: [acme.example]}\n    require_mfa: [EMAIL]\n"


def rss_mb(pid: int) -> float | None:
    """Resident memory of ``pid`` in MiB (``VmRSS``), None once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def scrape(port: int) -> dict[str, float]:
    """The ``mfa_enforcer_reconcile_*`` samples of ``/metrics``."""
    connection = http.client.HTTPConnection(LOOPBACK, port, timeout=5)
    try:
        connection.request("GET", "/metrics")
        text = connection.getresponse().read().decode()
    finally:
        connection.close()
    found = {}
    for line in text.splitlines():
        if line.startswith("mfa_enforcer_reconcile_"):
            name, _, value = line.rpartition(" ")
            found[name.removeprefix("mfa_enforcer_")] = float(value)
    return found


def page_numbers(entries: list[Any]) -> list[int]:
    return [int(entry.body["options"]["pagination"]["page"]) for entry in entries]


def page_rows(database_url: str) -> list[tuple[str, str, bool]]:
    """The sweep's page rows: (subject, state, leased)."""
    import sqlalchemy as sa

    engine = sa.create_engine(database_url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                sa.text("SELECT user_id, state, leased_until FROM work WHERE kind = 'page' ORDER BY id")
            ).all()
    finally:
        engine.dispose()
    now = time.time()
    return [(str(subject), str(state), leased is not None and leased > now) for subject, state, leased in rows]


class Follower:
    """``reconcile --wait`` as a subprocess; keeps its latest progress line."""

    def __init__(self, env: dict[str, str]) -> None:
        self.process = subprocess.Popen(
            [str(BIN / "mfa-enforcer"), "reconcile", "--wait", "--json"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.append(line.rstrip())

    @property
    def latest(self) -> str:
        return self.lines[-1] if self.lines else ""


def start_worker(env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    with log_path.open("ab") as out:
        return subprocess.Popen(
            [str(BIN / "mfa-enforcer"), "worker"], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--database", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--kill-at", type=float, default=0.5, help="share of the users in scope at the kill -9")
    parser.add_argument("--sample", type=float, default=10.0, help="seconds between samples")
    parser.add_argument("--lease", type=float, default=20.0, help="ENFORCER_LEASE_SECONDS of the workers")
    parser.add_argument("--timeout", type=float, default=7200.0, help="give up after this many seconds")
    args = parser.parse_args()

    print_header(f"Sweep at scale: {args.users:,} users, {args.database}")
    emulator = start_emulator()
    state = emulator.state
    started = time.monotonic()
    state.add_users(
        {"username": f"u{i:06d}", "email": f"u{i:06d}@acme.example", "application_mfa": ["EMAIL"]}
        for i in range(args.users - len(state.user_ids()))
    )
    log(f"seeded {len(state.user_ids()):,} users in {time.monotonic() - started:.1f} s")
    workdir = Path(tempfile.mkdtemp(prefix="sweep-scale-", dir=ROOT / "var" if (ROOT / "var").is_dir() else None))
    policy = workdir / "policies.yaml"
    policy.write_text(POLICY)
    with database(args.database, workdir, name="sweep_scale") as database_url:
        web_port = free_port()
        env = emulator_env(
            emulator,
            database_url,
            port=web_port,
            POLICY_FILE=str(policy),
            GENAUTH_RATE_LIMIT="0",
            ENFORCER_RUN_WORKER="false",
            ENFORCER_LEASE_SECONDS=str(args.lease),
            ENFORCER_POLL_INTERVAL="0.2",
            WEB_CONCURRENCY="1",
        )
        upgrade_database(env)
        web = Gunicorn("service.app:create_app()", env, workdir / "web.log").start()
        worker = start_worker(env, workdir / "worker.log")
        emulator.journal.clear()
        follower = Follower(env)
        samples: list[list[Any]] = []
        kill: dict[str, Any] = {}
        deadline = time.monotonic() + args.timeout
        t0 = time.monotonic()
        try:
            while follower.process.poll() is None and time.monotonic() < deadline:
                time.sleep(args.sample)
                gauges = scrape(web_port)
                in_scope = int(gauges.get("reconcile_progress_users", 0))
                samples.append(
                    [
                        round(time.monotonic() - t0),
                        in_scope,
                        rss_mb(worker.pid),
                        follower.latest.removeprefix("reconcile: "),
                    ]
                )
                log(f"{samples[-1]}")
                if not kill and in_scope >= args.kill_at * args.users:
                    os.kill(worker.pid, signal.SIGKILL)
                    worker.wait(30)
                    read_before = len(emulator.journal.entries(USERS_PATH))
                    kill = {"at": samples[-1][0], "in_scope": in_scope, "pages": page_rows(database_url)}
                    log(f"kill -9 at {in_scope:,} in scope; pages on the queue: {kill['pages']}")
                    worker = start_worker(env, workdir / "worker.log")
                    kill["read_before"] = read_before
        finally:
            if follower.process.poll() is None:
                follower.process.send_signal(signal.SIGINT)
            out, _ = follower.process.communicate(timeout=60)
            worker.send_signal(signal.SIGTERM)
            try:
                worker.wait(60)
            except subprocess.TimeoutExpired:
                worker.kill()
            web.stop()
        elapsed = time.monotonic() - t0
        final = scrape_safe_summary(out)
        pages = page_numbers(emulator.journal.entries(USERS_PATH))
        mfa_reads = emulator.journal.count("/api/v3/get-mfa-status")
        get_user = emulator.journal.count("/api/v3/get-user")
    emulator.stop()

    print_table(["seconds", "in scope (/metrics)", "worker RSS MiB", "reconcile --wait (stderr)"], samples)
    rss = [row[2] for row in samples if row[2] is not None]
    after = pages[kill["read_before"] :] if kill else []
    twice = sorted(number for number, count in Counter(pages).items() if count > 1)
    rows = [
        ["users", args.users],
        ["reconcile --wait exit code", follower.process.returncode],
        ["in scope (summary)", final.get("in_scope")],
        ["decided (summary)", final.get("waited", {}).get("decided")],
        ["seconds, start to summary", round(elapsed, 1)],
        ["users per second", round((final.get("in_scope") or 0) / elapsed, 1)],
        ["list-users pages read", len(pages)],
        ["get-mfa-status calls", mfa_reads],
        ["get-user calls", get_user],
        ["worker RSS MiB, min / max", f"{min(rss):.1f} / {max(rss):.1f}" if rss else "n/a"],
    ]
    if kill:
        rows += [
            ["kill -9 at (s, users in scope)", f"{kill['at']} s, {kill['in_scope']:,}"],
            [
                "sweep pages on the queue at the kill",
                ", ".join(f"{s} ({st}{', leased' if le else ''})" for s, st, le in kill["pages"]),
            ],
            ["first pages the new worker read", ", ".join(map(str, after[:3]))],
            ["pages read twice", ", ".join(map(str, twice)) or "none"],
        ]
    print_table(["measure", "value"], rows)
    return 0 if follower.process.returncode == 0 else 1


def scrape_safe_summary(out: str) -> dict[str, Any]:
    import json

    try:
        return dict(json.loads(out))
    except ValueError:
        return {}


if __name__ == "__main__":
    sys.exit(main())
