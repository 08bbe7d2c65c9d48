"""The composition root (service/services.py): one rate limiter and one circuit breaker per process, shared by
every GenAuth client it makes, and workers that differ only in their lease owner and whether they sweep."""

from __future__ import annotations

from dataclasses import replace

import sqlalchemy as sa

from service.policy import Policy
from service.services import Services
from service.settings import GenAuthSettings, Settings, WebhookSettings, WorkerSettings

SETTINGS = Settings(GenAuthSettings(host="http://127.0.0.1:9"), WebhookSettings(), WorkerSettings(threads=3))


def test_every_client_of_a_process_shares_its_limiter_and_breaker():
    services = Services(SETTINGS, sa.create_engine("sqlite://"))
    workers = services.workers(lambda: Policy(rules=()))
    clients = [services.genauth(), services.explainer(lambda: Policy(rules=())).client]
    clients += [worker.reconciler.client for worker in workers]
    try:
        assert len({id(client) for client in clients}) == len(clients), "one client (one session) each"
        assert {id(client.limiter) for client in clients} == {id(services.limiter)}
        assert {id(client.breaker) for client in clients} == {id(services.breaker)}
    finally:
        for client in clients:
            client.close()
        services.close()


def test_workers_have_their_own_lease_owners_and_only_the_first_sweeps():
    services = Services(replace(SETTINGS, mode="audit"), sa.create_engine("sqlite://"))
    workers = services.workers(lambda: Policy(rules=()))
    try:
        assert len({worker.owner for worker in workers}) == 3
        assert [worker.sweeper is not None for worker in workers] == [True, False, False]
        assert [worker.pruner is not None for worker in workers] == [True, False, False]
        assert all(worker.reconciler.force_audit for worker in workers)
    finally:
        for worker in workers:
            worker.reconciler.client.close()
        services.close()
