"""A small kustomize-equivalent renderer, so the tests can check the deploy/k8s overlays offline.

``build(directory)`` returns the objects ``kubectl kustomize directory`` would print (order aside) for the
subset of kustomize that deploy/k8s uses. Anything outside that subset raises ``UnsupportedError`` rather than
rendering something subtly different from what a cluster would receive. Supported:

- ``resources``: YAML files (one or more documents) and directories holding a ``kustomization.yaml``;
- ``configMapGenerator`` with ``files`` and ``literals`` (``behavior`` create, merge or replace). Generated
  names get kustomize's content hash (the same algorithm, so names match ``kubectl kustomize``), and pod-spec
  references to them (volumes, ``envFrom``, ``configMapKeyRef``) are renamed to match;
- ``patches`` with ``path`` to a one-document strategic-merge patch aimed by kind and ``metadata.name``: maps
  merge, ``null`` removes a field, ``$patch: delete`` removes the object, the pod-spec lists below merge by
  their key (the patch's items first, then the rest, as kustomize orders them) and other lists are replaced;
- ``namespace``; ``labels`` (``pairs`` and ``includeTemplates``, not ``includeSelectors``); ``images``.

Within one kustomization the steps run in kustomize's order: resources, generators, patches, namespace,
labels, images. Generated names are hashed once, after the whole tree is built, as kustomize does.
Tests call ``build`` and the pod-spec helpers at the bottom.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
SUPPORTED_FIELDS = {
    "apiVersion",
    "kind",
    "resources",
    "configMapGenerator",
    "patches",
    "namespace",
    "labels",
    "images",
}
# Lists that strategic merge patches merge item by item in a pod spec, and the field that identifies an item.
MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "imagePullSecrets": "name",
    "topologySpreadConstraints": "topologyKey",
}
# Lists that merge by key in Kubernetes but whose key depends on where they sit (Service vs container ports).
UNSUPPORTED_PATCH_LISTS = {"ports"}
CLUSTER_SCOPED_KINDS = {
    "Namespace",
    "ClusterRole",
    "ClusterRoleBinding",
    "CustomResourceDefinition",
    "IngressClass",
    "PersistentVolume",
    "PriorityClass",
    "StorageClass",
}
KEEP_NAME = "keep-name"  # a generator with options.disableNameSuffixHash
GENERATED = "_generated"  # marks a generated ConfigMap until its name is hashed; never in the output


class UnsupportedError(Exception):
    """The kustomization uses a feature this renderer does not implement."""


class KustomizeError(Exception):
    """The kustomization is wrong: a missing file, a patch without a target, a duplicate object."""


def build(directory: Path) -> list[dict[str, Any]]:
    """Render the kustomization in ``directory``."""
    objects = _assemble(Path(directory))
    renames = {}
    for obj in objects:
        if obj.pop(GENERATED, False) is True:
            name = obj["metadata"]["name"]
            obj["metadata"]["name"] = renames[name] = f"{name}-{configmap_hash(obj)}"
    for spec in (pod_spec(obj) for obj in objects):
        if spec is not None:
            _rename_configmap_references(spec, renames)
    return objects


def configmap_hash(configmap: dict[str, Any]) -> str:
    """kustomize's name suffix for a generated ConfigMap.

    kustomize hashes ``{"data": …, "kind": "ConfigMap", "name": …}`` as Go's ``json.Marshal`` writes it (sorted
    keys, no spaces, HTML characters escaped). It looks the name up as one field called ``metadata/name``,
    which never exists, so the name hashed is always empty; only the data counts.
    """
    encoded = json.dumps(
        {"data": configmap.get("data", {}), "kind": "ConfigMap", "name": ""},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    for character, escape in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026")):
        encoded = encoded.replace(character, escape)
    encoded = encoded.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
    digest = hashlib.sha256(encoded.encode("utf-8")).hexdigest()[:10]
    # Letters that keep the suffix from reading as a number or a word (kustomize's hasher.Encode).
    return digest.translate(str.maketrans("013ae", "ghkmt"))


# --- one kustomization -------------------------------------------------------------------------------------


def _assemble(directory: Path) -> list[dict[str, Any]]:
    kustomization = _read_kustomization(directory)
    objects: list[dict[str, Any]] = []
    for entry in kustomization.get("resources", []):
        path = directory / entry
        if path.is_dir():
            objects.extend(_assemble(path))
        elif path.is_file():
            objects.extend(load_documents(path))
        else:
            raise KustomizeError(f"{directory}: resource {entry!r} does not exist")
    for generator in kustomization.get("configMapGenerator", []):
        _generate_configmap(directory, generator, objects)
    _check_unique(objects, directory)
    for entry in kustomization.get("patches", []):
        _apply_patch(directory, entry, objects)
    if "namespace" in kustomization:
        for obj in objects:
            if obj["kind"] not in CLUSTER_SCOPED_KINDS:
                obj["metadata"]["namespace"] = kustomization["namespace"]
    for entry in kustomization.get("labels", []):
        _apply_labels(entry, objects)
    for entry in kustomization.get("images", []):
        _apply_image(entry, objects)
    return objects


def _read_kustomization(directory: Path) -> dict[str, Any]:
    for name in KUSTOMIZATION_FILES:
        path = directory / name
        if path.is_file():
            document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
            unsupported = set(document) - SUPPORTED_FIELDS
            if unsupported:
                raise UnsupportedError(f"{path}: fields {sorted(unsupported)} are not supported by this renderer")
            return document
    raise KustomizeError(f"{directory} has no kustomization.yaml")


def load_documents(path: Path) -> list[dict[str, Any]]:
    """The non-empty YAML documents in ``path``."""
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc is not None]


def _check_unique(objects: list[dict[str, Any]], directory: Path) -> None:
    seen = set()
    for obj in objects:
        key = (obj["kind"], obj["metadata"].get("namespace"), obj["metadata"]["name"])
        if key in seen:
            raise KustomizeError(f"{directory}: {key} is defined twice")
        seen.add(key)


# --- configMapGenerator ------------------------------------------------------------------------------------


def _generate_configmap(directory: Path, generator: dict[str, Any], objects: list[dict[str, Any]]) -> None:
    unsupported = set(generator) - {"name", "files", "literals", "behavior", "options"}
    options = generator.get("options") or {}
    if unsupported or set(options) - {"disableNameSuffixHash"}:
        raise UnsupportedError(f"configMapGenerator fields {sorted(unsupported | set(options))} are not supported")
    marker = KEEP_NAME if options.get("disableNameSuffixHash") else True
    data: dict[str, str] = {}
    for entry in generator.get("files", []):
        key, _, source = entry.rpartition("=")
        path = directory / source
        if not path.resolve().is_relative_to(directory.resolve()):
            raise KustomizeError(f"{entry!r}: kustomize loads files only from inside {directory}")
        data[key or path.name] = path.read_text(encoding="utf-8")
    for literal in generator.get("literals", []):
        key, separator, value = literal.partition("=")
        if not separator:
            raise KustomizeError(f"literal {literal!r} is not KEY=VALUE")
        data[key] = value
    name = generator["name"]
    behavior = generator.get("behavior", "create")
    existing = [obj for obj in objects if obj.get(GENERATED) and obj["metadata"]["name"] == name]
    if behavior == "create":
        if existing:
            raise KustomizeError(f"configMapGenerator {name!r} already exists; use behavior merge or replace")
        objects.append(
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data, GENERATED: marker}
        )
    elif behavior in ("merge", "replace"):
        if not existing:
            raise KustomizeError(f"configMapGenerator {name!r}: nothing to {behavior}")
        if behavior == "replace":
            existing[0]["data"] = data
        else:
            existing[0]["data"].update(data)
    else:
        raise UnsupportedError(f"configMapGenerator behavior {behavior!r}")


def _rename_configmap_references(spec: dict[str, Any], renames: dict[str, str]) -> None:
    for volume in spec.get("volumes", []):
        if "configMap" in volume:
            _rename(volume["configMap"], renames)
        for source in volume.get("projected", {}).get("sources", []):
            if "configMap" in source:
                _rename(source["configMap"], renames)
    for container in spec.get("containers", []) + spec.get("initContainers", []):
        for source in container.get("envFrom", []):
            if "configMapRef" in source:
                _rename(source["configMapRef"], renames)
        for variable in container.get("env", []):
            reference = variable.get("valueFrom", {}).get("configMapKeyRef")
            if reference is not None:
                _rename(reference, renames)


def _rename(reference: dict[str, Any], renames: dict[str, str]) -> None:
    reference["name"] = renames.get(reference["name"], reference["name"])


# --- patches -----------------------------------------------------------------------------------------------


def _apply_patch(directory: Path, entry: dict[str, Any], objects: list[dict[str, Any]]) -> None:
    if set(entry) != {"path"}:
        raise UnsupportedError(f"patch {entry!r}: only `path` to a strategic merge patch is supported")
    documents = load_documents(directory / entry["path"])
    if len(documents) != 1:
        raise UnsupportedError(f"{entry['path']}: write one patch per file ({len(documents)} documents)")
    patch = documents[0]
    targets = [
        obj
        for obj in objects
        if obj["kind"] == patch["kind"]
        and obj["metadata"]["name"] == patch["metadata"]["name"]
        and _group(obj["apiVersion"]) == _group(patch["apiVersion"])
    ]
    if len(targets) != 1:
        raise KustomizeError(
            f"{entry['path']}: {len(targets)} objects match {patch['kind']}/{patch['metadata']['name']}"
        )
    target = targets[0]
    directive = patch.pop("$patch", None)
    if directive == "delete":
        objects.remove(target)
    elif directive is None:
        merge(target, patch)
    else:
        raise UnsupportedError(f"{entry['path']}: $patch: {directive}")


def _group(api_version: str) -> str:
    return api_version.rpartition("/")[0]


def merge(base: dict[str, Any], patch: dict[str, Any]) -> None:
    """Strategic-merge ``patch`` into ``base`` in place (the subset described in the module docstring)."""
    for key, value in patch.items():
        if key.startswith("$"):
            raise UnsupportedError(f"directive {key!r}")
        if value is None:
            base.pop(key, None)
        elif isinstance(value, dict) and isinstance(base.get(key), dict):
            merge(base[key], value)
        elif isinstance(value, list) and isinstance(base.get(key), list) and key in MERGE_KEYS:
            base[key] = _merge_list(base[key], value, MERGE_KEYS[key])
        elif isinstance(value, list) and key in UNSUPPORTED_PATCH_LISTS:
            raise UnsupportedError(f"patching a {key!r} list")
        else:
            base[key] = _without_nulls(copy.deepcopy(value))


def _merge_list(base: list[dict[str, Any]], patch: list[dict[str, Any]], key: str) -> list[dict[str, Any]]:
    remaining = {item[key]: item for item in base}
    merged = []
    for item in patch:
        directive = item.get("$patch")
        if directive == "delete":
            remaining.pop(item[key], None)
            continue
        if directive is not None:
            raise UnsupportedError(f"$patch: {directive} in a list")
        current = remaining.pop(item[key], None)
        if current is None:
            merged.append(_without_nulls(copy.deepcopy(item)))
        else:
            merge(current, item)
            merged.append(current)
    return merged + list(remaining.values())


def _without_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _without_nulls(item) for key, item in value.items() if item is not None}
    if isinstance(value, list):
        return [_without_nulls(item) for item in value]
    return value


# --- labels and images -------------------------------------------------------------------------------------


def _apply_labels(entry: dict[str, Any], objects: list[dict[str, Any]]) -> None:
    unsupported = set(entry) - {"pairs", "includeTemplates", "includeSelectors"}
    if unsupported or entry.get("includeSelectors"):
        raise UnsupportedError(f"labels {entry!r}: only pairs and includeTemplates are supported")
    pairs = entry.get("pairs", {})
    for obj in objects:
        obj["metadata"].setdefault("labels", {}).update(pairs)
        if entry.get("includeTemplates"):
            for metadata in _template_metadata(obj):
                metadata.setdefault("labels", {}).update(pairs)


def _template_metadata(obj: dict[str, Any]) -> Iterator[dict[str, Any]]:
    spec = obj.get("spec", {})
    if obj["kind"] in ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"):
        yield spec.setdefault("template", {}).setdefault("metadata", {})
    elif obj["kind"] == "CronJob":
        job = spec.setdefault("jobTemplate", {})
        yield job.setdefault("metadata", {})
        yield job.setdefault("spec", {}).setdefault("template", {}).setdefault("metadata", {})


def split_image(image: str) -> tuple[str, str | None, str | None]:
    """``registry/name:tag@digest`` as (name, tag, digest)."""
    rest, _, digest = image.partition("@")
    slash = rest.rfind("/")
    colon = rest.rfind(":")
    if colon > slash:
        return rest[:colon], rest[colon + 1 :], digest or None
    return rest, None, digest or None


def _apply_image(entry: dict[str, Any], objects: list[dict[str, Any]]) -> None:
    unsupported = set(entry) - {"name", "newName", "newTag", "digest"}
    if unsupported:
        raise UnsupportedError(f"images fields {sorted(unsupported)}")
    for container in (c for obj in objects for c in all_containers(obj)):
        name, tag, digest = split_image(container["image"])
        if name != entry["name"]:
            continue
        name = entry.get("newName", name)
        if "digest" in entry:
            container["image"] = f"{name}@{entry['digest']}"
            continue
        tag = str(entry.get("newTag", tag)) if entry.get("newTag", tag) is not None else None
        container["image"] = name + (f":{tag}" if tag else "") + (f"@{digest}" if digest else "")


# --- pod specs (also used by the tests) --------------------------------------------------------------------


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


def pod_template_labels(obj: dict[str, Any]) -> dict[str, str]:
    """The labels the workload's pods carry."""
    spec = obj["spec"]
    template = spec["jobTemplate"]["spec"]["template"] if obj["kind"] == "CronJob" else spec["template"]
    return template.get("metadata", {}).get("labels", {})


def all_containers(obj: dict[str, Any]) -> list[dict[str, Any]]:
    """Every container and init container of a workload (empty for other objects)."""
    spec = pod_spec(obj)
    if spec is None:
        return []
    return spec.get("initContainers", []) + spec.get("containers", [])
