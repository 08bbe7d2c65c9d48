"""Issue 13's measurements in one command: ``bench/calls.py`` then ``bench/effect.py``, each printing its own
tables, then one summary table in the shape of ``docs/benchmarks.md`` ("GenAuth calls per user and time to
effect"), with the target and a verdict for each measure.

    nice -n 10 .venv/bin/python bench/issue13.py            # ~8 min
    nice -n 10 .venv/bin/python bench/issue13.py --quick    # ~3 min: 5 logins, 8 hires (3 at 2 s)

Both scripts run as subprocesses with this interpreter; their JSON results are kept with ``--keep DIR``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import ROOT, print_table, verdict


def run(script: str, out: Path, extra: list[str]) -> dict[str, Any]:
    command = [sys.executable, str(ROOT / "bench" / script), "--json-out", str(out), *extra]
    result = subprocess.run(command, cwd=ROOT, check=False)
    if result.returncode != 0:
        raise SystemExit(f"{script} exited {result.returncode}")
    return dict(json.loads(out.read_text()))


def by_name(calls: dict[str, Any], *parts: str) -> dict[str, Any]:
    """The scenario whose name contains every one of ``parts``."""
    return next(row for row in calls["scenarios"] if all(part in row["name"] for part in parts))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer logins and hires (a rougher run, ~3 min)")
    parser.add_argument("--keep", type=Path, help="write calls.json and effect.json to this folder")
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-issue13-") as scratch:
        folder = arguments.keep or Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        calls = run("calls.py", folder / "calls.json", ["--probes", "5"] if arguments.quick else [])
        quick = ["--hires", "8", "--slow-hires", "3", "--warmup", "1"] if arguments.quick else []
        effect = run("effect.py", folder / "effect.json", quick)
    dry = by_name(calls, "`reconcile --dry-run`")
    enforcing = by_name(calls, "`reconcile` (enforcing)")
    compliant = by_name(calls, "login, already compliant")
    non_compliant = by_name(calls, "login, non-compliant")
    one_by_one = by_name(calls, "department move", "one by one")
    node = by_name(calls, "department move", "node-moved")
    rows = [
        [
            "`reconcile --dry-run`, calls per in-scope user",
            f"{dry['calls_per_unit']:.2f}",
            "≤ 1.1",
            verdict(dry["calls_per_unit"] <= 1.1),
        ],
        [
            "`reconcile` (enforcing), calls per in-scope user",
            f"{enforcing['calls_per_unit']:.2f}",
            "≤ 2.1",
            verdict(enforcing["calls_per_unit"] <= 2.1),
        ],
        [
            "login of an already compliant user, reads / writes",
            f"{compliant['reads_per_unit']:.2f} / {compliant['writes_per_unit']:.2f}",
            "≤ 2 reads, 0 writes",
            verdict(compliant["reads_per_unit"] <= 2 and compliant["writes_per_unit"] == 0),
        ],
        [
            "login of a non-compliant user, reads / writes",
            f"{non_compliant['reads_per_unit']:.2f} / {non_compliant['writes_per_unit']:.2f}",
            "—",
            "reported",
        ],
        [
            "department move, 500 users one by one, calls per moved user",
            f"{one_by_one['calls_per_unit']:.2f}",
            "—",
            "reported",
        ],
        [
            "department move, a 500-user department (`node-moved`), calls per moved user",
            f"{node['calls_per_unit']:.2f}",
            "—",
            "reported",
        ],
    ]
    for row in effect["results"]:
        latency = f"{row['latency_s'] * 1000:.0f} ms"
        service, naive = row["service"], row["naive"]
        rows.append(
            [
                f"time to effect at {latency}, median / p90 s (mfa-enforcer vs naive, {row['hires']} hires)",
                f"{service['median']:.2f} / {service['p90']:.2f} vs {naive['median']:.2f} / {naive['p90']:.2f}: "
                f"**{row['ratio_median_vs_naive']:.2f}** / {row['ratio_p90_vs_naive']:.2f} "
                f"(median vs 4 calls, {row['four_calls_s']:.2f} s: {row['ratio_median_vs_four_calls']:.2f})",
                "median ratio ≤ 1",
                verdict(row["ratio_median_vs_naive"] <= 1.0),
            ]
        )
    print(f"## Issue 13 summary ({calls['date']}, code {calls['code']})\n")
    print_table(["measure", "this run", "target", "verdict"], rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
