"""Fixtures for the emulator's own tests: a seeded pool on a controllable clock, the emulator served on
loopback, a raw API client, an AK/SK request signer and a loopback webhook receiver (tests/support/emulator.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from genauth_emulator import EmulatorServer, EmulatorState, seed_sandbox
from tests.support.emulator import Api, Receiver, Signer, receiving
from tests.support.factories import FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(1_760_000_000.0)


@pytest.fixture
def state(clock: FakeClock) -> EmulatorState:
    return EmulatorState(access_key_secret="test-secret", clock=clock)


@pytest.fixture
def ids(state: EmulatorState) -> dict[str, str]:
    return seed_sandbox(state)


@pytest.fixture
def server(state: EmulatorState, ids: dict[str, str]) -> Iterator[EmulatorServer]:
    with EmulatorServer(state) as running:
        yield running


@pytest.fixture
def api(server: EmulatorServer) -> Iterator[Api]:
    client = Api(server)
    yield client
    client.session.close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with receiving() as recorded:
        yield recorded


@pytest.fixture
def signer(server: EmulatorServer) -> Iterator[Signer]:
    client = Signer(server)
    yield client
    client.session.close()
