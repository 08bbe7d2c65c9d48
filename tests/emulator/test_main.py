"""`python -m genauth_emulator` runs a seeded emulator, prints where it listens and what it accepts, and
exits cleanly on SIGTERM."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import requests

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def test_module_serves_a_seeded_pool_until_sigterm() -> None:
    """The printed URL answers with the seeded users and the printed credentials get a token; SIGTERM stops it."""
    command = [sys.executable, "-m", "genauth_emulator", "--port", "0", "--secret", "cli-secret", "--quiet"]
    with subprocess.Popen(command, cwd=PROJECT_ROOT, stdout=subprocess.PIPE, text=True) as process:
        assert process.stdout is not None
        try:
            first = process.stdout.readline()
            assert first.startswith("GenAuth emulator listening on http://127.0.0.1:"), first
            url = first.rsplit(" ", 1)[1].strip()
            pool_id = process.stdout.readline().split()[-1]
            with requests.Session() as session:
                users = session.get(f"{url}/_emulator/users", timeout=5).json()["users"]
                token = session.post(
                    f"{url}/api/v3/get-management-token",
                    json={"accessKeyId": pool_id, "accessKeySecret": "cli-secret"},
                    timeout=5,
                ).json()
            assert len(users) == 6
            assert token["statusCode"] == 200
        finally:
            process.send_signal(signal.SIGTERM)
            remaining, _ = process.communicate(timeout=10)
    assert process.returncode == 0
    assert "stopped" in remaining
