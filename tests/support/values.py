"""The repository root and the fixed secrets the suite's settings and subprocesses share."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
WEBHOOK_SECRET = "test-webhook-secret-0123456789"
PREVIOUS_SECRET = "previous-webhook-secret-9876543210"
"""A second accepted webhook secret, as during a rotation."""
ADMIN_TOKEN = "test-admin-token-abcdefghijklmnop"
