"""Reconciling one user: gather facts from GenAuth, evaluate the policy, merge and write the MFA factors.

This is the only code that changes GenAuth, and only the worker calls it (docs/architecture.md, principle 8).
"""
