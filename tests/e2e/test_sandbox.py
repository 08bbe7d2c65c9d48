"""The sandbox starts only when asked, writes only its own files, serves every command through
``var/sandbox.env``, listens on loopback only, and a second start never touches a running one. And ``serve``
is always production. Everything runs as real subprocesses."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import requests

from tests.support.processes import BIN, free_port, service_env, stop
from tests.support.values import ROOT
from tests.support.waiting import wait_until


def clean_env(**extra):
    """The environment of a new user's shell: no GenAuth credentials, no service settings."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("GENAUTH_", "ENFORCER_")) and key not in ("DATABASE_URL", "POLICY_FILE", "PORT")
    }
    env.update(extra)
    return env


def sourced(env_file: Path, base: dict[str, str]) -> dict[str, str]:
    """What `set -a; . var/sandbox.env; set +a` gives a shell."""
    env = dict(base)
    for line in env_file.read_text().splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            env[key] = value
    return env


def run(folder, env, *args, timeout=90):
    return subprocess.run(
        [str(BIN / "mfa-enforcer"), *args], cwd=folder, env=env, capture_output=True, text=True, timeout=timeout
    )


def listening_addresses(port: int) -> set[str]:
    """The local addresses (hex, as /proc/net/tcp shows them) that listen on ``port``."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not Path(table).exists():
            continue
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            address, state = fields[1], fields[3]
            if state == "0A" and int(address.rsplit(":", 1)[1], 16) == port:
                found.add(address.rsplit(":", 1)[0])
    return found


LOOPBACK = "0100007F"  # 127.0.0.1 in /proc/net/tcp


def test_serve_without_credentials_is_production_and_never_starts_the_sandbox(tmp_path):
    """A web-only `serve` with a production DATABASE_URL and no GenAuth key stops naming the missing webhook
    secret, and creates neither that database nor var/sandbox.db."""
    production = tmp_path / "production.db"
    env = clean_env(DATABASE_URL=f"sqlite:///{production}", ENFORCER_RUN_WORKER="false", PORT=str(free_port()))
    process = subprocess.Popen(
        [str(BIN / "mfa-enforcer"), "serve"], cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        _, stderr = process.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        raise AssertionError("serve kept running without a webhook secret (it started a sandbox?)") from None
    assert process.returncode == 1
    assert b"GENAUTH_WEBHOOK_SECRET" in stderr and b"Traceback" not in stderr
    assert not production.exists() and not (tmp_path / "var" / "sandbox.db").exists()


def test_the_sandbox_serves_every_command_and_a_second_start_leaves_it_alone(tmp_path):
    """`mfa-enforcer sandbox` writes var/sandbox.env; with it sourced, explain, reconcile (--dry-run, --wait),
    report, webhooks, replay, dead-letters and the admin API work; a second start refuses and touches nothing;
    it listens on 127.0.0.1 only and never uses the DATABASE_URL of the shell."""
    port, emulator_port = free_port(), free_port()
    elsewhere = tmp_path / "production.db"
    env = clean_env(
        PORT=str(port),
        ENFORCER_SANDBOX_EMULATOR_PORT=str(emulator_port),
        POLICY_FILE=str(ROOT / "config" / "policies.yaml"),
        DATABASE_URL=f"sqlite:///{elsewhere}",
    )
    log = (tmp_path / "sandbox.log").open("w")
    process = subprocess.Popen([str(BIN / "mfa-enforcer"), "sandbox"], cwd=tmp_path, env=env, stdout=log, stderr=log)
    env_file, database = tmp_path / "var" / "sandbox.env", tmp_path / "var" / "sandbox.db"
    try:
        wait_until(lambda: "Sandbox ready" in (tmp_path / "sandbox.log").read_text(), what="the banner", timeout=60)
        banner = (tmp_path / "sandbox.log").read_text()
        assert "set -a; . var/sandbox.env; set +a" in banner
        assert "explain, reconcile, report, webhooks, replay, dead-letters" in banner and "/api/report" in banner
        assert oct(env_file.stat().st_mode & 0o777) == "0o600"
        assert json.loads((tmp_path / "var" / "sandbox.json").read_text())["pid"] == process.pid
        assert listening_addresses(port) == {LOOPBACK} and listening_addresses(emulator_port) == {LOOPBACK}

        before = (database.stat().st_ino, env_file.read_text(), env_file.stat().st_mtime_ns)
        second = run(
            tmp_path, clean_env(PORT=str(free_port()), ENFORCER_SANDBOX_EMULATOR_PORT=str(free_port())), "sandbox"
        )
        assert second.returncode == 1 and "already running" in second.stderr, second.stderr
        assert (database.stat().st_ino, env_file.read_text(), env_file.stat().st_mtime_ns) == before

        shell = sourced(env_file, clean_env())
        assert {"GENAUTH_HOST", "GENAUTH_ACCESS_KEY_ID", "DATABASE_URL", "ENFORCER_ADMIN_TOKEN"} <= set(shell)
        assert len(shell["GENAUTH_WEBHOOK_SECRET"]) >= 16

        delivered = run(tmp_path, shell, "sandbox", "deliver", "fin.alice")
        assert delivered.returncode == 0, delivered.stderr
        assert "decision for fin.alice: enforced" in delivered.stdout and "SMS on" in delivered.stdout
        assert not any(mark in delivered.stdout for mark in ("{", "['", "('")), delivered.stdout

        service = f"http://127.0.0.1:{port}"
        commands = [
            ["explain", "fin.carol"],
            ["report", "--users"],
            ["reconcile", "--dry-run", "--quiet"],
            ["reconcile", "--wait", "--quiet"],
            ["replay", "--user", "fin.alice", "--reason", "sandbox check"],
            ["dead-letters"],
            ["webhooks", "subscribe", "--url", f"{service}/webhooks/genauth"],
            ["webhooks", "list"],
            ["webhooks", "test"],
            ["policy", "check", "--live"],
        ]
        for command in commands:
            result = run(tmp_path, shell, *command)
            assert result.returncode == 0, f"{command}: {result.stdout}{result.stderr}"
            assert "Traceback" not in result.stderr
        assert "fin.alice" in run(tmp_path, shell, "report", "--users").stdout
        token = shell["ENFORCER_ADMIN_TOKEN"]
        report = requests.get(f"{service}/api/report", headers={"Authorization": f"Bearer {token}"}, timeout=5)
        assert report.status_code == 200 and report.json()["rules"]["finance-sms"]["enforced"] >= 1
        assert not elsewhere.exists(), "the sandbox used the shell's DATABASE_URL"
    finally:
        assert stop(process) == 0
        log.close()
    assert not env_file.exists() and database.exists()


def test_make_run_starts_the_sandbox_only_without_credentials():
    """`make run` without GENAUTH_ACCESS_KEY_ID runs the sandbox (it reads the sandbox's port variable); with it,
    `serve` (which asks for the production secrets). Bad values stop both before anything is written."""
    sandbox = subprocess.run(
        ["make", "--no-print-directory", "run"],
        cwd=ROOT,
        env=clean_env(ENFORCER_SANDBOX_EMULATOR_PORT="notaport"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert sandbox.returncode != 0 and "ENFORCER_SANDBOX_EMULATOR_PORT='notaport'" in sandbox.stderr, sandbox.stderr
    production = subprocess.run(
        ["make", "--no-print-directory", "run"],
        cwd=ROOT,
        env=clean_env(GENAUTH_ACCESS_KEY_ID="pool-id"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert production.returncode != 0 and "GENAUTH_WEBHOOK_SECRET" in production.stderr, production.stderr


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_worker_metrics_server_binds_the_host_setting(emulator, database_url, tmp_path):
    """`mfa-enforcer worker` serves /metrics on HOST:ENFORCER_METRICS_PORT, like the web server on HOST:PORT."""
    port = free_port()
    env = service_env(emulator, database_url, HOST="127.0.0.1", ENFORCER_METRICS_PORT=str(port))
    process = subprocess.Popen(
        [str(BIN / "mfa-enforcer"), "worker"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_until(lambda: listening_addresses(port), what="the metrics server", timeout=60)
        assert listening_addresses(port) == {LOOPBACK}
        assert "mfa_enforcer_" in requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    finally:
        assert stop(process) == 0


def test_without_the_emulator_package_the_sandbox_says_how_to_install_it(tmp_path):
    """Where the emulator distribution is not installed (the production image), `sandbox` ends with one line
    naming `make install`, not an ImportError traceback. The package is made unimportable for this process."""
    code = (
        "import sys; sys.modules['genauth_emulator'] = None; "
        "from service.cli import main; main(['sandbox'], prog_name='mfa-enforcer')"
    )
    result = subprocess.run(
        [str(BIN / "python"), "-c", code],
        cwd=tmp_path,
        env=clean_env(PORT=str(free_port()), ENFORCER_SANDBOX_EMULATOR_PORT=str(free_port())),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert [line for line in result.stderr.splitlines() if line.startswith("Error:")] == [
        "Error: the sandbox needs the GenAuth emulator, which is not installed here: run `make install` "
        "(or `pip install -e ./genauth_emulator`) in a clone of the repository"
    ]
    assert not (tmp_path / "var" / "sandbox.env").exists()
