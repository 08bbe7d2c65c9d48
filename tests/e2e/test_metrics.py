"""/metrics shows the counters moving as deliveries arrive and users are enforced."""

from __future__ import annotations

import re

import requests

from genauth_emulator.payloads import event_body
from tests.e2e.test_pipeline import wait_for_decision


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one sample in Prometheus text, 0 when absent."""
    wanted = ",".join(f'{key}="{value}"' for key, value in sorted(labels.items()))
    for line in text.splitlines():
        match = re.match(r"^(\w+)(?:\{(.*)\})? (\S+)$", line)
        if not match or match.group(1) != name:
            continue
        found = ",".join(sorted((match.group(2) or "").split(","))) if match.group(2) else ""
        if found == wanted:
            return float(match.group(3))
    return 0.0


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
