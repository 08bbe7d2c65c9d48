"""Against the emulator's injected 429: the process's GenAuth rate halves (the metric and the spacing of calls
in the journal show it), then recovers additively up to GENAUTH_RATE_LIMIT."""

from __future__ import annotations

import itertools
import statistics

import pytest

from service import metrics
from service.genauth import users
from service.genauth.client import GenAuthClient
from service.genauth.errors import GenAuthRateLimitedError
from service.genauth.throttling import RateLimiter
from service.settings import GenAuthSettings
from tests.support.metrics import sample
from tests.support.waiting import wait_until

GET_USER = "/api/v3/get-user"
LIMIT = 5.0
"""Calls per second: 0.2 s apart at full rate, 0.4 s once halved."""


def current_rate() -> float:
    return sample(metrics.render()[0].decode(), "mfa_enforcer_genauth_rate")


def gaps(times: list[float]) -> list[float]:
    return [later - earlier for earlier, later in itertools.pairwise(times)]


@pytest.mark.parametrize("kind", ["status_429", "http_429"])
def test_a_429_halves_the_rate_which_then_recovers(emulator, kind):
    settings = GenAuthSettings(
        host=emulator.url,
        access_key_id=emulator.state.access_key_id,
        access_key_secret=emulator.state.access_key_secret,
        connect_timeout=2.0,
        read_timeout=2.0,
    )
    # Two steps of a quarter of the limit, one every 3 s: halved for 3 s, full again after 6. The halved window
    # is long so that on a loaded machine the two calls after the cut (0.4 s apart) still fall inside it; at
    # 1 s a slow call pushed the second one past the first recovery step and its gap came out short.
    limiter = RateLimiter(LIMIT, 1, recovery_interval=3.0, recovery_step=0.25)
    client = GenAuthClient(settings, limiter=limiter)
    alice = emulator.users["fin.alice"]
    try:
        for _ in range(4):
            users.get_user(client, alice)
        assert current_rate() == LIMIT
        emulator.faults.add(kind, path=GET_USER, times=1)
        with pytest.raises(GenAuthRateLimitedError):
            users.get_user(client, alice)
        assert limiter.rate == LIMIT / 2 and current_rate() == LIMIT / 2
        for _ in range(2):
            users.get_user(client, alice)
        times = [entry.time for entry in emulator.journal.entries(GET_USER)]
        before, after = gaps(times[:5]), gaps(times[4:])
        assert statistics.median(before) < 0.3, before  # 0.2 s apart at 5/s
        assert min(after) > 0.38, after  # 0.4 s apart at 2.5/s: the tokens in hand were dropped too

        wait_until(lambda: limiter.rate == LIMIT, timeout=20, what="the rate to recover")
        users.get_user(client, alice)
        assert current_rate() == LIMIT
        for _ in range(3):
            users.get_user(client, alice)
        recovered = gaps([entry.time for entry in emulator.journal.entries(GET_USER)][-4:])
        assert statistics.median(recovered) < 0.3, recovered
    finally:
        client.close()
