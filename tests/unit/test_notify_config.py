"""The notification settings and the policy's ``notify_users``: what each accepts, and the one-line problems
for what it does not (a password in a bad SMTP URL is never repeated back)."""

from __future__ import annotations

import pytest

from service.errors import ConfigurationError
from service.notices.errors import TemplateError
from service.notices.templates import USER_BEFORE, Templates
from service.policy import PolicyError, UserNotices, parse_policy, require_email
from service.settings import SmtpServer, notify_settings_from, parse_smtp_url

RULE = """
policies:
  - name: finance-sms
    match: {departments: [finance]}
    require_mfa: [SMS]
    notify_users: NOTIFY
"""


@pytest.mark.parametrize(
    ("url", "server"),
    [
        ("smtp://mail.acme.example", SmtpServer("mail.acme.example", 25, "plain")),
        (
            "smtp+starttls://bot:s%40cret@mail.acme.example",
            SmtpServer("mail.acme.example", 587, "starttls", "bot", "s@cret"),
        ),
        ("smtps://bot:pw@mail.acme.example:2465", SmtpServer("mail.acme.example", 2465, "ssl", "bot", "pw")),
    ],
)
def test_the_smtp_url_scheme_says_how_to_talk_to_the_server(url, server):
    """Plain, STARTTLS or TLS by scheme, each with its usual port unless one is given; user and password decoded."""
    assert parse_smtp_url(url) == server


def test_the_smtp_password_is_never_shown():
    assert "hunter2" not in repr(parse_smtp_url("smtps://bot:hunter2@mail.acme.example"))
    with pytest.raises(ConfigurationError) as caught:
        notify_settings_from({"ENFORCER_SMTP_URL": "imap://bot:hunter2@mail.acme.example"})
    assert "hunter2" not in str(caught.value) and "ENFORCER_SMTP_URL is not an SMTP URL" in str(caught.value)


def test_email_needs_a_sender_and_the_digest_e_mail_needs_a_server():
    with pytest.raises(ConfigurationError, match="ENFORCER_NOTIFY_FROM is not set"):
        notify_settings_from({"ENFORCER_SMTP_URL": "smtp://127.0.0.1:2525"})
    with pytest.raises(ConfigurationError, match="ENFORCER_NOTIFY_ADMINS needs ENFORCER_SMTP_URL"):
        notify_settings_from({"ENFORCER_NOTIFY_ADMINS": "it@acme.example"})
    with pytest.raises(ConfigurationError, match="ENFORCER_NOTIFY_WEBHOOK is not an http"):
        notify_settings_from({"ENFORCER_NOTIFY_WEBHOOK": "hooks.slack.com/services/x"})


def test_a_full_notification_configuration():
    notify = notify_settings_from(
        {
            "ENFORCER_SMTP_URL": "smtp://127.0.0.1:2525",
            "ENFORCER_NOTIFY_FROM": "mfa@acme.example",
            "ENFORCER_NOTIFY_ADMINS": "it@acme.example, sec@acme.example",
            "ENFORCER_NOTIFY_WEBHOOK": "https://hooks.example/abc",
            "ENFORCER_NOTIFY_INTERVAL": "60",
        }
    )
    assert notify.can_email and notify.is_on and notify.interval == 60.0
    assert notify.admins == ("it@acme.example", "sec@acme.example")
    assert "hooks.example" not in repr(notify)
    assert not notify_settings_from({}).is_on


def test_notify_users_reads_days_largest_first():
    policy = parse_policy(RULE.replace("NOTIFY", "{before: [1d, 7d], on_enforce: true}"))
    assert policy.rules[0].notify_users == UserNotices(before=(7, 1), on_enforce=True)
    assert policy.notifying_rules == policy.rules


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("{before: [7]}", "notify_users.before[0]: expected a number of days from 1d to 366d, like 7d, got a number"),
        ("{before: [2w]}", "notify_users.before[0]: expected a number of days"),
        ("{before: [7d], after: [1d]}", "notify_users.after: unknown key; expected before, on_enforce"),
        ('{on_enforce: "yes"}', "notify_users.on_enforce: expected true or false"),
        ("{on_enforce: false}", "notify_users: give before (e.g. [7d, 1d]) or on_enforce: true"),
        ("true", "notify_users: expected a mapping with before"),
    ],
)
def test_bad_notify_users_names_the_rule_and_field(value, message):
    with pytest.raises(PolicyError) as caught:
        parse_policy(RULE.replace("NOTIFY", value))
    [problem] = caught.value.problems
    assert problem.startswith(f"policies[0] (finance-sms): {message}")


def test_notify_users_without_email_is_one_line_naming_rule_and_field():
    policy = parse_policy(RULE.replace("NOTIFY", "{on_enforce: true}"))
    assert require_email(policy, can_email=True) is policy
    with pytest.raises(PolicyError) as caught:
        require_email(policy, can_email=False)
    assert caught.value.problems == [
        "policies[0] (finance-sms): notify_users: e-mail is not configured; set ENFORCER_SMTP_URL and "
        "ENFORCER_NOTIFY_FROM, or remove notify_users"
    ]


def test_an_operator_template_replaces_the_shipped_one(tmp_path):
    """A file of the same name in the operator's folder wins; one naming an unknown placeholder is refused
    with the file and the placeholders it may use."""
    values = {"name": "Alice", "deadline": "2027-01-15", "factors": "SMS", "days": "in 7 days"}
    shipped = Templates().render(
        USER_BEFORE, values | {"description": "", "ready": "a phone", "rule": "r", "date": "d"}
    )
    assert shipped.subject == "From 2027-01-15 your account will ask for SMS"
    (tmp_path / USER_BEFORE).write_text("Subject: Heads up, $name\n\nSMS from $deadline.\n")
    mine = Templates(tmp_path).render(USER_BEFORE, values)
    assert (mine.subject, mine.body) == ("Heads up, Alice", "SMS from 2027-01-15.\n")
    (tmp_path / USER_BEFORE).write_text("Subject: $phone\n\nx\n")
    with pytest.raises(TemplateError, match=r"template user-before\.txt: unknown or malformed placeholder 'phone'"):
        Templates(tmp_path).render(USER_BEFORE, values)
    assert Templates(tmp_path).check() == [
        "template user-before.txt: unknown or malformed placeholder 'phone'; it may use date, days, deadline, "
        "description, factors, name, ready, rule"
    ]
