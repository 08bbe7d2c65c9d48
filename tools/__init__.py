"""Maintenance scripts run from the repository root (``make configuration``); not part of the service."""
