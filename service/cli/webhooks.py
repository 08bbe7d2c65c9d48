"""``mfa-enforcer webhooks subscribe | list | test | remove | recover``: the GenAuth webhook that feeds this service.

``subscribe`` creates our webhook (JSON, the first ``GENAUTH_WEBHOOK_SECRET``, exactly the events the loaded
rules need: ``events_for``) or updates the one it manages (``--id``, else the one
named ``--name``, else the one with the URL), so running it twice leaves one webhook and ``--url NEW`` moves
it. ``list`` shows ours, whether each is in the state the service needs, and GenAuth's latest delivery
results. ``remove`` deletes ours. ``recover`` reads GenAuth's delivery log and takes in what the service missed
(``service.intake.recovery``, which the worker also runs every ENFORCER_RECOVER_INTERVAL seconds).
``test`` makes GenAuth send its test event (``trigger-webhook``) and reports
what the service answered and whether the event was recorded in the service's ``events`` table (so it needs
the service's ``DATABASE_URL``).
"""

from __future__ import annotations

import json
import time
from contextlib import closing
from typing import Any
from urllib.parse import urlsplit

import click
import sqlalchemy as sa

from service.cli.common import MOMENT, failure_message, services_or_exit, settings_or_exit, show_time
from service.enforcement.effective import SETTINGS_EVENTS
from service.errors import ServiceError
from service.genauth.client import GenAuthClient
from service.genauth.webhooks import (
    JSON_CONTENT_TYPE,
    WEBHOOK_NAME,
    WEBHOOK_PATH,
    Webhook,
    delete_webhooks,
    deliveries,
    is_managed,
    list_webhooks,
    subscribe,
    trigger_webhook,
)
from service.intake.recovery import recover_gap
from service.policy.conditions import FACT_EVENTS
from service.policy.loading import load_policy
from service.policy.rules import Policy
from service.services import Services
from service.settings import Settings
from service.store.engine import create_engine, disposing
from service.store.keys import deployment_key
from service.store.migrating import ensure_schema
from service.store.tables import events

TEST_EVENT = "test"

#: Events every policy needs: a user appears, signs in, changes, or goes away.
BASE_EVENTS: tuple[str, ...] = (
    "user:created",
    "register",
    "login",
    "user:updated",
    "user:deleted",
    "user:archived",
)


def events_for(policy: Policy) -> list[str]:
    """The events our webhook must subscribe to for ``policy``, in a stable order: the base events, then those
    that change a fact its rules read (each condition names them: ``service.policy.conditions``), then, with any
    rule, those that change the MFA settings above the users (``service.enforcement.effective``)."""
    events = list(BASE_EVENTS)
    for fact, fact_events in FACT_EVENTS.items():
        if fact in policy.needs:
            events.extend(fact_events)
    if policy.rules:
        events.extend(SETTINGS_EVENTS)
    return events


@click.group()
def webhooks() -> None:
    """Manage the GenAuth webhook that sends events to this service."""


@webhooks.command(name="subscribe")
@click.option("--url", required=True, help="The service's webhook URL, e.g. https://mfa.example.com/webhooks/genauth")
@click.option("--name", default=WEBHOOK_NAME, show_default=True, help="The webhook's name in GenAuth.")
@click.option("--id", "webhook_id", metavar="WEBHOOK_ID", help="Update this webhook (default: the one named --name).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def subscribe_command(url: str, name: str, webhook_id: str | None, as_json: bool) -> None:
    """Create our GenAuth webhook for URL, or update the one we manage (a new URL moves it; running it twice
    leaves one webhook)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise click.BadParameter(f"{url!r} is not an http(s) URL", param_hint="--url")
    settings = settings_or_exit(logs=False, role="all")  # GenAuth credentials and the webhook secret
    policy = load_policy(settings.policy_file)
    wanted = events_for(policy)
    with closing(Services(settings).genauth()) as client:
        warnings = _url_warnings(client, url)
        done = subscribe(
            client, url=url, events=wanted, secret=settings.webhook.secrets[0], name=name, webhook_id=webhook_id
        )
        others = [
            webhook
            for webhook in list_webhooks(client)
            if webhook.name == name and webhook.webhook_id != done.webhook.webhook_id and webhook.url != url
        ]
    duplicates = [webhook.webhook_id for webhook in done.duplicates]
    if duplicates:
        warnings.append(
            f"{len(duplicates)} other webhook(s) also send to this URL ({', '.join(duplicates)}): each event "
            "would arrive more than once; delete them in the GenAuth console"
        )
    warnings.extend(
        f"webhook {webhook.webhook_id} is also named {name} and still sends to {webhook.url}: "
        f"`mfa-enforcer webhooks remove --id {webhook.webhook_id}` stops it"
        for webhook in others
    )
    for warning in warnings:
        click.echo(f"warning: {warning}", err=True)
    if as_json:
        click.echo(
            json.dumps(
                {
                    "outcome": done.outcome,
                    "previousUrl": done.previous_url,
                    "webhook": _describe(done.webhook, settings, policy),
                    "warnings": warnings,
                },
                indent=2,
            )
        )
        return
    click.echo(f"{done.outcome} webhook {done.webhook.webhook_id} ({done.webhook.name}) -> {done.webhook.url}")
    if done.previous_url:
        click.echo(f"  moved from {done.previous_url}: GenAuth no longer sends there")
    click.echo(f"  content type {JSON_CONTENT_TYPE}; request key: the first value of GENAUTH_WEBHOOK_SECRET")
    click.echo(f"  events: {', '.join(done.webhook.events)}")
    click.echo(f"Check it end to end with: mfa-enforcer webhooks test --url {url}")


def _url_warnings(client: GenAuthClient, url: str) -> list[str]:
    warnings: list[str] = []
    if urlsplit(url).scheme != "https":
        warnings.append(f"{url} is not HTTPS: GenAuth would send the webhook secret and user data in clear")
    if urlsplit(url).path != WEBHOOK_PATH:
        warnings.append(f"the service receives webhooks at {WEBHOOK_PATH}; {url} has another path")
    status = client.probe(url)
    if status is None:
        warnings.append(f"{url} is unreachable from here; if GenAuth cannot reach it either, no event will arrive")
    elif status == 404 or status >= 500:
        warnings.append(f"{url} answers HTTP {status} to a GET; is the service running at that address?")
    return warnings


@webhooks.command(name="list")
@click.option("--all", "show_all", is_flag=True, help="Every webhook of the user pool, not only ours.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def list_command(show_all: bool, as_json: bool) -> None:
    """Show our webhooks (named mfa-enforcer or sending to /webhooks/genauth) and whether each is right."""
    settings = settings_or_exit(logs=False, role="worker")  # the webhook secret is optional here
    policy = load_policy(settings.policy_file)
    with closing(Services(settings).genauth()) as client:
        found = list_webhooks(client)
        shown = [webhook for webhook in found if show_all or is_managed(webhook)]
        described = [{**_describe(webhook, settings, policy), **_deliveries(client, webhook)} for webhook in shown]
    if as_json:
        click.echo(json.dumps({"webhooks": described}, indent=2))
        return
    if not described:
        click.echo("no webhook sends to this service yet: run `mfa-enforcer webhooks subscribe --url …`")
        return
    for item in described:
        state = "ok" if not item["problems"] else "; ".join(item["problems"])
        click.echo(f"{item['webhookId']}  {item['name']}  {item['url']}")
        click.echo(f"  {'enabled' if item['enabled'] else 'DISABLED'}, {item['contentType']}, secret {item['secret']}")
        click.echo(f"  events: {', '.join(item['events'])}")
        click.echo(f"  state: {state}")
        click.echo(f"  deliveries: {_delivery_text(item['deliveries'])}")


def _deliveries(client: GenAuthClient, webhook: Webhook) -> dict[str, Any]:
    """GenAuth's latest delivery results for the webhook; unknown (with why) if the log cannot be read."""
    try:
        log = deliveries(client, webhook.webhook_id)
    except ServiceError as error:
        return {"deliveries": {"error": f"GenAuth's delivery log could not be read: {error}"}}
    return {
        "deliveries": {
            "logged": log.logged,
            "lastSuccess": log.last_success.as_json() if log.last_success else None,
            "lastFailure": log.last_failure.as_json() if log.last_failure else None,
        }
    }


def _delivery_text(summary: dict[str, Any]) -> str:
    if "error" in summary:
        return str(summary["error"])
    if not summary["logged"]:
        return "none logged by GenAuth yet"

    def one(entry: dict[str, Any] | None) -> str:
        if entry is None:
            return "none"
        status = f" HTTP {entry['status']}" if entry["status"] is not None else ""
        error = f": {entry['error']}" if entry.get("error") else ""
        return f"{entry['at'] or '?'} {entry['event'] or '?'}{status}{error}"

    return f"last success {one(summary['lastSuccess'])}; last failure {one(summary['lastFailure'])}"


@webhooks.command(name="remove")
@click.option("--id", "webhook_id", metavar="WEBHOOK_ID", help="Remove this webhook.")
@click.option("--url", help="Remove our webhook with this URL.")
@click.option("--name", default=WEBHOOK_NAME, show_default=True, help="Remove the webhook with this name.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def remove_command(webhook_id: str | None, url: str | None, name: str, as_json: bool) -> None:
    """Delete our GenAuth webhook: GenAuth stops sending events to the service."""
    settings = settings_or_exit(logs=False, role="worker")
    with closing(Services(settings).genauth()) as client:
        found = list_webhooks(client)
        if webhook_id is not None:
            chosen = [webhook for webhook in found if webhook.webhook_id == webhook_id]
        elif url is not None:
            chosen = [
                webhook for webhook in found if webhook.url == url and (is_managed(webhook) or webhook.name == name)
            ]
        else:
            chosen = [webhook for webhook in found if webhook.name == name]
        if not chosen:
            raise click.ClickException("no such webhook of ours: `mfa-enforcer webhooks list --all` shows them all")
        if len(chosen) > 1:
            listed = ", ".join(f"{webhook.webhook_id} ({webhook.url})" for webhook in chosen)
            raise click.UsageError(f"several webhooks match ({listed}); say which with --id")
        delete_webhooks(client, [chosen[0].webhook_id])
    removed = chosen[0]
    if as_json:
        click.echo(json.dumps({"removed": {"webhookId": removed.webhook_id, "name": removed.name, "url": removed.url}}))
        return
    click.echo(f"removed webhook {removed.webhook_id} ({removed.name}) -> {removed.url}: GenAuth no longer sends there")


def _describe(webhook: Webhook, settings: Settings, policy: Policy) -> dict[str, Any]:
    """The webhook as ``list`` shows it, with what is wrong for this service (never the secret itself)."""
    secrets = settings.webhook.secrets
    if webhook.secret is None:
        key_state = "not shown by GenAuth"
    elif not secrets:
        key_state = "not checked (GENAUTH_WEBHOOK_SECRET is not set here)"
    elif webhook.secret == secrets[0]:
        key_state = "current"
    elif webhook.secret in secrets:
        key_state = "previous (rotating: run subscribe to move it to the current one)"
    else:
        key_state = "UNKNOWN to this service"
    wanted = events_for(policy)
    missing = [event for event in wanted if event not in webhook.events]
    problems = []
    if not webhook.enabled:
        problems.append("disabled")
    if webhook.content_type != JSON_CONTENT_TYPE:
        problems.append(f"content type {webhook.content_type} (we ask for {JSON_CONTENT_TYPE})")
    if missing:
        problems.append(f"missing events {', '.join(missing)}")
    if key_state.startswith("UNKNOWN"):
        problems.append("its secret is not in GENAUTH_WEBHOOK_SECRET: deliveries are refused with 401")
    return {
        "webhookId": webhook.webhook_id,
        "name": webhook.name,
        "url": webhook.url,
        "enabled": webhook.enabled,
        "contentType": webhook.content_type,
        "events": list(webhook.events),
        "missingEvents": missing,
        "extraEvents": [event for event in webhook.events if event not in wanted],
        "secret": key_state,
        "problems": problems,
        "updatedAt": webhook.updated_at,
    }


@webhooks.command(name="test")
@click.option("--url", help="Which of our webhooks to test (needed when there are several).")
@click.option("--wait", default=10.0, show_default=True, type=click.FloatRange(0, 300), help="Seconds to wait for it.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def test_command(url: str | None, wait: float, as_json: bool) -> None:
    """Make GenAuth send its test event; report whether it arrived and the service accepted it."""
    settings = settings_or_exit(logs=False, role="worker")  # GenAuth and the service's database
    with closing(Services(settings).genauth()) as client, disposing(create_engine(settings.database_url)) as engine:
        try:
            ensure_schema(engine, migrate=settings.migrate_on_start)
            webhook = _choose(list_webhooks(client), url)
            before = _last_test_event_id(engine)
            triggered_at = time.time()
            response = trigger_webhook(client, webhook.webhook_id)
            recorded = _wait_for_test_event(engine, after_id=before, wait=wait)
        except sa.exc.SQLAlchemyError as error:
            raise click.ClickException(f"{failure_message(error)} (it must be the service's database)") from error
    answered = isinstance(response, dict) and response.get("success") is True
    accepted = recorded is not None
    verdict = _verdict(accepted, answered, response)
    if as_json:
        click.echo(
            json.dumps(
                {
                    "webhookId": webhook.webhook_id,
                    "url": webhook.url,
                    "triggeredAt": triggered_at,
                    "response": response,
                    "recorded": recorded,
                    "accepted": accepted,
                    "verdict": verdict,
                },
                indent=2,
            )
        )
    else:
        click.echo(f"triggered GenAuth's test delivery of webhook {webhook.webhook_id} -> {webhook.url}")
        click.echo(f"  the service answered: {json.dumps(response)}")
        if recorded is not None:
            click.echo(f"  recorded as event #{recorded['id']} ({recorded['outcome']})")
        click.echo(verdict)
    if not accepted:
        raise SystemExit(1)


def _choose(found: list[Webhook], url: str | None) -> Webhook:
    candidates = [webhook for webhook in found if (webhook.url == url if url else is_managed(webhook))]
    if not candidates:
        where = f"with URL {url}" if url else "of ours"
        raise click.ClickException(f"no webhook {where}: run `mfa-enforcer webhooks subscribe --url …` first")
    if len(candidates) > 1 and not url:
        urls = ", ".join(webhook.url for webhook in candidates)
        raise click.UsageError(f"several webhooks are ours ({urls}); say which with --url")
    return candidates[0]


def _last_test_event_id(engine: sa.Engine) -> int:
    statement = sa.select(sa.func.max(events.c.id)).where(events.c.event_name == TEST_EVENT)
    with engine.connect() as connection:
        return int(connection.execute(statement).scalar() or 0)


def _wait_for_test_event(engine: sa.Engine, *, after_id: int, wait: float) -> dict[str, Any] | None:
    """The first ``test`` event recorded after ``after_id``, polling for up to ``wait`` seconds."""
    statement = (
        sa.select(events.c.id, events.c.received_at, events.c.outcome, events.c.userpool_id)
        .where(events.c.event_name == TEST_EVENT, events.c.id > after_id)
        .order_by(events.c.id)
        .limit(1)
    )
    deadline = time.monotonic() + wait
    while True:
        with engine.connect() as connection:
            row = connection.execute(statement).first()
        if row is not None:
            return dict(row._mapping)
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.2)


def _verdict(accepted: bool, answered: bool, response: Any) -> str:
    if accepted:
        return "accepted: the test event arrived and the service recorded it"
    if isinstance(response, dict) and response.get("status") == 401:
        return "REJECTED: the service refused the secret; run `mfa-enforcer webhooks subscribe` to set it"
    if answered:
        return "NOT RECORDED: the service answered, but not in this DATABASE_URL; is it the service's database?"
    if response is None:
        return "DID NOT ARRIVE: GenAuth got no answer from the URL (unreachable from GenAuth, or timed out)"
    return "REJECTED: the service did not accept the test event (see its answer above)"


@webhooks.command(name="recover")
@click.option("--since", type=MOMENT, help="Read the log back to this time instead of where the last read stopped.")
@click.option("--dry-run", is_flag=True, help="Count what would be recovered; record nothing, keep the position.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def recover_command(since: float | None, dry_run: bool, as_json: bool) -> None:
    """Read GenAuth's delivery log of our webhook and take in the deliveries the service missed (what the worker
    does every ENFORCER_RECOVER_INTERVAL seconds)."""
    services = services_or_exit(role="worker")  # GenAuth and the service's database
    engine = services.database
    with closing(services.genauth()) as client, disposing(engine):
        done = recover_gap(
            engine,
            client,
            settings=services.settings,
            digest_key=deployment_key(engine),
            policy=load_policy(services.settings.policy_file),
            since=since,
            dry_run=dry_run,
        )
    if as_json:
        click.echo(json.dumps({"dryRun": dry_run, **done.as_json()}, indent=2))
    else:
        if done.busy:
            click.echo(f"{done.busy} webhook log(s) skipped: another process is reading them now")
        if done.webhooks == 0 and not done.busy:
            click.echo("no webhook of ours in GenAuth: nothing to read (`mfa-enforcer webhooks subscribe --url …`)")
        if done.webhooks == 0:
            return
        verb = "would recover" if dry_run else "recovered"
        click.echo(
            f"read {done.read} new log entr{'y' if done.read == 1 else 'ies'} of {done.webhooks} webhook(s): "
            f"{verb} {done.recovered}, {done.duplicates} already recorded, {done.skipped_invalid} invalid (skipped)"
        )
        click.echo(f"  newest entry read: {show_time(done.last_position)}")
    if done.capped:
        click.echo(
            "warning: the page cap stopped the read; older entries were not read (a reconcile finds them)", err=True
        )
