"""Running the brakes end to end: several processes' worker threads against the emulator, and the operator's
commands as subprocesses (tests/e2e/test_brakes.py, tests/e2e/test_revert.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from service.policy import Policy
from service.policy.loading import load_policy
from service.services import Services
from service.settings import Settings, parse_change_budget
from service.store.engine import create_engine, prepare_database
from service.worker.loop import Worker, start_in_thread

BIN = Path(sys.executable).parent
SET_MFA = "/api/v3/set-mfa-status"


def run_cli(env: dict[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``mfa-enforcer ARGS`` as an operator runs it."""
    return subprocess.run(
        [str(BIN / "mfa-enforcer"), *args], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def run_at_once(env: dict[str, str], *args: str, times: int = 2, timeout: float = 120) -> list[dict[str, Any]]:
    """``mfa-enforcer ARGS --json`` started ``times`` times at once (separate processes); each one's JSON answer."""
    command = [str(BIN / "mfa-enforcer"), *args, "--json"]
    started = [
        subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(times)
    ]
    answers = [process.communicate(timeout=timeout) for process in started]
    assert [process.returncode for process in started] == [0] * times, answers
    return [json.loads(out) for out, _ in answers]


def invoke(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """``mfa-enforcer ARGS`` run in this process with ``env`` as its environment (the same code an operator runs,
    without a process start each time: on a loaded machine that start costs seconds)."""
    from service.cli import main

    result = CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)
    return subprocess.CompletedProcess(list(args), result.exit_code, result.stdout, result.stderr)


def held_json(env: dict[str, str]) -> dict[str, Any]:
    result = invoke(env, "holds", "--json")
    assert result.returncode == 0, result.stderr
    answer: dict[str, Any] = json.loads(result.stdout)
    return answer


@contextmanager
def workers(
    settings: Settings,
    policy_file: Path,
    *,
    processes: int = 2,
    threads: int = 2,
    budget: str = "5/hour",
    policy: Callable[[], Policy] | None = None,
) -> Iterator[list[Worker]]:
    """``processes`` sets of services (each its own brakes and engine), ``threads`` workers each, all running;
    ``policy`` (default: the file, read once) is what every worker enforces."""
    loaded = load_policy(policy_file)
    current = policy or (lambda: loaded)
    braked = replace(
        settings,
        genauth=replace(settings.genauth, rate_limit=0),
        worker=replace(settings.worker, threads=threads, change_budget=parse_change_budget(budget)),
    )
    running: list[Worker] = []
    with ExitStack() as stack:
        for _ in range(processes):
            engine = create_engine(settings.database_url)
            prepare_database(engine)
            stack.callback(engine.dispose)
            for worker in Services(braked, engine).workers(current):
                thread = start_in_thread(worker)
                stack.callback(worker.reconciler.client.close)
                stack.callback(thread.join, 30)
                stack.callback(worker.stop)
                running.append(worker)
        yield running


def add_finance_people(state: Any, count: int, *, prefix: str = "f") -> list[str]:
    """``count`` Finance users with a phone and no MFA; their ids."""
    return [
        state.add_user(
            username=f"{prefix}{i}", email=f"{prefix}{i}@acme.example", phone=f"138{i:08d}", departments=["finance"]
        )["userId"]
        for i in range(count)
    ]


def written_users(emulator: Any) -> Counter[str]:
    """How many times each user was written (``set-mfa-status``)."""
    return Counter(entry.body["userId"] for entry in emulator.journal.entries(SET_MFA))
