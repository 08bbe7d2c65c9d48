"""The process's GenAuth rate halves on a 429 and recovers additively up to GENAUTH_RATE_LIMIT (a clock moved
by hand, so no test waits)."""

from __future__ import annotations

import pytest

from service import metrics
from service.genauth.throttling import MIN_RATE, RECOVERY_INTERVAL, RECOVERY_STEP, RateLimiter
from tests.support.metrics import sample


class Time:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def limiter_at(rate: float, burst: int = 10) -> tuple[RateLimiter, Time]:
    clock = Time()
    return RateLimiter(rate, burst, clock=clock, sleep=clock.sleep), clock


def test_a_429_halves_the_rate_once_per_burst_and_drops_the_tokens_in_hand():
    limiter, clock = limiter_at(20.0)
    limiter.throttled()
    limiter.throttled()  # the calls that were in flight with it: the same signal
    assert limiter.rate == 10.0 and limiter.cuts == 1
    limiter.acquire()
    assert clock.slept == [pytest.approx(0.1)]  # a full bucket was dropped: the next call waits at the new rate
    clock.now = RECOVERY_INTERVAL * 0.99  # the cut was at 0
    limiter.throttled()
    assert limiter.cuts == 1
    clock.now = RECOVERY_INTERVAL * 1.01
    limiter.throttled()  # a 429 after the hold: GenAuth still says too much
    assert limiter.cuts == 2 and limiter.rate == pytest.approx((10.0 + RECOVERY_STEP * 20.0) / 2)


def test_the_rate_recovers_by_a_fixed_step_per_interval_up_to_the_limit():
    limiter, clock = limiter_at(20.0)
    limiter.throttled()
    rates = []
    for _ in range(12):
        clock.now += RECOVERY_INTERVAL
        rates.append(limiter.rate)
    step = RECOVERY_STEP * 20.0
    assert rates[:3] == [pytest.approx(10.0 + step), pytest.approx(10.0 + 2 * step), pytest.approx(10.0 + 3 * step)]
    assert max(rates) == 20.0 and rates[-1] == 20.0  # never above GENAUTH_RATE_LIMIT


def test_repeated_429s_never_take_the_rate_below_the_floor():
    limiter, clock = limiter_at(4.0)
    for _ in range(20):
        limiter.throttled()
        clock.now += RECOVERY_INTERVAL
    assert limiter.rate >= MIN_RATE
    tiny, _ = limiter_at(0.2)
    tiny.throttled()
    assert tiny.rate == 0.2  # a configured rate below the floor is not cut


def test_the_bucket_shrinks_with_the_rate():
    """After a cut the process may not burst as much as at full rate: 3 s later the rate is 6.5 (5 + 3 steps
    of 0.5) and the bucket holds 6.5 tokens, not 10."""
    limiter, clock = limiter_at(10.0, burst=10)
    limiter.throttled()
    clock.now += 3 * RECOVERY_INTERVAL
    assert limiter.rate == pytest.approx(5.0 + 3 * RECOVERY_STEP * 10.0)
    for _ in range(6):
        limiter.acquire()
    assert clock.slept == []
    limiter.acquire()
    assert clock.slept, "a bucket of 10 would not have made anyone wait"


def test_the_rate_in_force_is_a_metric():
    limiter, _clock = limiter_at(8.0)
    limiter.acquire()
    assert sample(metrics.render()[0].decode(), "mfa_enforcer_genauth_rate") == 8.0
    limiter.throttled()
    assert sample(metrics.render()[0].decode(), "mfa_enforcer_genauth_rate") == 4.0


def test_a_limiter_that_is_off_stays_off():
    limiter, clock = limiter_at(0.0)
    limiter.throttled()
    limiter.acquire(5)
    assert clock.slept == [] and limiter.rate == 0.0
