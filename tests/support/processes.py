"""The venv's commands as real subprocesses against the emulator: their environment, a free port, whether
gunicorn is ready, running a command to completion, and stopping a long-running one."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import requests

from tests.support.values import ROOT, WEBHOOK_SECRET

BIN = Path(sys.executable).parent
"""Where the venv's commands are (``mfa-enforcer``, ``gunicorn``)."""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def service_env(emulator: Any, database_url: str, **extra: str) -> dict[str, str]:
    """This process's environment without its GENAUTH_/ENFORCER_ settings, pointed at ``emulator`` and
    ``database_url`` with the suite's secrets and a fast poll; ``extra`` adds or overrides variables."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("GENAUTH_", "ENFORCER_"))}
    env.update(
        GENAUTH_HOST=emulator.url,
        GENAUTH_ACCESS_KEY_ID=emulator.state.access_key_id,
        GENAUTH_ACCESS_KEY_SECRET=emulator.state.access_key_secret,
        GENAUTH_WEBHOOK_SECRET=WEBHOOK_SECRET,
        GENAUTH_USERPOOL_ID=emulator.state.userpool_id,
        DATABASE_URL=database_url,
        POLICY_FILE=str(ROOT / "config" / "policies.yaml"),
        ENFORCER_POLL_INTERVAL="0.05",
        ENFORCER_MIGRATE_ON_START="true",
        LOG_FORMAT="json",
    )
    env.update(extra)
    return env


def run_command(arguments: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run one of the venv's commands from the repository root and capture its output."""
    return subprocess.run(
        [str(BIN / arguments[0]), *arguments[1:]],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def is_ready(url: str) -> bool:
    """Whether the service at ``url`` answers /readyz with 200.

    A slow answer while the workers boot (/readyz commits a write) means "not yet", as a refused connection does.
    """
    try:
        return requests.get(f"{url}/readyz", timeout=5).status_code == 200
    except requests.RequestException:  # refused while starting, or slow on a loaded machine
        return False


def stop(process: subprocess.Popen[Any], sig: int = signal.SIGTERM, timeout: float = 20.0) -> int:
    """Send ``sig`` and return the exit status; a process still running after ``timeout`` is killed."""
    process.send_signal(sig)
    try:
        return process.wait(timeout)
    finally:
        if process.poll() is None:
            process.kill()
