"""Settings are read once from an environment mapping, with every problem reported together."""

from pathlib import Path

import pytest

from service.errors import ConfigurationError
from service.settings import is_sandbox, load_settings
from service.worker.loop import retry_delay

REQUIRED = {
    "GENAUTH_ACCESS_KEY_ID": "pool-id",
    "GENAUTH_ACCESS_KEY_SECRET": "pool-secret",
    "GENAUTH_WEBHOOK_SECRET": "hook-secret",
}


def test_defaults_match_the_documented_interface():
    """Only credentials and the webhook secret are required; the rest has INTERFACE.md's defaults."""
    settings = load_settings(REQUIRED)
    assert settings.genauth.host == "https://api.genauth.ai"
    assert settings.database_url == "sqlite:///var/enforcer.db"
    assert settings.policy_file == Path("config/policies.yaml")
    assert settings.port == 8000
    assert settings.mode == "enforce"
    assert settings.worker.run_in_web is True
    assert settings.webhook.userpool_id is None
    assert settings.webhook.max_body_bytes == 1024 * 1024


def test_every_missing_variable_is_listed_at_once():
    """An empty environment names all three required variables in one error."""
    with pytest.raises(ConfigurationError) as caught:
        load_settings({})
    message = str(caught.value)
    for name in REQUIRED:
        assert name in message
    assert "3 problem(s)" in message


def test_malformed_values_are_reported_with_the_required():
    """Bad numbers, booleans and choices are listed beside missing variables."""
    environ = {"PORT": "eighty", "ENFORCER_RUN_WORKER": "maybe", "ENFORCER_MODE": "observe", "GENAUTH_HOST": "ftp://x"}
    with pytest.raises(ConfigurationError) as caught:
        load_settings(environ)
    message = str(caught.value)
    for fragment in (
        "PORT='eighty'",
        "ENFORCER_RUN_WORKER='maybe'",
        "ENFORCER_MODE='observe'",
        "GENAUTH_HOST",
        "7 problem(s)",
    ):
        assert fragment in message


def test_secrets_are_split_for_rotation_and_never_shown_in_repr():
    """A comma-separated webhook secret gives several secrets; repr of settings hides them."""
    settings = load_settings({**REQUIRED, "GENAUTH_WEBHOOK_SECRET": "new-one, old-one ,"})
    assert settings.webhook.secrets == ("new-one", "old-one")
    assert "new-one" not in repr(settings) and "pool-secret" not in repr(settings)


def test_audit_mode_and_host_are_normalised():
    """ENFORCER_MODE is case-insensitive and GENAUTH_HOST loses its trailing slash."""
    settings = load_settings({**REQUIRED, "ENFORCER_MODE": "AUDIT", "GENAUTH_HOST": "https://genauth.example.com/"})
    assert settings.is_audit
    assert settings.genauth.host == "https://genauth.example.com"


def test_sandbox_is_chosen_only_without_an_access_key():
    """No GENAUTH_ACCESS_KEY_ID (or a blank one) means sandbox."""
    assert is_sandbox({})
    assert is_sandbox({"GENAUTH_ACCESS_KEY_ID": "  "})
    assert not is_sandbox({"GENAUTH_ACCESS_KEY_ID": "pool"})


def test_retry_delay_grows_exponentially_with_jitter_and_honours_retry_after():
    """Delays double per attempt within [half, full], cap at backoff_max, and never undercut Retry-After."""
    worker = load_settings(REQUIRED).worker
    assert retry_delay(1, worker, rng=lambda: 0.0) == worker.backoff_base / 2
    assert retry_delay(3, worker, rng=lambda: 1.0) == worker.backoff_base * 4
    assert retry_delay(50, worker, rng=lambda: 1.0) == worker.backoff_max
    assert retry_delay(1, worker, retry_after=30.0, rng=lambda: 0.0) == 30.0


def test_each_role_is_asked_only_for_the_secrets_it_uses():
    """A web process without the worker needs no GenAuth credentials; a worker needs no webhook secret."""
    web_only = {"GENAUTH_WEBHOOK_SECRET": "hook", "ENFORCER_RUN_WORKER": "false"}
    assert load_settings(web_only, role="web").webhook.secrets == ("hook",)
    with pytest.raises(ConfigurationError, match="GENAUTH_ACCESS_KEY_ID"):
        load_settings({"GENAUTH_WEBHOOK_SECRET": "hook"}, role="web")  # runs the worker thread by default
    worker = {"GENAUTH_ACCESS_KEY_ID": "pool", "GENAUTH_ACCESS_KEY_SECRET": "secret"}
    assert load_settings(worker, role="worker").webhook.secrets == ()
    with pytest.raises(ConfigurationError, match="GENAUTH_WEBHOOK_SECRET"):
        load_settings(worker, role="all")


def test_worker_threads_default_to_one_and_are_bounded():
    assert load_settings(REQUIRED).worker.threads == 1
    assert load_settings({**REQUIRED, "ENFORCER_WORKER_THREADS": "4"}).worker.threads == 4
    for bad in ("0", "33", "many"):
        with pytest.raises(ConfigurationError, match="ENFORCER_WORKER_THREADS"):
            load_settings({**REQUIRED, "ENFORCER_WORKER_THREADS": bad})
