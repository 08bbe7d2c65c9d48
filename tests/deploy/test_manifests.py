"""The manifest files in deploy/k8s one by one: each is part of a build, valid, and free of credentials."""

from __future__ import annotations

from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from sqlalchemy.engine import make_url

from tests.support.deploy import (
    K8S,
    KUBERNETES_VERSION,
    NAMESPACE,
    PLACEHOLDER,
    SECRET_NAME,
    SECRET_TEMPLATE,
    load_documents,
)

KUSTOMIZATIONS = sorted(K8S.rglob("kustomization.yaml"))
REQUIRED_SECRET_KEYS = {"GENAUTH_ACCESS_KEY_ID", "GENAUTH_ACCESS_KEY_SECRET", "GENAUTH_WEBHOOK_SECRET", "DATABASE_URL"}
OPTIONAL_SECRET_KEYS = {"ENFORCER_ADMIN_TOKEN"}


def _kustomization(path: Path) -> dict:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _referenced(role: str) -> set[Path]:
    """Files the kustomizations name as resources, patches or generator inputs."""
    found = set()
    for path in KUSTOMIZATIONS:
        directory = path.parent
        kustomization = _kustomization(path)
        if role == "resources":
            found |= {(directory / entry).resolve() for entry in kustomization.get("resources", [])}
        elif role == "patches":
            found |= {(directory / entry["path"]).resolve() for entry in kustomization.get("patches", [])}
        elif role == "generated":
            for generator in kustomization.get("configMapGenerator", []):
                found |= {(directory / entry.rpartition("=")[2]).resolve() for entry in generator.get("files", [])}
    return found


RESOURCE_FILES = sorted(path for path in _referenced("resources") if path.is_file())
MANIFEST_FILES = [*RESOURCE_FILES, SECRET_TEMPLATE.resolve()]


def test_the_tree_has_a_base_and_its_overlays():
    """deploy/k8s holds the base and the single-node, production and listen overlays, each a kustomization."""
    directories = {path.parent.relative_to(K8S).as_posix() for path in KUSTOMIZATIONS}
    assert directories == {"base", "overlays/single-node", "overlays/production", "overlays/listen"}


def test_every_yaml_file_is_a_kustomization_a_resource_a_patch_a_generator_input_or_the_secret_template():
    """No file in deploy/k8s is forgotten: each one is used by a build, or is the Secret template."""
    accounted = (
        {path.resolve() for path in KUSTOMIZATIONS}
        | _referenced("resources")
        | _referenced("patches")
        | _referenced("generated")
        | {SECRET_TEMPLATE.resolve()}
    )
    files = {path.resolve() for path in K8S.rglob("*") if path.is_file()}
    assert files - accounted == set()
    assert {path for path in accounted if not path.exists()} == set()


def test_the_secret_template_is_not_part_of_any_build():
    """An apply must never overwrite the real Secret with the template's placeholders."""
    assert SECRET_TEMPLATE.resolve() not in _referenced("resources")
    for path in RESOURCE_FILES:
        assert all(doc["kind"] != "Secret" for doc in load_documents(path)), path


@pytest.mark.parametrize("path", MANIFEST_FILES, ids=lambda path: path.relative_to(K8S).as_posix())
def test_manifest_file_validates_against_the_kubernetes_schema(path):
    """Every document in every manifest file is a valid object for Kubernetes 1.30 (strict: no unknown fields)."""
    documents = load_documents(path)
    assert documents
    for document in documents:
        kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)


def test_schema_validation_is_strict_enough_to_catch_a_misspelt_field():
    """The validator used above rejects an unknown field, so a typo in a manifest cannot pass unnoticed."""
    misspelt = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}, "dta": {"a": "b"}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(misspelt, KUBERNETES_VERSION, strict=True)


def test_secret_template_holds_placeholders_only():
    """The Secret template names every key the pods read, each with a `replace-me` placeholder, nothing real."""
    (secret,) = load_documents(SECRET_TEMPLATE)
    assert secret["kind"] == "Secret"
    assert secret["metadata"]["name"] == SECRET_NAME
    assert secret["metadata"]["namespace"] == NAMESPACE
    assert "data" not in secret  # base64 would hide whatever is in it from review
    values = dict(secret["stringData"])
    assert set(values) == REQUIRED_SECRET_KEYS | OPTIONAL_SECRET_KEYS
    database_url = make_url(values.pop("DATABASE_URL"))
    assert database_url.password == PLACEHOLDER
    assert database_url.get_backend_name() == "postgresql"
    assert values == dict.fromkeys(values, PLACEHOLDER)
