"""A real HTTP emulator of GenAuth for tests and the local sandbox.

It serves the management API endpoints mfa-enforcer uses (users, departments, groups, roles, MFA status, pool
and application MFA settings, webhooks and their delivery log) with GenAuth's envelope and error conventions,
to every official SDK (management tokens or AK/SK-signed requests); records every request in a journal;
injects faults on demand; delivers webhooks in GenAuth's shapes when the pool changes; and publishes events on
a WebSocket. Start one with `EmulatorServer(state).start()` or `python -m genauth_emulator`. The wire formats
it follows are described in docs/genauth.md.
"""

from genauth_emulator.app import create_emulator_app
from genauth_emulator.event_socket import EventSocketServer
from genauth_emulator.faults import Fault, Faults
from genauth_emulator.journal import Entry, Journal
from genauth_emulator.payloads import event_body
from genauth_emulator.sample import seed_sandbox
from genauth_emulator.sender import WebhookSender, encode_form_brackets
from genauth_emulator.server import EmulatorServer
from genauth_emulator.state import EmulatorState, UnknownApplicationError, UnknownUserError

__all__ = [
    "EmulatorServer",
    "EmulatorState",
    "Entry",
    "EventSocketServer",
    "Fault",
    "Faults",
    "Journal",
    "UnknownApplicationError",
    "UnknownUserError",
    "WebhookSender",
    "create_emulator_app",
    "encode_form_brackets",
    "event_body",
    "seed_sandbox",
]
