"""`MfaSettings`: the layers above a user's trigger data that decide whether GenAuth challenges them: the
factors enabled for the whole pool, and applications that override the pool with their own factors.

Applications live here because the emulator models them only for their MFA settings (`get-application` is
served so a client can see whether an app uses its own security rules). `state.EmulatorState` owns one and
calls it with its lock held; it emits `application:mfa:enabled|disabled` when an app's factors change.

What the official SDKs say (read in `authing-node-sdk` 4.0.1 on npm, `src/ManagementClient.ts` and
`src/models/*.ts`; `GenAuth-Official/genauth-node-sdk` at ef9b64d, same files; genauth-py 5.1.0
`ManagementClient.py`; genauth-docs `docs/reference/sdk/node/management/管理安全配置/get-global-mfa-settings.md`):

* `GET get-global-mfa-settings`, no parameters → `data: {enabledFactors: [...]}` (`MFASettingsRespDto` /
  `MFASettingsDto`; factors `OTP | SMS | EMAIL | FACE`). The reference page's sample writes the array as a
  JSON string, a doc-generator artefact; the model types it as an array.
* `POST update-global-mfa-settings` `{enabledFactors}` → the same shape. The SDK comments say "pass the factors
  to enable" (4.0.1) and "to modify" (GenAuth); emulated as *the list becomes the pool's enabled set*.
* `POST disable-global-mfa-settings` `{disableFactors}` (sic; `MFADisableSettingsDto`, `closeGlobalMfaSettings`)
  → the same shape; the listed factors are switched off.
* `POST update-application-mfa-settings` `{appId, enabledFactors?, disabledFactors?}` → `MFASettingsRespDto`
  (`UpdateApplicationMfaSettingsDto`). Emulated: the app gets its own factor set, starting from the pool's, and
  `customSecurityEnabled` becomes true; the answer is the app's effective factors.
* `ApplicationDto.customSecurityEnabled`: "customise this application's security rules; by default the global
  security configuration applies". An app without it inherits the pool's factors.
* `GET get-mfa-trigger-data` `{appId, userId, userIdType}` → `GetMapInfoRespDto`, the `get-mfa-status` shape.
  Emulated: the user's trigger data with `applicationMfa` narrowed to the factors effective in that app (what
  the app would challenge); an unknown app is statusCode 404, apiCode 2011 (GenAuth's "application not found").
* No endpoint returns an app's factors by themselves: `get-mfa-trigger-data` is the only app-level MFA read.
* The per-identity-source switch (genauth-docs `docs/guides/security/mfa/policy-based-mfa-configuration.md`:
  off means users who sign in through that source skip MFA in every app) has no management API: the SDKs'
  identity-source models (`ExtIdpDetail`, `ExtIdpConnDetail`, `ExtIdpDto`), `SecuritySettingsDto` and
  `ApplicationDto` carry no MFA field, and no endpoint name mentions it. The emulator does not model it.

The emulator's default pool enables SMS, EMAIL and OTP (FACE needs a face-recognition plan): what a pool that
uses the common factors looks like, so enforcement is effective until a test switches a factor off.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

#: Every MFA factor, in the order the SDK enums list them.
FACTORS = ("OTP", "SMS", "EMAIL", "FACE")
DEFAULT_POOL_FACTORS = ("SMS", "EMAIL", "OTP")
APP_NOT_FOUND_API_CODE = 2011
ENABLED_EVENT = "application:mfa:enabled"
DISABLED_EVENT = "application:mfa:disabled"


class UnknownApplicationError(LookupError):
    """No application has this id; the API answers statusCode 404 with apiCode 2011."""


@dataclass
class ApplicationRecord:
    """A self-built application: its identity and, once it customises security, its own MFA factors."""

    id: str
    name: str
    identifier: str
    created_at: str
    custom_security_enabled: bool = False
    factors: set[str] = field(default_factory=set)


def checked_factors(values: Iterable[Any], name: str = "factors") -> set[str]:
    """The factors named in `values`; `ValueError` names the first that is not a factor."""
    factors: set[str] = set()
    for value in values:
        if value not in FACTORS:
            raise ValueError(f"{name} must be a list of {', '.join(FACTORS)}, not {value!r}")
        factors.add(value)
    return factors


def ordered(factors: Iterable[str]) -> list[str]:
    """The factors in the SDK enum's order, so answers do not depend on set order."""
    chosen = set(factors)
    return [factor for factor in FACTORS if factor in chosen]


class MfaSettings:
    """The pool's enabled factors and the applications, oldest first."""

    def __init__(self) -> None:
        self.pool_factors: set[str] = set(DEFAULT_POOL_FACTORS)
        self._apps: dict[str, ApplicationRecord] = {}

    def add_app(self, record: ApplicationRecord) -> None:
        """Add an application; its id must be new."""
        if record.id in self._apps:
            raise ValueError(f"application {record.id!r} exists")
        self._apps[record.id] = record

    def app(self, app_id: str) -> ApplicationRecord:
        """The application with this id; `UnknownApplicationError` if none."""
        record = self._apps.get(app_id)
        if record is None:
            raise UnknownApplicationError(app_id)
        return record

    def apps(self) -> list[ApplicationRecord]:
        """Every application, oldest first."""
        return list(self._apps.values())

    def effective(self, app_id: str) -> set[str]:
        """The factors the app challenges: its own when it customises security, else the pool's."""
        record = self.app(app_id)
        return set(record.factors) if record.custom_security_enabled else set(self.pool_factors)

    def update_app(self, app_id: str, enabled: set[str], disabled: set[str]) -> tuple[set[str], set[str]]:
        """Give the app its own factors (from its effective ones, plus `enabled`, minus `disabled`).

        Returns the effective factors before and after.
        """
        before = self.effective(app_id)
        record = self.app(app_id)
        record.factors = (before | enabled) - disabled
        record.custom_security_enabled = True
        return before, set(record.factors)

    def inherit(self, app_id: str) -> tuple[set[str], set[str]]:
        """Make the app use the pool's factors again; returns the effective factors before and after."""
        before = self.effective(app_id)
        record = self.app(app_id)
        record.custom_security_enabled = False
        record.factors = set()
        return before, set(self.pool_factors)


def factor_events(app_id: str, before: set[str], after: set[str]) -> list[tuple[str, dict[str, Any]]]:
    """The `application:mfa:*` webhook bodies for a change of an app's factors, one per factor."""
    events = [(ENABLED_EVENT, factor) for factor in ordered(after - before)]
    events += [(DISABLED_EVENT, factor) for factor in ordered(before - after)]
    return [(name, {"eventName": name, "data": {"type": factor, "applicationId": app_id}}) for name, factor in events]


def application_dto(record: ApplicationRecord, userpool_id: str) -> dict[str, Any]:
    """`ApplicationDto` with every required field (plausible defaults for what the emulator does not model)."""
    return {
        "appId": record.id,
        "appIdentifier": record.identifier,
        "appName": record.name,
        "appLogo": "https://files.authing.co/authing-console/default-app-logo.png",
        "appDescription": "",
        "appType": "web",
        "userPoolId": userpool_id,
        "isIntegrateApp": False,
        "defaultProtocol": "oidc",
        "redirectUris": [],
        "logoutRedirectUris": [],
        "initLoginUri": "",
        "ssoEnabled": False,
        "loginConfig": {
            "mergeLoginAndRegisterPage": False,
            "enabledBasicLoginMethods": ["PHONE_CODE", "EMAIL_PASSWORD", "USERNAME_PASSWORD"],
            "defaultLoginMethod": {
                "connectionType": "PASSWORD",
                "qrcodeType": "SELF_BUILT_APP",
                "qrcodeExtIdpConnId": "",
                "adExtIdpConnId": "",
                "ldapExtIdpConnId": "",
            },
            "enabledExtIdpConns": [],
            "showAuthorizationPage": False,
        },
        "registerConfig": {"enabledBasicRegisterMethods": ["EMAIL_PASSWORD"], "defaultRegisterMethod": "PASSWORD"},
        "brandingConfig": {
            "customCSSEnabled": False,
            "guardVersion": "Advanced",
            "showChangeLanguageButton": True,
            "defaultLanguage": "zh-CN",
            "showForgetPasswordButton": True,
            "showEnterpriseConnections": True,
            "showSocialConnections": True,
            "showAgreement": False,
            "agreements": [],
        },
        "oidcConfig": {},
        "samlProviderEnabled": False,
        "oauthProviderEnabled": False,
        "casProviderEnabled": False,
        "customBrandingEnabled": False,
        "customSecurityEnabled": record.custom_security_enabled,
    }
