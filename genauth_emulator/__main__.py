"""`python -m genauth_emulator`: run the GenAuth emulator on its own (`make emulator`), seeded with the ACME
sample pool unless `--no-seed`, until Ctrl-C or SIGTERM. Prints the URL, the event WebSocket's URL (on
`--events-port`, by default the port after the HTTP one; `--no-events` for none) and the credentials it
accepts (a management token or AK/SK signatures). Webhooks created through its API receive the pool's changes
unless `--no-auto-deliver`."""

from __future__ import annotations

import argparse
import signal
import threading
from collections.abc import Sequence
from types import FrameType

from genauth_emulator.sample import seed_sandbox
from genauth_emulator.server import EmulatorServer
from genauth_emulator.state import EmulatorState

# Labelled insecure: a fixed local-only secret so `make run` and `make emulator` agree without setup.
DEFAULT_SECRET = "insecure-emulator-secret"  # noqa: S105 - a labelled dev-only value, see above


def parse_arguments(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Read the command line."""
    parser = argparse.ArgumentParser(prog="python -m genauth_emulator", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8081, help="port to listen on (default 8081; 0 = any free)")
    parser.add_argument("--no-seed", action="store_true", help="start with an empty user pool")
    parser.add_argument("--secret", default=DEFAULT_SECRET, help="access key secret to accept")
    parser.add_argument("--userpool-id", default=None, help="24-hex user pool id (default: random)")
    parser.add_argument("--token-lifetime", type=int, default=7200, help="management token expires_in, seconds")
    parser.add_argument("--set-mode", choices=("replace", "merge"), default="replace", help="set-mfa-status mode")
    parser.add_argument(
        "--events-port",
        type=int,
        default=None,
        help="event WebSocket port (default: the HTTP port + 1, so 8082; any free one when --port is 0)",
    )
    parser.add_argument("--no-events", action="store_true", help="run without the event WebSocket")
    parser.add_argument(
        "--no-auto-deliver", action="store_true", help="do not deliver pool changes to the webhooks created"
    )
    parser.add_argument(
        "--delivery-timeout", type=float, default=10.0, help="seconds a webhook receiver has to answer (default 10)"
    )
    parser.add_argument("--quiet", action="store_true", help="do not log each request")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Serve until interrupted; return the exit status."""
    arguments = parse_arguments(argv)
    state = EmulatorState(
        userpool_id=arguments.userpool_id,
        access_key_secret=arguments.secret,
        token_lifetime=arguments.token_lifetime,
        set_mode=arguments.set_mode,
        auto_deliver=not arguments.no_auto_deliver,
    )
    state.delivery_timeout = arguments.delivery_timeout
    users = {} if arguments.no_seed else seed_sandbox(state)
    stopping = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    server = EmulatorServer(
        state,
        arguments.host,
        arguments.port,
        log_requests=not arguments.quiet,
        events_port=None if arguments.no_events else _events_port(arguments),
    )
    try:
        server.start()
    except OSError as error:
        print(f"cannot start the GenAuth emulator: {error}", flush=True)
        return 1
    with server:
        print(f"GenAuth emulator listening on {server.url}", flush=True)
        print(f"  user pool id:      {state.userpool_id}", flush=True)
        print(f"  access key id:     {state.access_key_id}", flush=True)
        print(f"  access key secret: {state.access_key_secret}", flush=True)
        if server.events is not None:
            print(f"  event WebSocket:   {server.events_url}/events/v1/management/sub?code=<event code>", flush=True)
        for username, user_id in users.items():
            print(f"  user {username:<10} {user_id}", flush=True)
        for application in state.applications():
            print(f"  application        {application['appId']} ({application['appName']})", flush=True)
        print(f"  MFA factors:       {', '.join(state.global_mfa_factors())} (pool)", flush=True)
        print(f"  control API:       {server.url}/_emulator/users", flush=True)
        stopping.wait()
    print("GenAuth emulator stopped", flush=True)
    return 0


def _events_port(arguments: argparse.Namespace) -> int:
    if arguments.events_port is not None:
        return int(arguments.events_port)
    return 0 if arguments.port == 0 else int(arguments.port) + 1


if __name__ == "__main__":
    raise SystemExit(main())
