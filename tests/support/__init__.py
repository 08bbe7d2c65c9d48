"""What tests share, in one place: test modules import from here, never from each other or from a conftest.

- ``values``: the repository root and the secrets the suite's settings use;
- ``waiting``: ``wait_until``, the one way a test waits for something another thread or process does;
- ``serving``: ``serve_in_thread``, a real HTTP server on loopback that stops within a few milliseconds;
- ``live``: the service itself served that way, with or without its worker thread;
- ``processes``: the venv's commands as subprocesses (environment, free ports, readiness, stopping);
- ``factories``: work rows, a hand-moved clock;
- ``store``: reading and draining the work queue and the decisions;
- ``databases``: the migrated schema copied into fresh databases, and the PostgreSQL test schemas;
- ``metrics``: one sample of Prometheus text;
- ``emulator``: raw clients of the GenAuth emulator (management API, AK/SK signer) and a webhook receiver;
- ``deploy``: paths and names of the deployment artefacts, and deploy/k8s rendered by the real kustomize.

``tests/unit/test_test_support.py`` keeps it so: no test module imports another test module.
"""
