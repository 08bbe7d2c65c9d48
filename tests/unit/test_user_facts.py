"""``UserFacts`` takes the user record's fields and the facts the conditions registry names, and nothing else: a
misspelled fact would otherwise be stored under its wrong name and read back as "not fetched"."""

from __future__ import annotations

from dataclasses import replace

import pytest

from service.policy import Department, UserFacts
from service.policy.conditions import CONDITIONS, FACTS

FINANCE = Department(department_id="dep-fin", code="finance", name="Finance")


def test_a_misspelled_fact_raises_type_error_naming_it():
    with pytest.raises(TypeError, match="'departmnets'") as raised:
        UserFacts("u-1", email="li.na@acme.example", departmnets=(FINANCE,))
    assert "departments" in str(raised.value)  # the facts it does know, to pick the right spelling from


def test_every_unknown_name_is_named():
    with pytest.raises(TypeError) as raised:
        UserFacts("u-1", grups=(), rolez=())
    assert "'grups'" in str(raised.value) and "'rolez'" in str(raised.value)


def test_every_fact_of_the_registry_and_every_record_field_is_taken():
    facts = UserFacts("u-1", email="li.na@acme.example", status="Activated", **{fact: () for fact in FACTS})
    assert facts.email == "li.na@acme.example" and facts.status == "Activated"
    assert {fact: facts.fetched[fact] for fact in FACTS} == dict.fromkeys(FACTS, ())
    assert set(FACTS) == {str(c.fact) for c in CONDITIONS if c.fact is not None}


def test_a_known_fact_that_was_not_fetched_reads_as_none():
    facts = UserFacts("u-1", departments=(FINANCE,))
    assert facts.departments == (FINANCE,)
    assert facts.groups is None


def test_replace_keeps_the_fetched_facts():
    """``dataclasses.replace`` passes ``fetched`` on: the copy keeps the facts, it does not take a fact named
    "fetched"."""
    facts = replace(UserFacts("u-1", email="a@acme.example", departments=(FINANCE,)), email="b@acme.example")
    assert (facts.email, facts.departments, set(facts.fetched)) == ("b@acme.example", (FINANCE,), {"departments"})
