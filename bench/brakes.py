"""The change budget at the size issue 15 names: ``ENFORCER_CHANGE_BUDGET=5/hour`` and a sweep of 500 Finance
users who lack SMS, drained by two ``mfa-enforcer worker`` processes.

Checks that exactly 5 are written and the rest held (``holds --json``), then that two ``holds release --all`` at
once write every other user exactly once, and reports how long each step took.

    .venv/bin/python bench/brakes.py [--users 500] [--database sqlite|postgres]

Prints a Markdown report (stdout); progress on stderr. Nothing here runs in the test suite (tests/e2e/test_brakes.py
runs the same steps with 40 users).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
import time
from collections import Counter
from pathlib import Path

from common import (
    BIN,
    ROOT,
    database,
    emulator_env,
    log,
    print_header,
    print_table,
    start_emulator,
    upgrade_database,
    verdict,
    wait_until,
)

from genauth_emulator.sample import seed_sandbox

SET_MFA = "/api/v3/set-mfa-status"
POLICY = "policies:\n  - name: finance-sms\n    match: {departments: [finance]}\n    require_mfa: [SMS]\n"


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "mfa-enforcer"), *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False
    )


def held(env: dict[str, str]) -> int:
    return int(json.loads(cli(env, "holds", "--json").stdout)["held"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=500)
    parser.add_argument("--database", choices=("sqlite", "postgres"), default="sqlite")
    args = parser.parse_args()
    print_header(f"Change budget: {args.users} users, 5/hour, {args.database}")
    emulator = start_emulator()
    state = emulator.state
    seed_sandbox(state)  # the Finance department, and its sample users
    state.add_users(
        {"username": f"b{i}", "email": f"b{i}@acme.example", "phone": f"137{i:08d}", "departments": ["finance"]}
        for i in range(args.users)
    )
    workdir = Path(tempfile.mkdtemp(prefix="brakes-", dir=ROOT / "var" if (ROOT / "var").is_dir() else None))
    policy = workdir / "policies.yaml"
    policy.write_text(POLICY)
    rows: list[list[object]] = []
    ok = True
    with database(args.database, workdir, name="brakes") as database_url:
        env = emulator_env(
            emulator,
            database_url,
            POLICY_FILE=str(policy),
            GENAUTH_RATE_LIMIT="0",
            ENFORCER_CHANGE_BUDGET="5/hour",
            ENFORCER_POLL_INTERVAL="0.2",
            ENFORCER_WORKER_THREADS="4",
        )
        upgrade_database(env)
        workers = [
            subprocess.Popen(
                [str(BIN / "mfa-enforcer"), "worker"],
                cwd=ROOT,
                env=env,
                stdout=(workdir / f"worker{n}.log").open("ab"),
                stderr=subprocess.STDOUT,
            )
            for n in range(2)
        ]
        try:
            emulator.journal.clear()
            t0 = time.monotonic()
            swept = cli(env, "reconcile", "--wait", "--json", "--quiet")
            sweep_seconds = time.monotonic() - t0
            needing = args.users + 2  # and the sample users fin.alice and fin.bob, who lack SMS too
            written, holding = emulator.journal.count(SET_MFA), held(env)
            met = swept.returncode == 0 and written == 5 and holding == needing - 5
            ok &= met
            rows.append(["sweep", f"{sweep_seconds:.1f}", f"{written} written, {holding} held", verdict(met)])
            log(f"sweep: {written} written, {holding} held in {sweep_seconds:.1f} s")
            release = [str(BIN / "mfa-enforcer"), "holds", "release", "--all", "--reason", "bench", "--json"]
            t1 = time.monotonic()
            both = [subprocess.Popen(release, env=env, stdout=subprocess.PIPE, text=True) for _ in range(2)]
            released = [json.loads(process.communicate(timeout=600)[0])["released"] for process in both]
            wait_until(lambda: emulator.journal.count(SET_MFA) >= needing, timeout=1200, what="every released write")
            wait_until(lambda: held(env) == 0, timeout=120, what="no holds left")
            release_seconds = time.monotonic() - t1
            per_user = Counter(entry.body["userId"] for entry in emulator.journal.entries(SET_MFA))
            met = sum(released) == needing - 5 and len(per_user) == needing and set(per_user.values()) == {1}
            ok &= met
            rows.append(
                [
                    "two releases at once",
                    f"{release_seconds:.1f}",
                    f"released {' + '.join(map(str, released))}; {len(per_user)} users written, each once",
                    verdict(met),
                ]
            )
        finally:
            for worker in workers:
                worker.terminate()
            for worker in workers:
                worker.wait(60)
    emulator.stop()
    print_table(["step", "seconds", "result", "verdict"], rows)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
