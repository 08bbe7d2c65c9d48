"""What /readyz says about GenAuth (service.genauth.access.readiness): the access check's answer first, then an
open circuit breaker; never anything that makes the process unready (the view answers 200 regardless)."""

from __future__ import annotations

from service.genauth.access import OK, REFUSED, UNCHECKED, UNREACHABLE, Access, readiness
from service.genauth.circuit import CircuitBreaker


def test_a_refused_or_unreachable_key_is_shown_with_what_to_check_and_that_deliveries_go_on():
    for state, line in ((REFUSED, "check GENAUTH_ACCESS_KEY_ID"), (UNREACHABLE, "check GENAUTH_HOST")):
        shown = readiness(Access(state, f"GenAuth said no ({line})"), CircuitBreaker(5, 30.0))
        assert shown["genauth"] == state
        assert line in shown["genauth_warning"] and "deliveries are still taken" in shown["genauth_warning"]


def test_an_open_circuit_after_a_good_start_shows_genauth_unavailable():
    breaker = CircuitBreaker(2, 30.0)
    assert readiness(Access(OK), breaker) == {"genauth": "ok"}
    breaker.record_failure()
    breaker.record_failure()
    shown = readiness(Access(OK), breaker)
    assert shown["genauth"] == "unavailable" and "circuit breaker open" in shown["genauth_warning"]
    breaker.record_success()
    assert readiness(Access(OK), breaker) == {"genauth": "ok"}


def test_before_the_first_answer_genauth_is_unchecked():
    assert readiness(Access(UNCHECKED), None) == {"genauth": "unchecked"}
