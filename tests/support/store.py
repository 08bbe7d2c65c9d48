"""Reading the store as tests need it: the work rows, and waiting for decisions or for the queue to drain."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from service.store.decisions import decisions_for_user
from service.store.tables import work
from tests.support.waiting import wait_until


def work_rows(engine: sa.Engine) -> list[dict[str, Any]]:
    with engine.connect() as connection:
        return [dict(row._mapping) for row in connection.execute(sa.select(work))]


def _count(engine: sa.Engine, *where: Any) -> int:
    with engine.connect() as connection:
        return int(connection.execute(sa.select(sa.func.count()).select_from(work).where(*where)).scalar_one())


def wait_for_decision(engine: sa.Engine, user_id: str, *, count: int = 1, timeout: float = 10.0) -> dict[str, Any]:
    """The user's latest decision once ``count`` exist (the worker runs in another thread or process)."""

    def enough() -> list[dict[str, Any]]:
        found = decisions_for_user(engine, user_id)
        return found if len(found) >= count else []

    return wait_until(enough, timeout=timeout, what=f"{count} decision(s) for {user_id}")[0]


def wait_for_empty_queue(engine: sa.Engine, timeout: float = 10.0) -> None:
    wait_until(lambda: _count(engine) == 0, timeout=timeout, what="the work queue to drain")


def drain(worker: Any, engine: sa.Engine, *, timeout: float = 10.0) -> None:
    """Run the worker until no row is pending (waiting out backoff delays) or dead."""

    def idle() -> bool:
        worker.run_until_idle()
        return _count(engine, work.c.state == "pending") == 0

    wait_until(idle, timeout=timeout, what="the work to drain", interval=0.01)
