"""Tests of the deployment artefacts: deploy/Dockerfile, .dockerignore and the kustomize tree in deploy/k8s.

Everything here is static and offline: no Docker engine, no cluster. Manifests are validated against the
Kubernetes OpenAPI schemas bundled with ``kubernetes_validate`` and the overlays are rendered by
``tests/deploy/kustomize.py``.
"""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
OVERLAYS = K8S / "overlays"
SECRET_TEMPLATE = K8S / "secret.example.yaml"

KUBERNETES_VERSION = "1.30"
IMAGE = "ghcr.io/example/mfa-enforcer:0.1.0"
NAMESPACE = "mfa-enforcer"
SECRET_NAME = "mfa-enforcer"
UID = 10001
PLACEHOLDER = "replace-me"
