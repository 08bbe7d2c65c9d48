"""Nothing a new user tries is a trap: every command and every process start, under every fault an operator
meets on day one (GenAuth refusing the keys or unreachable, the database unreachable or named with an
unsupported scheme, a port in use), ends with one clear line naming what to fix and a non-zero exit code,
never a traceback. Each case is a real subprocess; faults are cheap (closed ports, a wrong secret), and the
cases run a few at a time.

The exceptions are GenAuth faults at the start of a long-running process: a web process starts whatever
GenAuth does, and `mfa-enforcer worker` starts when GenAuth is only unreachable (test_genauth_at_start.py)."""

from __future__ import annotations

import shutil
import socket
import subprocess
from concurrent.futures import ThreadPoolExecutor

import pytest

from service.store.engine import create_engine, prepare_database
from tests.support.processes import BIN, free_port, service_env
from tests.support.values import ROOT

POLICY = str(ROOT / "config" / "policies.yaml")
GENAUTH_COMMANDS = [
    ["explain", "fin.alice"],
    ["reconcile", "--quiet"],
    ["reconcile", "--dry-run", "--quiet"],
    ["webhooks", "list"],
    ["webhooks", "subscribe", "--url", "http://127.0.0.1:9/webhooks/genauth"],
    ["webhooks", "test"],
    ["webhooks", "remove"],
    ["policy", "check", "--live"],
]
DATABASE_COMMANDS = [
    ["report"],
    ["dead-letters"],
    ["replay", "--all", "--reason", "trap"],
    ["db", "upgrade"],
    ["db", "status"],
    ["reconcile", "--quiet"],
    ["webhooks", "test"],
    ["worker"],
    ["serve"],
]


@pytest.fixture
def taken_port():
    """A port something else listens on."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield holder.getsockname()[1]


# About 50 subprocesses, four at a time: about 40 s on a quiet machine, which the suite's 120 s limit per test
# does not leave enough room for on a loaded one.
@pytest.mark.timeout(360)
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_every_command_fails_with_one_clear_line_under_every_fault(emulator, database_url, tmp_path, taken_port):
    """GenAuth refusing/unreachable, database unreachable/unsupported, port in use: one line, no traceback."""
    closed = free_port()
    template = create_engine(database_url)
    prepare_database(template)  # every case gets its own copy of a current database (no shared sweep lock)
    template.dispose()
    copies = iter(range(1000))

    def env(**extra):
        copy = tmp_path / f"case-{next(copies)}.db"
        shutil.copyfile(database_url.removeprefix("sqlite:///"), copy)
        base = service_env(
            emulator,
            f"sqlite:///{copy}",
            POLICY_FILE=POLICY,
            PORT=str(free_port()),
            HOST="127.0.0.1",
            ENFORCER_BACKOFF_BASE="0.01",
            LOG_FORMAT="console",
        )
        return {**base, **extra}

    cases = []
    for command in GENAUTH_COMMANDS:
        cases.append(("keys refused", command, env(GENAUTH_ACCESS_KEY_SECRET="a-wrong-secret"), "GENAUTH_ACCESS_KEY"))
        cases.append(("unreachable", command, env(GENAUTH_HOST=f"http://127.0.0.1:{closed}"), "GENAUTH_HOST"))
    # A refused key is a configuration error the worker alone stops for; no retry would fix it.
    cases.append(("keys refused", ["worker"], env(GENAUTH_ACCESS_KEY_SECRET="a-wrong-secret"), "GENAUTH_ACCESS_KEY"))
    # Signed calls (GENAUTH_AUTH=signature) refused for the same wrong secret: the same line and exit, no token.
    for command in (["worker"], ["explain", "fin.alice"]):
        signed = env(GENAUTH_ACCESS_KEY_SECRET="a-wrong-secret", GENAUTH_AUTH="signature")
        cases.append(("signature refused", command, signed, "GENAUTH_ACCESS_KEY"))
    cases.append(("no such GENAUTH_AUTH", ["worker"], env(GENAUTH_AUTH="hmac"), "GENAUTH_AUTH='hmac'"))
    for command in DATABASE_COMMANDS:
        down = f"postgresql://enforcer@127.0.0.1:{closed}/enforcer"
        cases.append(("database down", command, env(DATABASE_URL=down), "DATABASE_URL"))
        bad = env(DATABASE_URL="mysql://enforcer:hunter2@127.0.0.1/enforcer")
        cases.append(("mysql scheme", command, bad, "postgres://"))
    gunicorn = ["gunicorn", "--config", "config/gunicorn.conf.py", "service.app:create_app()"]  # Procfile `web`
    down = env(DATABASE_URL=f"postgresql://enforcer@127.0.0.1:{closed}/enforcer", ENFORCER_RUN_WORKER="false")
    cases += [
        ("database down", gunicorn, down, "DATABASE_URL"),
        ("mysql scheme", gunicorn, env(DATABASE_URL="mysql://enforcer:hunter2@127.0.0.1/x"), "postgres://"),
        ("port in use", ["serve"], env(PORT=str(taken_port)), "set PORT"),
        ("port in use", ["worker"], env(ENFORCER_METRICS_PORT=str(taken_port)), "set ENFORCER_METRICS_PORT"),
        ("port in use", ["sandbox"], env(PORT=str(taken_port)), "set PORT"),
        (
            "port in use",
            ["sandbox"],
            env(ENFORCER_SANDBOX_EMULATOR_PORT=str(taken_port)),
            "set ENFORCER_SANDBOX_EMULATOR_PORT",
        ),
    ]

    def run(case):
        fault, command, environment, named = case
        if command[0] == "sandbox":  # its own folder: the sandbox writes var/ where it runs
            folder = tmp_path / f"sandbox-{environment['PORT']}"
            folder.mkdir()
            (folder / "config").symlink_to(ROOT / "config")
            environment = {**environment, "POLICY_FILE": str(folder / "config" / "policies.yaml")}
        else:
            folder = ROOT
        program = command if command[0] == "gunicorn" else ["mfa-enforcer", *command]
        result = subprocess.run(
            [str(BIN / program[0]), *program[1:]],
            cwd=folder,
            env=environment,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        return fault, command, result, named

    with ThreadPoolExecutor(max_workers=4) as pool:
        outcomes = list(pool.map(run, cases))
    problems = []
    for fault, command, result, named in outcomes:
        output = result.stdout + result.stderr
        errors = [line for line in result.stderr.splitlines() if line.startswith(("Error:", "mfa-enforcer:"))]
        where = f"{' '.join(command)} with {fault}"
        if result.returncode == 0:
            problems.append(f"{where}: exit 0")
        if "Traceback" in output:
            problems.append(f"{where}: a traceback:\n{output}")
        elif len(errors) != 1 or named not in result.stderr:
            problems.append(f"{where}: not one line naming {named!r}:\n{result.stderr}")
        if "hunter2" in output:
            problems.append(f"{where}: shows the database password")
    assert not problems, "\n".join(problems)
