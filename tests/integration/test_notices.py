"""Notifications end to end on real receivers, on SQLite and PostgreSQL: a real SMTP server (aiosmtpd) and a real
HTTP endpoint on loopback get exactly the notices that are due, each once; a receiver that refuses or is down
leaves the notice in the outbox with its error, and the next digest says so; two senders at once send each
notice once; a verified write of a rule with ``notify_users.on_enforce`` e-mails the user."""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pytest

from service.notices.scheduling import Deadline, user_key
from service.notices.sending import Notifier, digest_key
from service.policy import parse_policy
from service.settings import NotifySettings, SmtpServer
from service.store import outbox
from service.store.decisions import record_decision
from service.store.engine import create_engine, prepare_database
from service.store.holds import BUDGET, Hold, hold
from tests.support.factories import enforced_decision, enqueue
from tests.support.notices import smtp_server, webhook_receiver
from tests.support.processes import free_port
from tests.support.values import ROOT

START = datetime(2027, 1, 8, 9, 0, tzinfo=UTC).timestamp()
TODAY = date(2027, 1, 8)
DAY = 86400.0
POLICY = """
policies:
  - name: finance-sms
    description: Finance staff confirm sign-ins with an SMS code.
    match: {departments: [finance]}
    require_mfa: [SMS]
    notify_users: {before: [7d, 1d], on_enforce: true}
    exceptions:
      - users: [u-visitor]
        reason: visiting auditor
        expires: 2027-01-12
"""


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def engine(database_url, schema_template):
    schema_template.apply(database_url)
    engine = create_engine(database_url)
    prepare_database(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def mailbox():
    with smtp_server() as (box, port):
        yield box, port


@pytest.fixture
def hook():
    with webhook_receiver() as (receiver, url):
        yield receiver, url


def notify_settings(port: int, url: str = "", **extra) -> NotifySettings:
    return NotifySettings(
        webhook_url=url,
        smtp=SmtpServer("127.0.0.1", port),
        sender="mfa@acme.example",
        admins=("it@acme.example", "sec@acme.example"),
        timeout=2.0,
        **extra,
    )


def notifier(engine, settings: NotifySettings, clock: Clock, *, deadlines=(), owner: str = "test") -> Notifier:
    policy = parse_policy(POLICY)
    return Notifier(
        engine,
        settings,
        lambda: policy,
        deadlines=lambda today: list(deadlines),
        unresolved=lambda: ["department 'finanse' is unknown (did you mean finance?)"],
        clock=clock,
        owner=owner,
    )


def test_one_digest_goes_to_the_webhook_and_the_admins_once_a_day(engine, mailbox, hook):
    """The digest reaches the webhook (a plain ``text`` plus structured sections) and the admins' inboxes, with
    the held users, the exception expiring within 7 days and the unresolved name; a second round that day sends
    nothing, the next day's digest is new."""
    (box, port), (receiver, url) = mailbox, hook
    hold(
        engine,
        Hold("p", "u-held", BUDGET, "budget spent", "login", ("finance-sms",), (), ("SMS",), username="hal"),
        now=START,
    )
    clock = Clock()
    sender = notifier(engine, notify_settings(port, url), clock)

    first = sender.run()
    again = sender.run()

    assert (first.queued, first.sent, first.failed) == (2, 2, 0)
    assert (again.queued, again.sent) == (0, 0)
    [body] = receiver.bodies
    assert body["kind"] == "digest" and body["day"] == "2027-01-08"
    titles = [section["title"] for section in body["sections"]]
    assert "held users" in titles
    assert "exceptions expiring in the next 7 days" in titles and "references that no longer resolve" in titles
    assert "hal: rules finance-sms" in body["text"] and "u-visitor until 2027-01-12" in body["text"]
    [mail] = box.received
    assert mail.to == ["it@acme.example", "sec@acme.example"]
    assert mail.subject.startswith("mfa-enforcer digest for 2027-01-08")
    assert "finanse" in mail.body

    clock.now += DAY
    assert sender.run().sent == 2
    assert len(receiver.bodies) == 2 and len(box.received) == 2


def test_user_notices_go_out_7_and_1_days_ahead_each_exactly_once(engine, mailbox):
    """A deadline 7 days out gets the 7-day notice at once, nothing more until the day before, then the 1-day
    notice; each once however many rounds run. The e-mail says the user's name, the rule's description, the
    factor, the date and what to have ready, and nothing else about the user."""
    box, port = mailbox
    clock = Clock()
    deadline = Deadline(
        "p", "u-alice", "finance-sms", TODAY + timedelta(days=7), name="Alice", email="alice@acme.example"
    )
    sender = notifier(engine, replace(notify_settings(port), admins=()), clock, deadlines=[deadline])

    for _ in range(3):
        sender.run()
    assert [mail.to for mail in box.received] == [["alice@acme.example"]]
    first = box.received[0]
    assert first.subject == "From 2027-01-15 your account will ask for SMS"
    assert "Hello Alice," in first.body and "Finance staff confirm sign-ins with an SMS code." in first.body
    assert "a mobile phone number" in first.body and "u-alice" not in first.body

    clock.now += 3 * DAY
    sender.run()
    assert len(box.received) == 1
    clock.now += 3 * DAY  # the day before
    sender.run()
    sender.run()
    assert len(box.received) == 2
    assert "From 2027-01-15 (tomorrow)" in box.received[1].body
    keys = {row["key"] for row in outbox.rows(engine)}
    assert keys == {
        user_key("p", "u-alice", "finance-sms", "before-7d", "2027-01-15"),
        user_key("p", "u-alice", "finance-sms", "before-1d", "2027-01-15"),
    }
    clock.now += DAY  # the deadline itself: the on-enforce notice's turn, no more "before"
    sender.run()
    assert len(box.received) == 2


def test_a_refusing_smtp_server_keeps_the_notice_and_the_next_digest_says_so(engine, mailbox, hook):
    """SMTP answers 451: the notice stays in the outbox with its attempt and the server's answer, due again
    after a backoff; the webhook's digest the next day lists it; once the server takes mail, it goes out."""
    (box, port), (receiver, url) = mailbox, hook
    box.refuse = "451 4.3.0 try again later"
    clock = Clock()
    sender = notifier(engine, notify_settings(port, url), clock)

    done = sender.run()

    assert (done.sent, done.failed) == (1, 1)
    [row] = outbox.rows(engine, keys=[digest_key(TODAY, outbox.EMAIL)])
    assert row["state"] == "pending" and row["attempts"] == 1 and row["sent_at"] is None
    assert "451" in row["last_error"] and row["due_at"] > START
    assert sender.run().sent == 0  # not due yet: backoff

    clock.now += DAY
    box.refuse = None
    sender.run()
    latest = receiver.bodies[-1]
    assert latest["day"] == "2027-01-09"
    assert "digest by email: pending after 1 attempt(s)" in latest["text"]
    assert {mail.subject[:34] for mail in box.received} == {
        "mfa-enforcer digest for 2027-01-08",
        "mfa-enforcer digest for 2027-01-09",
    }
    assert outbox.rows(engine, keys=[digest_key(TODAY, outbox.EMAIL)])[0]["state"] == "sent"


def test_an_smtp_server_that_is_down_costs_a_retry_not_an_error(engine):
    """Nothing listens on the SMTP port: the round ends normally, the notice waits with the reason."""
    sender = notifier(engine, notify_settings(free_port()), Clock())

    done = sender.run()

    assert (done.sent, done.failed) == (0, 1)
    [row] = outbox.rows(engine)
    assert row["state"] == "pending" and "ConnectionRefusedError" in row["last_error"]


def test_a_notice_given_up_after_its_attempts_is_failed_and_reported(engine):
    """After ``MAX_ATTEMPTS`` a notice stops being retried and stays ``failed`` for the digest."""
    clock = Clock()
    sender = notifier(engine, replace(notify_settings(free_port()), webhook_url=""), clock)
    for _ in range(outbox.MAX_ATTEMPTS):
        sender.run()
        clock.now += outbox.BACKOFF_MAX
    [row] = [r for r in outbox.rows(engine) if r["key"] == digest_key(TODAY, outbox.EMAIL)]
    assert row["state"] == "failed" and row["attempts"] == outbox.MAX_ATTEMPTS
    count, listed = outbox.unsent(engine)
    assert count >= 1 and listed[-1]["state"] in ("failed", "pending")


def test_two_senders_at_once_send_each_notice_once(engine, database_url, mailbox):
    """Forty queued notices, two senders on their own engines (two processes, as far as the database can tell)
    racing: every notice arrives exactly once."""
    box, port = mailbox
    with engine.begin() as connection:
        outbox.add(
            connection,
            [
                outbox.Notice(
                    f"user:p:u{n}|finance-sms|on-enforce|-|email",
                    "on-enforce",
                    "email",
                    f"u{n}@acme.example",
                    {
                        "name": f"u{n}",
                        "description": "",
                        "factors": "SMS",
                        "ready": "a phone",
                        "rule": "finance-sms",
                        "date": "2027-01-08",
                    },
                )
                for n in range(40)
            ],
            now=START,
        )
    settings = replace(notify_settings(port), admins=())
    start = threading.Barrier(2)
    engines = [create_engine(database_url) for _ in range(2)]

    def send(index: int) -> None:
        start.wait()
        notifier(engines[index], settings, Clock(), owner=f"sender-{index}").send_due()

    threads = [threading.Thread(target=send, args=(index,)) for index in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for other in engines:
        other.dispose()

    recipients = sorted(address for mail in box.received for address in mail.to)
    assert recipients == sorted(f"u{n}@acme.example" for n in range(40))
    assert {row["state"] for row in outbox.rows(engine)} == {"sent"}


def test_a_rule_enforced_for_a_user_queues_one_on_enforce_notice(engine, mailbox):
    """A decision that wrote a rule with ``on_enforce`` queues (in the outbox) one notice to the user's address,
    once per user and rule; the round sends it."""
    from service.notices.scheduling import on_enforce_notices  # the pure step the worker runs with the decision

    box, port = mailbox
    policy = parse_policy(POLICY)
    decision = enforced_decision(
        "u-bob", userpool_id="p", reason="enforced SMS", username="bob", email="bob@acme.example"
    )
    compliant = replace(decision, action="none", outcomes={"finance-sms": "compliant"})
    with engine.begin() as connection:
        record_decision(connection, decision, now=START)
        assert outbox.add(connection, on_enforce_notices(decision, policy, today=TODAY), now=START) == 1
        assert outbox.add(connection, on_enforce_notices(decision, policy, today=TODAY), now=START) == 0
        assert on_enforce_notices(compliant, policy, today=TODAY) == []

    notifier(engine, replace(notify_settings(port), admins=()), Clock()).send_due()

    [mail] = box.received
    assert mail.to == ["bob@acme.example"] and mail.subject == "Your account now asks for SMS"
    assert "Since 2027-01-08" in mail.body and "Hello bob," in mail.body


def test_the_worker_queues_the_on_enforce_notice_of_its_verified_write(
    tmp_path, settings, schema_template, emulator, mailbox
):
    """The real worker against the emulator: alice lacks SMS, the worker writes and reads it back, and the same
    transaction that records the decision queues her on-enforce notice."""
    from service.app import create_app, stop_worker
    from service.intake.context import EXTENSION
    from service.services import Services

    _box, port = mailbox
    policy_file = tmp_path / "policies.yaml"
    shipped = (ROOT / "config" / "policies.yaml").read_text()
    policy_file.write_text(
        shipped.replace(
            "    require_mfa: [SMS]\n\n", "    require_mfa: [SMS]\n    notify_users: {on_enforce: true}\n\n", 1
        )
    )
    configured = replace(settings, policy_file=policy_file, notify=replace(notify_settings(port), admins=()))
    schema_template.apply(configured.database_url)
    app = create_app(configured, configure_logs=False)
    engine = app.extensions[EXTENSION].engine
    worker = Services(configured, engine).worker(app.extensions[EXTENSION].policies.current, sweeps=False)
    try:
        alice = emulator.users["fin.alice"]
        enqueue(engine, alice)
        worker.run_until_idle()
        rows = outbox.rows(engine)
        assert [(row["kind"], row["key"]) for row in rows] == [
            ("on-enforce", user_key("pool", alice, "finance-sms", "on-enforce", "-"))
        ]
        assert set(rows[0]["fields"]) == {"name", "rule", "description", "factors", "ready", "date"}
    finally:
        worker.reconciler.client.close()
        stop_worker(app)
        engine.dispose()


def test_the_worker_sends_the_digest_from_its_own_thread(settings, engine, emulator, hook):
    """A worker with a webhook configured sends the day's digest on its own, in the notify thread next to its
    loop (which goes on claiming work), and stops it when the worker stops."""
    from service.services import Services
    from service.worker.loop import start_in_thread
    from tests.support.waiting import wait_until

    receiver, url = hook
    configured = replace(settings, notify=NotifySettings(webhook_url=url, interval=0.05, timeout=2.0))
    policy = parse_policy(POLICY)
    worker = Services(configured, engine).worker(lambda: policy)
    thread = start_in_thread(worker)
    try:
        wait_until(lambda: receiver.bodies, timeout=10, what="the digest at the webhook")
    finally:
        worker.stop()
        thread.join(timeout=10)
        worker.reconciler.client.close()
    assert not thread.is_alive()
    assert [body["kind"] for body in receiver.bodies] == ["digest"]
    assert [row["state"] for row in outbox.rows(engine)] == ["sent"]


def test_an_smtp_login_is_made_with_the_urls_user_and_password(engine, mailbox):
    """``smtp://user:pass@host`` logs in before sending (the test server allows it without TLS)."""
    box, port = mailbox
    settings = replace(notify_settings(port), smtp=SmtpServer("127.0.0.1", port, "plain", "bot", "s3cret"))
    assert notifier(engine, settings, Clock()).run().sent == 1
    assert box.logins == [("bot", "s3cret")]
    assert len(box.received) == 1
