"""Gap recovery run once from a test, as ``mfa-enforcer webhooks recover`` runs it (service.intake.recovery)."""

from __future__ import annotations

from contextlib import closing
from typing import Any

import sqlalchemy as sa

from service.genauth.client import GenAuthClient
from service.intake.recovery import Recovery, recover_gap
from service.policy.loading import load_policy
from service.settings import Settings
from service.store.keys import deployment_key


def recover_once(settings: Settings, engine: sa.Engine, **options: Any) -> Recovery:
    """One read of the delivery logs of our webhooks on ``engine``, with a client of its own; ``options`` as
    ``recover_gap`` takes them (``since``, ``dry_run``, ``max_pages``)."""
    with closing(GenAuthClient(settings.genauth)) as client:
        return recover_gap(
            engine,
            client,
            settings=settings,
            digest_key=deployment_key(engine),
            policy=load_policy(settings.policy_file),
            **options,
        )
