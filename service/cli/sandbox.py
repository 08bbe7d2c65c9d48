"""The sandbox: the whole service against the bundled GenAuth emulator, for a first look and for demos.

It starts only when asked: ``mfa-enforcer sandbox`` (or ``sandbox start``; ``make run`` without
``GENAUTH_ACCESS_KEY_ID`` runs it). It starts the emulator with sample users (Finance, its Payroll
sub-department, Engineering), points the service at it with its own SQLite file ``var/sandbox.db`` (whatever
``DATABASE_URL`` says: the sandbox never touches another database), tells the emulator to deliver webhooks
to the service as GenAuth would, and writes ``var/sandbox.env``: the emulator's credentials, the service's
database, a freshly generated webhook secret and admin token. ``set -a; . var/sandbox.env; set +a`` in
another terminal points every command (explain, reconcile, report, webhooks, replay, dead-letters) and the
admin API at it. Both servers listen on 127.0.0.1 only.

One sandbox runs per folder: it holds ``var/sandbox.lock`` while it runs, and a second start refuses before it
touches any file. ``sandbox deliver USER`` and ``sandbox move USER DEPARTMENT`` make the emulator send a
delivery and print the decision the worker recorded.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import secrets
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import Any

import click
import requests

from service.cli.common import check_port_free, port_error
from service.enforcement.explaining import mask_phone
from service.settings import SandboxSettings, load_sandbox_settings, load_settings
from service.store.decisions import decisions_for_user
from service.store.engine import create_engine, disposing

FOLDER = Path("var")
INFO_FILE = FOLDER / "sandbox.json"
ENV_FILE = FOLDER / "sandbox.env"
LOCK_FILE = FOLDER / "sandbox.lock"
DATABASE_FILE = FOLDER / "sandbox.db"
LOOPBACK = "127.0.0.1"
WAIT_SECONDS = 20.0
COMMANDS = "explain, reconcile, report, webhooks, replay, dead-letters"
USER_EVENTS = ("login", "register", "user:created", "user:updated")


@click.group(invoke_without_command=True)
@click.pass_context
def sandbox(ctx: click.Context) -> None:
    """Run the sandbox (the default), or drive a running one with `deliver` and `move`."""
    if ctx.invoked_subcommand is None:
        run_sandbox()


@sandbox.command()
def start() -> None:
    """Start the sandbox: the emulator with sample users and the service, on 127.0.0.1; serve until Ctrl-C."""
    run_sandbox()


def run_sandbox() -> None:
    """Start the emulator and the service; serve until Ctrl-C or SIGTERM."""
    chosen = load_sandbox_settings()
    with _sandbox_lock():
        _serve(chosen)


@contextlib.contextmanager
def _sandbox_lock() -> Iterator[None]:
    """Hold ``var/sandbox.lock`` while the sandbox runs; refuse, touching nothing, if another sandbox holds it."""
    FOLDER.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as error:
            holder = os.pread(descriptor, 32, 0).decode(errors="replace").strip() or "?"
            raise click.ClickException(
                f"a sandbox is already running in this folder (process {holder}); use that one "
                f"(`set -a; . {ENV_FILE}; set +a`), or stop it first"
            ) from error
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, f"{os.getpid()}\n".encode(), 0)
        try:
            yield
        finally:
            for done in (INFO_FILE, ENV_FILE):
                done.unlink(missing_ok=True)
            os.ftruncate(descriptor, 0)
    finally:
        os.close(descriptor)  # releases the lock


def _serve(chosen: SandboxSettings) -> None:
    try:  # its own distribution (genauth_emulator/pyproject.toml): a development install has it, the image not
        from genauth_emulator.sample import seed_sandbox
        from genauth_emulator.server import EmulatorServer
        from genauth_emulator.state import EmulatorState
    except ImportError as error:
        raise click.ClickException(
            "the sandbox needs the GenAuth emulator, which is not installed here: run `make install` "
            "(or `pip install -e ./genauth_emulator`) in a clone of the repository"
        ) from error

    check_port_free(LOOPBACK, chosen.port, "PORT")
    check_port_free(LOOPBACK, chosen.emulator_port, "ENFORCER_SANDBOX_EMULATOR_PORT")
    state = EmulatorState()
    seed_sandbox(state)
    emulator = EmulatorServer(state, host=LOOPBACK, port=chosen.emulator_port)
    try:
        emulator.start()
    except OSError as error:
        raise port_error(error, LOOPBACK, chosen.emulator_port, "ENFORCER_SANDBOX_EMULATOR_PORT") from error
    try:
        _serve_with(chosen, emulator)
    finally:
        emulator.stop()


def _serve_with(chosen: SandboxSettings, emulator: Any) -> None:
    # Imported here: every other command starts without Flask (a fifth of a command's start-up CPU).
    from werkzeug.serving import make_server

    from service.app import create_app, stop_worker

    database = DATABASE_FILE.resolve()
    for stale in (database, *(database.with_name(database.name + suffix) for suffix in ("-wal", "-shm", ".lock"))):
        stale.unlink(missing_ok=True)
    state = emulator.state
    published = {
        "GENAUTH_HOST": emulator.url,
        "GENAUTH_ACCESS_KEY_ID": state.access_key_id,
        "GENAUTH_ACCESS_KEY_SECRET": state.access_key_secret,
        "GENAUTH_USERPOOL_ID": state.userpool_id,
        "GENAUTH_WEBHOOK_SECRET": secrets.token_hex(16),
        "ENFORCER_ADMIN_TOKEN": secrets.token_hex(16),
        "DATABASE_URL": f"sqlite:///{database}",
        "POLICY_FILE": str(chosen.policy_file.resolve()),
    }
    environ = {
        **dict(chosen.passed_on),
        **published,
        "PORT": str(chosen.port),
        "HOST": LOOPBACK,
        "ENFORCER_RUN_WORKER": "true",
        "ENFORCER_MIGRATE_ON_START": "true",
        "ENFORCER_POLL_INTERVAL": "0.2",
    }
    settings = load_settings(environ)
    app = create_app(settings)
    service_url = f"http://{LOOPBACK}:{chosen.port}"
    try:
        server = make_server(LOOPBACK, chosen.port, app, threaded=True)
    except (OSError, SystemExit) as error:  # werkzeug exits when it cannot bind
        stop_worker(app)
        raise port_error(OSError(errno.EADDRINUSE, "in use"), LOOPBACK, chosen.port, "PORT") from error
    secret = published["GENAUTH_WEBHOOK_SECRET"]
    requests.post(
        f"{emulator.url}/_emulator/webhook-target",
        json={"url": f"{service_url}/webhooks/genauth", "secret": secret},
        timeout=5,
    ).raise_for_status()
    _write_env(published, service_url)
    urls = {"service_url": service_url, "emulator_url": emulator.url, "database_url": settings.database_url}
    INFO_FILE.write_text(json.dumps({**urls, "userpool_id": state.userpool_id, "pid": os.getpid()}, indent=2))

    def _stop(_signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _stop)
    click.echo(
        f"\nSandbox ready: service {service_url}, GenAuth emulator {emulator.url} (both on 127.0.0.1 only), "
        f"database {DATABASE_FILE}.\n"
        "Try it in another terminal:\n"
        "  .venv/bin/mfa-enforcer sandbox deliver fin.alice    # a login delivery; prints what was enforced\n"
        f"  set -a; . {ENV_FILE}; set +a                   # then every command works against the sandbox,\n"
        f"  .venv/bin/mfa-enforcer report --users              # {COMMANDS}, and the admin API:\n"
        f'  curl -s -H "Authorization: Bearer $ENFORCER_ADMIN_TOKEN" {service_url}/api/report\n'
        "Stop it with Ctrl-C.\n"
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.shutdown()
        stop_worker(app)


def _write_env(published: dict[str, str], service_url: str) -> None:
    """``var/sandbox.env``: readable by its owner only (it holds the sandbox's secrets, which are local)."""
    lines = [
        "# The running sandbox's settings: `set -a; . var/sandbox.env; set +a` points mfa-enforcer commands at it.",
        f"# Service: {service_url}. Written by `mfa-enforcer sandbox`, removed when it stops.",
        *(f"{key}={value}" for key, value in published.items()),
    ]
    descriptor = os.open(ENV_FILE, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write("\n".join(lines) + "\n")


def _info() -> dict[str, Any]:
    try:
        info = json.loads(INFO_FILE.read_text())
    except (OSError, ValueError) as error:
        raise click.ClickException(
            "no sandbox is running in this folder: start one with `.venv/bin/mfa-enforcer sandbox` (or `make run`)"
        ) from error
    assert isinstance(info, dict)
    return info


def _find_user(emulator_url: str, username: str) -> dict[str, Any]:
    try:
        users = requests.get(f"{emulator_url}/_emulator/users", timeout=5).json()["users"]
    except requests.RequestException as error:
        raise click.ClickException(
            f"the sandbox emulator at {emulator_url} does not answer: is the sandbox still running?"
        ) from error
    for user in users:
        if username in (user.get("username"), user.get("userId"), user.get("email")):
            return dict(user)
    known = ", ".join(sorted(str(user.get("username")) for user in users))
    raise click.ClickException(f"no sandbox user {username!r}; the users are: {known}")


@sandbox.command()
@click.argument("username")
@click.option("--event", default="login", show_default=True, type=click.Choice(USER_EVENTS))
def deliver(username: str, event: str) -> None:
    """Make the emulator deliver EVENT for USERNAME, then print the decision."""
    _deliver_and_report(username, {"event": event})


@sandbox.command()
@click.argument("username")
@click.argument("department")
@click.option("--out", is_flag=True, help="Remove the user from DEPARTMENT instead.")
def move(username: str, department: str, out: bool) -> None:
    """Add USERNAME to DEPARTMENT (a code, e.g. finance); the emulator delivers organization:member-*."""
    event = "organization:member-removed" if out else "organization:member-added"
    _deliver_and_report(username, {"event": event, "departmentCode": department})


def _deliver_and_report(username: str, body: dict[str, Any]) -> None:
    """Make the running sandbox's emulator deliver ``body`` about the user, then print the decision."""
    info = _info()
    user = _find_user(info["emulator_url"], username)
    since = time.time()
    _trigger(info, {**body, "userId": user["userId"]})
    _report(info, user, since=since)


def _trigger(info: dict[str, Any], body: dict[str, Any]) -> None:
    try:
        response = requests.post(f"{info['emulator_url']}/_emulator/deliver", json=body, timeout=15)
    except requests.RequestException as error:
        raise click.ClickException("the sandbox does not answer: is it still running?") from error
    if response.status_code != 200:
        raise click.ClickException(f"the emulator could not deliver: {response.text[:300]}")
    answer = response.json()
    status, reply = answer.get("status"), answer.get("body")
    if isinstance(reply, dict) and status == 200:
        said = f"event #{reply.get('eventId')}, {reply.get('queued', 0)} user(s) queued for the worker"
    elif isinstance(reply, dict):
        said = str(reply.get("message") or reply.get("code") or "no message")
    else:
        said = str(reply)[:200]
    click.echo(f"delivered {body['event']}: the service answered {status} ({said})")


def _report(info: dict[str, Any], user: dict[str, Any], *, since: float) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    with disposing(create_engine(info["database_url"])) as engine:
        while time.monotonic() < deadline:
            fresh = [row for row in decisions_for_user(engine, user["userId"], limit=5) if row["decided_at"] >= since]
            if fresh:
                row = fresh[0]
                click.echo(f"decision for {user.get('username')}: {row['action']} — {row['reason']}")
                if row["rules"]:
                    click.echo(f"  factors before: {_factors(row['before'])}; after: {_factors(row['after'])}")
                else:
                    click.echo("  no rule matches: the MFA data was neither read nor changed")
                mfa = requests.get(f"{info['emulator_url']}/_emulator/users/{user['userId']}/mfa", timeout=5).json()
                click.echo(f"  GenAuth now stores: {describe_mfa(mfa)}")
                return
            time.sleep(0.2)  # polling another process's database; there is nothing to wait on
    raise click.ClickException("no decision within 20 s: is the sandbox's worker running? see its log")


def _factors(factors: Any) -> str:
    if factors is None:
        return "not read"
    return ", ".join(str(factor) for factor in factors) if factors else "none"


def describe_mfa(mfa: dict[str, Any]) -> str:
    """The user's stored MFA data in words: each factor and whether it is on, and the MFA contacts (masked)."""
    entries = mfa.get("applicationMfa")
    entries = entries if isinstance(entries, list) else []
    factors = [
        f"{entry.get('mfaPolicy')} {'on' if entry.get('status') == 1 else 'off'}"
        for entry in entries
        if isinstance(entry, dict)
    ]
    parts = [", ".join(factors) or "no factors"]
    if isinstance(mfa.get("mfaPhone"), str) and mfa["mfaPhone"]:
        parts.append(f"MFA phone {mask_phone(mfa['mfaPhone'])}")
    if isinstance(mfa.get("mfaEmail"), str) and mfa["mfaEmail"]:
        parts.append(f"MFA email {mfa['mfaEmail']}")
    return "; ".join(parts)
