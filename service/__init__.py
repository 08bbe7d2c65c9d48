"""mfa-enforcer: keeps GenAuth user pools compliant with MFA policy.

GenAuth webhooks are hints that a user may need looking at; the worker reads the user's current state from
GenAuth, evaluates the policy rules and enforces the required MFA factors through `set-mfa-status`.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("mfa-enforcer")
    """The installed package's version: what ``mfa-enforcer --version`` prints and every decision records."""
except PackageNotFoundError:  # run from a source tree that was never installed
    __version__ = "unknown"
