"""Settings are read once from an environment mapping, with every problem reported together."""

import re
from pathlib import Path

import pytest
import yaml

from service.errors import ConfigurationError
from service.settings import PLACEHOLDER_SECRETS, database_url_from, load_settings
from service.worker.loop import retry_delay

ROOT = Path(__file__).resolve().parents[2]
HOOK = "hook-secret-0123456789abcdef"
REQUIRED = {
    "GENAUTH_ACCESS_KEY_ID": "pool-id",
    "GENAUTH_ACCESS_KEY_SECRET": "pool-secret",
    "GENAUTH_WEBHOOK_SECRET": HOOK,
}


def test_defaults_match_the_documented_interface():
    """Only credentials and the webhook secret are required; the rest has the documented defaults (README)."""
    settings = load_settings(REQUIRED)
    assert settings.genauth.host == "https://api.genauth.ai"
    assert settings.database_url == "sqlite:///var/enforcer.db"
    assert settings.policy_file == Path("config/policies.yaml")
    assert settings.port == 8000
    assert settings.mode == "enforce"
    assert settings.worker.run_in_web is True
    assert settings.webhook.userpool_id is None
    assert settings.webhook.max_body_bytes == 256 * 1024
    assert settings.webhook.max_subjects == 1000
    assert settings.webhook.request_read_timeout == 10.0


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
    settings = load_settings({**REQUIRED, "GENAUTH_WEBHOOK_SECRET": "new-one-0123456789, old-one-0123456789 ,"})
    assert settings.webhook.secrets == ("new-one-0123456789", "old-one-0123456789")
    assert "new-one" not in repr(settings) and "pool-secret" not in repr(settings)


def test_audit_mode_and_host_are_normalised():
    """ENFORCER_MODE is case-insensitive and GENAUTH_HOST loses its trailing slash."""
    settings = load_settings({**REQUIRED, "ENFORCER_MODE": "AUDIT", "GENAUTH_HOST": "https://genauth.example.com/"})
    assert settings.is_audit
    assert settings.genauth.host == "https://genauth.example.com"


def test_retry_delay_grows_exponentially_with_jitter_and_honours_retry_after():
    """Delays double per attempt within [half, full], cap at backoff_max, and never undercut Retry-After."""
    worker = load_settings(REQUIRED).worker
    assert retry_delay(1, worker, rng=lambda: 0.0) == worker.backoff_base / 2
    assert retry_delay(3, worker, rng=lambda: 1.0) == worker.backoff_base * 4
    assert retry_delay(50, worker, rng=lambda: 1.0) == worker.backoff_max
    assert retry_delay(1, worker, retry_after=30.0, rng=lambda: 0.0) == 30.0


def test_each_role_is_asked_only_for_the_secrets_it_uses():
    """A web process without the worker needs no GenAuth credentials; a worker needs no webhook secret."""
    web_only = {"GENAUTH_WEBHOOK_SECRET": HOOK, "ENFORCER_RUN_WORKER": "false"}
    assert load_settings(web_only, role="web").webhook.secrets == (HOOK,)
    with pytest.raises(ConfigurationError, match="GENAUTH_ACCESS_KEY_ID"):
        load_settings({"GENAUTH_WEBHOOK_SECRET": HOOK}, role="web")  # runs the worker thread by default
    worker = {"GENAUTH_ACCESS_KEY_ID": "pool", "GENAUTH_ACCESS_KEY_SECRET": "secret"}
    assert load_settings(worker, role="worker").webhook.secrets == ()
    with pytest.raises(ConfigurationError, match="GENAUTH_WEBHOOK_SECRET"):
        load_settings(worker, role="all")


def test_worker_threads_default_to_sixteen_and_are_bounded():
    assert load_settings(REQUIRED).worker.threads == 16
    assert load_settings({**REQUIRED, "ENFORCER_WORKER_THREADS": "4"}).worker.threads == 4
    for bad in ("0", "33", "many"):
        with pytest.raises(ConfigurationError, match="ENFORCER_WORKER_THREADS"):
            load_settings({**REQUIRED, "ENFORCER_WORKER_THREADS": bad})


def shipped_placeholders() -> set[str]:
    """Every secret-looking value config/example.env and the example Secret ship."""
    values = set()
    for line in (ROOT / "config" / "example.env").read_text().splitlines():
        if re.match(r"^[A-Z_]+=", line):
            values.add(line.split("=", 1)[1].strip())
    secret = yaml.safe_load((ROOT / "deploy" / "k8s" / "secret.example.yaml").read_text())
    values.update(str(value) for value in secret["stringData"].values())
    return {value for value in values if "replace" in value or "change-me" in value}


def test_every_placeholder_the_repository_ships_is_refused():
    """The example env file's and the example Secret's placeholders are all in the refused list."""
    placeholders = shipped_placeholders()
    assert {"replace-with-a-long-random-string", "replace-me"} <= placeholders
    assert {value.casefold() for value in placeholders if "://" not in value} <= PLACEHOLDER_SECRETS


@pytest.mark.parametrize("name", ["GENAUTH_WEBHOOK_SECRET", "ENFORCER_ADMIN_TOKEN"])
@pytest.mark.parametrize(
    "value", ["replace-with-a-long-random-string", "REPLACE-ME", "short-secret", "sandbox-webhook-secret"]
)
def test_weak_or_placeholder_secrets_stop_startup_naming_the_variable(name, value):
    """A secret shorter than 16 characters, or one this repository publishes, is refused by name (never shown)."""
    with pytest.raises(ConfigurationError) as caught:
        load_settings({**REQUIRED, name: value})
    message = str(caught.value)
    assert name in message and "1 problem(s)" in message
    assert value not in message


def test_a_weak_previous_webhook_secret_is_refused_too():
    """Every value of a rotation list must be strong."""
    with pytest.raises(ConfigurationError, match="GENAUTH_WEBHOOK_SECRET is too short"):
        load_settings({**REQUIRED, "GENAUTH_WEBHOOK_SECRET": f"{HOOK},old"})
    assert load_settings({**REQUIRED, "ENFORCER_ADMIN_TOKEN": "a" * 16}).webhook.admin_token == "a" * 16


def test_postgres_urls_of_procfile_platforms_are_postgresql_and_others_are_refused():
    """postgres:// and postgresql:// mean psycopg; mysql:// is refused listing the supported schemes, no password."""
    for url in ("postgres://u:pw@db:5432/x", "postgresql://u:pw@db:5432/x", "postgresql+psycopg://u:pw@db:5432/x"):
        assert load_settings({**REQUIRED, "DATABASE_URL": url}).database_url == "postgresql+psycopg://u:pw@db:5432/x"
    assert database_url_from({"DATABASE_URL": "postgres://u:pw@db/x"}) == "postgresql+psycopg://u:pw@db/x"
    assert database_url_from({}) == "sqlite:///var/enforcer.db"
    for bad in ("mysql://u:hunter22@db/x", "var/enforcer.db"):
        with pytest.raises(ConfigurationError) as caught:
            load_settings({**REQUIRED, "DATABASE_URL": bad})
        message = str(caught.value)
        assert "DATABASE_URL" in message and "sqlite:///" in message and "postgres://" in message
        assert "hunter22" not in message
        with pytest.raises(ConfigurationError, match="postgresql://"):
            database_url_from({"DATABASE_URL": bad})


def test_host_is_shared_by_the_web_server_and_the_worker_metrics():
    """HOST defaults to every interface and is read into the settings the worker's /metrics server uses."""
    assert load_settings(REQUIRED).host == "0.0.0.0"  # noqa: S104 - the documented default
    assert load_settings({**REQUIRED, "HOST": "127.0.0.1"}).host == "127.0.0.1"


def test_metrics_port_zero_is_off():
    """ENFORCER_METRICS_PORT=0 means no /metrics server, as documented; a bad port is refused."""
    assert load_settings({**REQUIRED, "ENFORCER_METRICS_PORT": "0"}).metrics_port == 0
    assert load_settings({**REQUIRED, "ENFORCER_METRICS_PORT": "9102"}).metrics_port == 9102
    with pytest.raises(ConfigurationError, match="ENFORCER_METRICS_PORT"):
        load_settings({**REQUIRED, "ENFORCER_METRICS_PORT": "70000"})
