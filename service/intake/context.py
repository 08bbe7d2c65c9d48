"""What the views need from the application, stored once on the Flask app by ``create_app``."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from flask import current_app

from service.genauth.client import GenAuthClient
from service.policy_source import PolicySource
from service.settings import Settings
from service.store.inbox import Inbox

EXTENSION = "mfa_enforcer"


@dataclass
class Runtime:
    """The collaborators of one running service."""

    settings: Settings
    engine: sa.Engine
    policies: PolicySource
    inbox: Inbox
    """Records deliveries; concurrent ones share a commit."""
    admin_client: GenAuthClient | None = None
    """The GenAuth client of the admin API's explain, made on first use."""


def runtime() -> Runtime:
    value = current_app.extensions[EXTENSION]
    assert isinstance(value, Runtime)
    return value
