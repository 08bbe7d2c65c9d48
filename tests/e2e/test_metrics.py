"""/metrics shows the counters moving as deliveries arrive and users are enforced."""

from __future__ import annotations

import threading
import time

import pytest
import requests

from genauth_emulator.payloads import event_body
from tests.support.metrics import sample
from tests.support.store import wait_for_decision


def test_metrics_count_deliveries_decisions_calls_and_queue(live_service, emulator):
    """A delivery moves the delivery, decision and GenAuth counters; the queue gauges are present."""
    before = requests.get(f"{live_service.url}/metrics", timeout=5).text
    alice = emulator.users["fin.alice"]
    live_service.sender.deliver(event_body(emulator.state, "login", alice))
    requests.post(live_service.webhook_url, json={}, headers={"x-authing-token": "wrong"}, timeout=5)
    wait_for_decision(live_service.engine, alice)
    after = requests.get(f"{live_service.url}/metrics", timeout=5)
    assert after.headers["Content-Type"].startswith("text/plain")
    text = after.text

    def delta(name, **labels):
        return sample(text, name, **labels) - sample(before, name, **labels)

    assert delta("mfa_enforcer_deliveries_total", event="login", outcome="queued") == 1
    assert delta("mfa_enforcer_deliveries_total", event="-", outcome="unauthorized") == 1
    assert delta("mfa_enforcer_decisions_total", rule="finance-sms", action="enforced") == 1
    assert delta("mfa_enforcer_genauth_calls_total", endpoint="/api/v3/set-mfa-status", status="200") == 1
    assert delta("mfa_enforcer_delivery_ack_seconds_count") == 2
    assert sample(text, "mfa_enforcer_database_up") == 1
    assert "mfa_enforcer_queue_depth " in text and "mfa_enforcer_dead_letters " in text
    assert "mfa_enforcer_queue_oldest_due_age_seconds " in text


def test_unknown_event_names_share_one_metric_label(live_service):
    """Event names the service does not know are counted as "other", so senders cannot grow the series."""
    before = requests.get(f"{live_service.url}/metrics", timeout=5).text
    for name in ("made:up-one", "made:up-two"):
        live_service.sender.deliver({"eventName": name, "data": {}})
    text = requests.get(f"{live_service.url}/metrics", timeout=5).text
    delta = sample(text, "mfa_enforcer_deliveries_total", event="other", outcome="ignored") - sample(
        before, "mfa_enforcer_deliveries_total", event="other", outcome="ignored"
    )
    assert delta == 2 and "made:up" not in text


def test_database_gauges_are_read_at_most_once_per_few_seconds_per_process(live_intake, emulator):
    """Frequent scrapes share one read of the database gauges (metrics.GAUGE_TTL), so a scrape storm does not
    count the work table over and over; the values stay correct."""
    live_intake.sender.deliver(event_body(emulator.state, "login", emulator.users["fin.alice"]))
    gauges = live_intake.app.extensions["mfa_enforcer"].gauges
    texts = [requests.get(f"{live_intake.url}/metrics", timeout=5).text for _ in range(5)]
    assert gauges.reads == 1
    assert all(sample(text, "mfa_enforcer_queue_depth") == 1 for text in texts)
    assert all(sample(text, "mfa_enforcer_database_up") == 1 for text in texts)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_metrics_never_wait_for_the_sqlite_writer(live_intake):
    """While the single writer connection is busy (a long commit, a lock), /metrics reads through its own
    read-only connection and answers at once."""
    engine = live_intake.engine
    held = threading.Event()
    release = threading.Event()

    def hold_the_writer():
        with engine.begin():
            held.set()
            release.wait(10)

    holder = threading.Thread(target=hold_the_writer)
    holder.start()
    try:
        assert held.wait(5)
        started = time.monotonic()
        text = requests.get(f"{live_intake.url}/metrics", timeout=5).text
        assert time.monotonic() - started < 2
        assert sample(text, "mfa_enforcer_database_up") == 1
    finally:
        release.set()
        holder.join()
