"""The ``identity_providers`` condition, added through the condition registry: users who sign in through a
listed external identity source (``get-user`` with ``withIdentities``). Loading, judging, describing, the fact
it needs, test suites, and one run through the worker against the emulator."""

from __future__ import annotations

import textwrap
import time
from dataclasses import replace
from datetime import date

import pytest

from service.policy import (
    CONDITION_KEYS,
    Match,
    MissingFactError,
    PolicyError,
    UserFacts,
    describe_rule,
    evaluate,
    parse_policy,
    parse_suite,
    run_suite,
)
from service.policy.conditions import judge
from service.services import Services
from service.store.decisions import decisions_for_user
from service.store.engine import create_engine, prepare_database
from service.store.inbox import Delivery, record_delivery
from service.store.subjects import Subject

TODAY = date(2026, 12, 1)
POLICY = """\
policies:
  - name: federated-otp
    match: {identity_providers: [WeChatWork, lark, wechatwork]}
    require_mfa: [OTP]
"""


def test_the_key_loads_without_repeats_and_needs_the_identities_fact():
    """Providers are kept as written, repeats that differ only in case dropped; the rule needs identities."""
    policy = parse_policy(POLICY)
    match = policy.rules[0].match
    assert match.identity_providers == ("WeChatWork", "lark")
    assert match.conditions == ("identity_providers",)
    assert policy.needs == {"identity_providers"}
    assert "identity_providers" in CONDITION_KEYS
    assert describe_rule(policy.rules[0]) == [
        "federated-otp (enforce): users with identity_providers any of [WeChatWork, lark] must have OTP"
    ]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("[]", "must list at least one identity provider"),
        ("wechatwork", "expected a list of identity providers"),
        ("['  ']", "must be an identity provider like wechatwork, not empty"),
    ],
)
def test_mistakes_are_reported_on_the_key(text, problem):
    with pytest.raises(PolicyError) as caught:
        parse_policy(f"policies:\n  - name: r\n    match: {{identity_providers: {text}}}\n    require_mfa: [OTP]\n")
    assert caught.value.problems[0].startswith("policies[0] (r): match.identity_providers")
    assert caught.value.problems[0].endswith(problem)


def test_judging_ignores_case_and_says_which_provider_matched():
    match = Match(identity_providers=("wechatwork", "lark"))
    assert judge(match, UserFacts("u", identity_providers=("LARK", "github"))) == (True, ["identity provider lark"])
    assert judge(match, UserFacts("u", identity_providers=())) == (
        False,
        ["has no identity from any of [wechatwork, lark]"],
    )


def test_evaluating_without_the_fact_is_a_programming_error():
    with pytest.raises(MissingFactError) as caught:
        evaluate(parse_policy(POLICY), UserFacts("u"), today=TODAY)
    assert caught.value.fact == "identity_providers"


def test_a_suite_user_gives_identity_providers():
    suite = parse_suite(
        textwrap.dedent("""\
            cases:
              - name: lark-user
                user: {identity_providers: [lark]}
                expect: {federated-otp: "enforce [OTP]"}
              - name: password-user
                user: {}
                expect: {federated-otp: not-matched}
        """)
    )
    result = run_suite(suite, parse_policy(POLICY), today=TODAY)
    assert result.summary == "2 passed, 0 failed", result.lines()


def test_the_worker_reads_identities_and_enforces_federated_users(settings, emulator, tmp_path, database_url):
    """Through the emulator: a WeChat Work user gets OTP, a user without identities is not matched; identities
    are read in the same get-user call (withIdentities), and nothing else is fetched."""
    emulator.state.update_user(emulator.users["eng.dave"], identities=["wechatwork"])
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY)
    policy = parse_policy(POLICY, str(path))
    engine = create_engine(database_url)
    prepare_database(engine)
    worker = Services(replace(settings, policy_file=path), engine).worker(lambda: policy)
    try:
        users = (emulator.users["eng.dave"], emulator.users["fin.alice"])
        delivery = Delivery("login", "pool", tuple(map(Subject.user, users)), "0" * 64, "application/json", "queued")
        record_delivery(engine, delivery, now=time.time())
        emulator.journal.clear()
        worker.run_until_idle()
        dave, alice = (decisions_for_user(engine, user_id)[0] for user_id in users)
    finally:
        worker.reconciler.client.close()
        engine.dispose()
    assert dave["action"] == "enforced" and dave["outcomes"] == {"federated-otp": "enforce [OTP]"}
    assert "identity provider WeChatWork" in dave["reason"]
    assert alice["action"] == "none" and alice["rules"] == []
    reads = emulator.journal.entries("/api/v3/get-user")
    assert len(reads) == 2 and all(entry.query.get("withIdentities") == ["true"] for entry in reads)
    called = {entry.path for entry in emulator.journal.entries()} - {"/api/v3/get-management-token"}
    # and, once per process, the pool's MFA factors (service.enforcement.effective)
    assert called == {
        "/api/v3/get-user",
        "/api/v3/get-mfa-status",
        "/api/v3/set-mfa-status",
        "/api/v3/get-global-mfa-settings",
    }
