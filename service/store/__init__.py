"""Durable state: the delivery inbox, the work queue and the decision records (SQLAlchemy Core).

SQLite and PostgreSQL run the same code; only ``engine.py`` and the upsert/claim helpers know which is which.
"""
