"""The MFA settings above a user's trigger data, read (never written) through ``GenAuthClient``.

Whether GenAuth challenges a user also depends on the factors enabled for the pool and, for an application
that customises its security rules, on the application's own (docs/genauth.md §5.3). The service reads:

- ``get-global-mfa-settings``: the pool's ``enabledFactors`` (§5.3.1);
- ``get-application``: whether the app customises its security (``customSecurityEnabled``); one that does
  not uses the pool's factors (§5.3.2);
- ``get-mfa-trigger-data``: one user's trigger data as one application sees it, the only app-level MFA read
  (no endpoint returns an app's factors by themselves).

``service.enforcement.effective`` caches the first two per process; the third is per user.
"""

from __future__ import annotations

import json
from typing import Any

from service.genauth.client import GenAuthClient, Json


def pool_factors(client: GenAuthClient) -> frozenset[str] | None:
    """The factors enabled for the whole pool (``enabledFactors``; a JSON string, as the reference pages
    render it, is read too); None when the answer has no such list."""
    endpoint = "/api/v3/get-global-mfa-settings"
    data = client.call("GET", endpoint)
    factors: Any = data.get("enabledFactors") if isinstance(data, dict) else None
    if isinstance(factors, str):
        try:
            factors = json.loads(factors)
        except ValueError:
            factors = None
    if not isinstance(factors, list):
        return None
    return frozenset(str(factor).upper() for factor in factors if isinstance(factor, str))


def application_customises_security(client: GenAuthClient, app_id: str) -> bool:
    """Whether the application has its own security rules (``customSecurityEnabled``); an unknown app is
    ``GenAuthNotFoundError`` (apiCode 2011), a permanent refusal."""
    data = client.call("GET", "/api/v3/get-application", params={"appId": app_id})
    return isinstance(data, dict) and data.get("customSecurityEnabled") is True


def mfa_trigger_data(client: GenAuthClient, app_id: str, user_id: str) -> Json:
    """The user's trigger data as the application sees it (``GetMapInfoRespDto``, the ``get-mfa-status``
    shape)."""
    params = {"appId": app_id, "userId": user_id, "userIdType": "user_id"}
    data = client.call("GET", "/api/v3/get-mfa-trigger-data", params=params)
    return data if isinstance(data, dict) else {}
