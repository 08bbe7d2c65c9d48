"""The sandbox: the whole service against the bundled GenAuth emulator, for a first look and for demos.

``mfa-enforcer serve`` with no ``GENAUTH_ACCESS_KEY_ID`` calls ``run_sandbox``: it starts the emulator with
sample users (Finance, its Payroll sub-department, Engineering) on loopback, points the service at it with a
fresh SQLite file, tells the emulator to deliver webhooks to the service (as GenAuth would), and prints how to
try it. ``mfa-enforcer sandbox deliver USER`` and ``sandbox move USER DEPARTMENT`` then make the emulator send
a delivery and print the decision the worker recorded.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path
from types import FrameType
from typing import Any

import click
import requests
from werkzeug.serving import make_server

from service.app import create_app, stop_worker
from service.errors import ConfigurationError
from service.settings import load_settings
from service.store.decisions import decisions_for_user
from service.store.engine import create_engine

INFO_FILE = Path("var/sandbox.json")
DATABASE_FILE = Path("var/sandbox.db")
DEFAULT_SECRET = "sandbox-webhook-secret"  # noqa: S105 - the sandbox's published, loopback-only secret
WAIT_SECONDS = 20.0


def run_sandbox() -> None:
    """Start the emulator and the service; serve until Ctrl-C or SIGTERM."""
    from genauth_emulator.sample import seed_sandbox
    from genauth_emulator.server import EmulatorServer
    from genauth_emulator.state import EmulatorState

    port = int(os.environ.get("PORT", "8000") or 8000)
    emulator_port = int(os.environ.get("ENFORCER_SANDBOX_EMULATOR_PORT", "8081") or 8081)
    secret = os.environ.get("GENAUTH_WEBHOOK_SECRET", "").split(",")[0].strip() or DEFAULT_SECRET
    state = EmulatorState()
    seed_sandbox(state)
    emulator = EmulatorServer(state, port=emulator_port)
    emulator.start()
    for stale in (DATABASE_FILE, DATABASE_FILE.with_suffix(".db-wal"), DATABASE_FILE.with_suffix(".db-shm")):
        stale.unlink(missing_ok=True)
    environ = {
        **os.environ,
        "GENAUTH_HOST": emulator.url,
        "GENAUTH_ACCESS_KEY_ID": state.access_key_id,
        "GENAUTH_ACCESS_KEY_SECRET": state.access_key_secret,
        "GENAUTH_WEBHOOK_SECRET": secret,
        "GENAUTH_USERPOOL_ID": state.userpool_id,
        "DATABASE_URL": os.environ.get("DATABASE_URL", "").strip() or f"sqlite:///{DATABASE_FILE}",
        "ENFORCER_RUN_WORKER": "true",
        "ENFORCER_MIGRATE_ON_START": "true",
        "ENFORCER_POLL_INTERVAL": os.environ.get("ENFORCER_POLL_INTERVAL", "0.2"),
    }
    try:
        settings = load_settings(environ)
    except ConfigurationError as error:
        emulator.stop()
        raise click.ClickException(error.message) from error
    app = create_app(settings)
    service_url = f"http://127.0.0.1:{port}"
    server = make_server("127.0.0.1", port, app, threaded=True)
    requests.post(
        f"{emulator.url}/_emulator/webhook-target",
        json={"url": f"{service_url}/webhooks/genauth", "secret": secret},
        timeout=5,
    ).raise_for_status()
    INFO_FILE.parent.mkdir(parents=True, exist_ok=True)
    INFO_FILE.write_text(
        json.dumps(
            {
                "service_url": service_url,
                "emulator_url": emulator.url,
                "database_url": settings.database_url,
                "userpool_id": state.userpool_id,
            },
            indent=2,
        )
    )

    def _stop(_signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _stop)
    click.echo(
        f"\nSandbox ready: service {service_url}, GenAuth emulator {emulator.url}, webhook secret {secret!r}.\n"
        "Try it (in another terminal):  .venv/bin/mfa-enforcer sandbox deliver fin.alice"
        "   — sends a login delivery and prints what was enforced.\n"
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.shutdown()
        stop_worker(app)
        emulator.stop()


def _info() -> dict[str, Any]:
    try:
        info = json.loads(INFO_FILE.read_text())
    except (OSError, ValueError) as error:
        raise click.ClickException("no sandbox is running here: start one with `make run`") from error
    assert isinstance(info, dict)
    return info


def _find_user(emulator_url: str, username: str) -> dict[str, Any]:
    try:
        users = requests.get(f"{emulator_url}/_emulator/users", timeout=5).json()["users"]
    except requests.RequestException as error:
        raise click.ClickException(
            f"the sandbox emulator at {emulator_url} does not answer: is `make run` on?"
        ) from error
    for user in users:
        if username in (user.get("username"), user.get("userId"), user.get("email")):
            return dict(user)
    known = ", ".join(sorted(str(user.get("username")) for user in users))
    raise click.ClickException(f"no sandbox user {username!r}; the users are: {known}")


@click.group()
def sandbox() -> None:
    """Drive the sandbox started by `make run`."""


@sandbox.command()
@click.argument("username")
@click.option(
    "--event",
    default="login",
    show_default=True,
    type=click.Choice(["login", "register", "user:created", "user:updated"]),
)
def deliver(username: str, event: str) -> None:
    """Make the emulator deliver EVENT for USERNAME, then print the decision."""
    info = _info()
    user = _find_user(info["emulator_url"], username)
    _trigger(info, {"event": event, "userId": user["userId"]})
    _report(info, user, since=time.time() - 1)


@sandbox.command()
@click.argument("username")
@click.argument("department")
@click.option("--out", is_flag=True, help="Remove the user from DEPARTMENT instead.")
def move(username: str, department: str, out: bool) -> None:
    """Add USERNAME to DEPARTMENT (a code, e.g. finance); the emulator delivers organization:member-*."""
    info = _info()
    user = _find_user(info["emulator_url"], username)
    event = "organization:member-removed" if out else "organization:member-added"
    _trigger(info, {"event": event, "userId": user["userId"], "departmentCode": department})
    _report(info, user, since=time.time() - 1)


def _trigger(info: dict[str, Any], body: dict[str, Any]) -> None:
    response = requests.post(f"{info['emulator_url']}/_emulator/deliver", json=body, timeout=15)
    if response.status_code != 200:
        raise click.ClickException(f"the emulator could not deliver: {response.text[:300]}")
    answer = response.json()
    click.echo(f"delivered {body['event']} → the service answered {answer.get('status')} {answer.get('body')}")


def _report(info: dict[str, Any], user: dict[str, Any], *, since: float) -> None:
    engine = create_engine(info["database_url"])
    deadline = time.monotonic() + WAIT_SECONDS
    try:
        while time.monotonic() < deadline:
            fresh = [row for row in decisions_for_user(engine, user["userId"], limit=5) if row["decided_at"] >= since]
            if fresh:
                row = fresh[0]
                click.echo(f"decision for {user.get('username')}: {row['action']} — {row['reason']}")
                click.echo(f"  factors before {row['before'] or '[]'} → after {row['after'] or '[]'}")
                mfa = requests.get(f"{info['emulator_url']}/_emulator/users/{user['userId']}/mfa", timeout=5).json()
                shown = {key: mfa.get(key) for key in ("applicationMfa", "mfaPhone", "mfaEmail")}
                click.echo(f"  GenAuth now stores: {json.dumps(shown, ensure_ascii=False)}")
                return
            time.sleep(0.2)  # polling another process's database; there is nothing to wait on
    finally:
        engine.dispose()
    raise click.ClickException("no decision within 20 s: is the sandbox's worker running? see its log")
