"""A real HTTP emulator of GenAuth for tests and the local sandbox.

It serves the management API endpoints mfa-enforcer uses (token, users, departments, MFA status) with
GenAuth's envelope and error conventions, records every request in a journal, injects faults on demand, and
sends webhooks in GenAuth's shapes. Start one with `EmulatorServer(state).start()` or
`python -m genauth_emulator`. The wire formats follow /work/shared/genauth-contract.md.
"""

from genauth_emulator.app import create_emulator_app
from genauth_emulator.faults import Fault, Faults
from genauth_emulator.journal import Entry, Journal
from genauth_emulator.payloads import event_body
from genauth_emulator.sample import seed_sandbox
from genauth_emulator.sender import WebhookSender, encode_form_brackets
from genauth_emulator.server import EmulatorServer
from genauth_emulator.state import EmulatorState, UnknownUserError

__all__ = [
    "EmulatorServer",
    "EmulatorState",
    "Entry",
    "Fault",
    "Faults",
    "Journal",
    "UnknownUserError",
    "WebhookSender",
    "create_emulator_app",
    "encode_form_brackets",
    "event_body",
    "seed_sandbox",
]
