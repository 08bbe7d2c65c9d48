"""mfa-enforcer: keeps GenAuth user pools compliant with MFA policy.

GenAuth webhooks are hints that a user may need looking at; the worker reads the user's current state from
GenAuth, evaluates the policy rules and enforces the required MFA factors through `set-mfa-status`.
"""
