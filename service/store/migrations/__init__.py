"""Alembic migrations of the service schema; run by `mfa-enforcer db upgrade` (service.store.migrating)."""
