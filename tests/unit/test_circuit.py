"""The GenAuth circuit breaker and rate-limit reservations: pure state machines, driven by hand."""

from __future__ import annotations

import pytest

from service.genauth.circuit import CLOSED, HALF_OPEN, OPEN, CircuitBreaker
from service.genauth.throttling import RateLimiter


def test_the_circuit_opens_after_the_threshold_of_failures_in_a_row():
    """Failures interrupted by a success never open it; N in a row do."""
    breaker = CircuitBreaker(3, 30.0)
    for _ in range(5):
        breaker.record_failure()
        breaker.record_failure()
        breaker.record_success()
    assert breaker.state == CLOSED and breaker.claim_limit(0.0) is None
    for _ in range(3):
        breaker.record_failure()
    assert breaker.state == OPEN and breaker.is_open()


def test_an_open_circuit_allows_one_probe_after_the_cooldown_and_closes_on_success():
    """Nothing is claimed during the cool-down; then exactly one worker gets a probe of one row."""
    breaker = CircuitBreaker(1, 30.0)
    breaker.record_failure()
    assert breaker.claim_limit(100.0) == 0
    assert breaker.claim_limit(129.0) == 0
    assert breaker.claim_limit(130.0) == 1
    assert breaker.state == HALF_OPEN
    assert breaker.claim_limit(130.0) == 0, "only one probe at a time"
    breaker.record_success()
    assert breaker.state == CLOSED and breaker.claim_limit(131.0) is None


def test_a_failed_probe_reopens_with_the_cooldown_doubled_up_to_the_maximum():
    """30 s, then 60 s, then 120 s … never more than max_cooldown."""
    breaker = CircuitBreaker(1, 30.0, max_cooldown=100.0)
    breaker.record_failure()
    now = 0.0
    breaker.claim_limit(now)
    waits = []
    for _ in range(4):
        opened = now
        while breaker.claim_limit(now) != 1:
            now += 1.0
        waits.append(now - opened)
        breaker.record_failure()
        breaker.claim_limit(now)
    assert waits == [30.0, 60.0, 100.0, 100.0]


def test_an_unused_probe_passes_to_the_next_worker():
    """A worker that got the probe but found nothing to claim gives it back."""
    breaker = CircuitBreaker(1, 0.0)
    breaker.record_failure()
    assert breaker.claim_limit(0.0) == 1
    breaker.probe_unused()
    assert breaker.claim_limit(0.0) == 1


def test_a_threshold_of_zero_turns_the_breaker_off():
    """GENAUTH_CIRCUIT_FAILURES=0: failures never open it."""
    breaker = CircuitBreaker(0, 30.0)
    for _ in range(100):
        breaker.record_failure()
    assert breaker.state == CLOSED


def test_reserving_several_tokens_waits_once_for_all_of_them():
    """acquire(3) on an empty bucket at 2/s waits 1.5 s in one sleep; the bucket is then in debt by that."""
    now = [0.0]
    slept = []

    def sleep(seconds):
        slept.append(seconds)
        now[0] += seconds

    limiter = RateLimiter(2.0, 1, clock=lambda: now[0], sleep=sleep)
    limiter.acquire()
    limiter.acquire(3)
    assert slept == [pytest.approx(1.5)]
    limiter.acquire()
    assert slept[-1] == pytest.approx(0.5)
