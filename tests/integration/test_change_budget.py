"""ENFORCER_CHANGE_BUDGET: how it is spelled, and the one budget the database keeps for every process.

The budget is counted in ``change_slots`` under a lock (a row lock on PostgreSQL, the write lock on SQLite):
many threads on their own engines, as many processes would, never take more slots than the limit, and the
window slides.
"""

from __future__ import annotations

import threading

import pytest

from service.errors import ConfigurationError
from service.settings import ChangeBudget, load_settings, parse_change_budget
from service.store import budget
from service.store.engine import create_engine, prepare_database

REQUIRED = {
    "GENAUTH_ACCESS_KEY_ID": "pool-id",
    "GENAUTH_ACCESS_KEY_SECRET": "pool-secret",
    "GENAUTH_WEBHOOK_SECRET": "hook-secret-0123456789abcdef",
}


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("500/hour", ChangeBudget(count=500, window=3600.0)),
        (" 20 / day ", ChangeBudget(count=20, window=86400.0)),
        ("5%/hour", ChangeBudget(percent=5.0, window=3600.0)),
        ("0.5%/DAY", ChangeBudget(percent=0.5, window=86400.0)),
        ("off", ChangeBudget()),
    ],
)
def test_budget_strings_that_parse(raw, expected):
    assert parse_change_budget(raw) == expected
    assert parse_change_budget(str(expected)) == expected


def test_the_default_is_500_an_hour():
    assert str(load_settings(REQUIRED).worker.change_budget) == "500/hour"


@pytest.mark.parametrize("raw", ["500", "500/week", "0/hour", "-3/hour", "150%/hour", "0%/day", "five/hour", "%/hour"])
def test_a_budget_that_does_not_parse_stops_startup_naming_the_variable(raw):
    with pytest.raises(ConfigurationError) as caught:
        load_settings({**REQUIRED, "ENFORCER_CHANGE_BUDGET": raw})
    assert f"ENFORCER_CHANGE_BUDGET={raw!r} is not a budget: N/hour, N/day, P%/hour, P%/day or off" in str(caught.value)


def test_a_share_of_the_users_in_scope_is_at_least_one():
    assert ChangeBudget(percent=5.0).limit(400) == 20
    assert ChangeBudget(percent=5.0).limit(0) == 1
    assert ChangeBudget(count=7).limit(10**6) == 7
    assert ChangeBudget().limit(10) is None


@pytest.fixture
def store(database_url):
    engine = create_engine(database_url)
    prepare_database(engine)
    yield engine
    engine.dispose()


def test_many_workers_at_once_take_exactly_the_budget(store, database_url):
    """Eight threads on eight engines (eight processes, as far as the database can tell) try 40 writes against
    a budget of 5: exactly 5 are taken."""
    five = ChangeBudget(count=5)
    taken: list[bool] = []
    lock = threading.Lock()
    start = threading.Barrier(8)

    def writer(index: int) -> None:
        engine = create_engine(database_url)
        try:
            start.wait()
            for number in range(5):
                slot = budget.take_slot(engine, five, "pool", f"u{index}-{number}", now=1000.0 + number)
                with lock:
                    taken.append(slot.taken)
        finally:
            engine.dispose()

    threads = [threading.Thread(target=writer, args=(index,)) for index in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(taken) == 40 and taken.count(True) == 5
    assert budget.used_slots(store, five, now=1010.0) == budget.Slot(taken=False, used=5, limit=5)


def test_the_window_slides(store):
    """Slots leave the count an hour after they were taken; an off budget never refuses."""
    two = ChangeBudget(count=2)
    assert budget.take_slot(store, two, "pool", "a", now=0.0).taken
    assert budget.take_slot(store, two, "pool", "b", now=1800.0).taken
    refused = budget.take_slot(store, two, "pool", "c", now=3599.0)
    assert (refused.taken, refused.used, refused.limit) == (False, 2, 2)
    assert budget.take_slot(store, two, "pool", "c", now=3600.5).taken
    assert not budget.take_slot(store, two, "pool", "d", now=3700.0).taken
    assert budget.take_slot(store, ChangeBudget(), "pool", "e", now=3700.0).taken
