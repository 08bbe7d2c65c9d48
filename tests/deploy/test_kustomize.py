"""The kustomize-equivalent renderer the overlay tests rely on: it must render what kustomize renders.

Where kubectl (or kustomize) is installed, the renderer's output for each overlay is compared with the real
thing; the other tests pin the behaviours the overlays use on small kustomizations in ``tmp_path``.
"""

from __future__ import annotations

import shutil
import subprocess
import textwrap

import pytest
import yaml

from tests.deploy import OVERLAYS
from tests.deploy.kustomize import UnsupportedError, build, split_image

DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: app
spec:
  selector:
    matchLabels: {app: x}
  strategy:
    type: RollingUpdate
    rollingUpdate: {maxSurge: 1}
  template:
    metadata:
      labels: {app: x}
    spec:
      containers:
        - name: main
          image: ghcr.io/example/app:1
          envFrom:
            - configMapRef: {name: settings}
          env:
            - {name: A, value: "1"}
            - name: B
              valueFrom:
                secretKeyRef: {name: s, key: B}
            - {name: C, value: "3"}
      volumes:
        - name: files
          configMap: {name: settings}
"""


def write_tree(root, files):
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")
    return root


def only(objects, kind):
    (found,) = [obj for obj in objects if obj["kind"] == kind]
    return found


def _kustomize_command():
    if shutil.which("kustomize"):
        return ["kustomize", "build"]
    if shutil.which("kubectl"):
        return ["kubectl", "kustomize"]
    return None


@pytest.mark.parametrize("overlay", ["single-node", "production"])
def test_renderer_output_equals_kubectl_kustomize_for_each_overlay(overlay):
    """Object for object and field for field (list order included), the renderer matches real kustomize."""
    command = _kustomize_command()
    if command is None:
        pytest.skip("neither kustomize nor kubectl is installed; the other tests pin the renderer's behaviour")
    result = subprocess.run([*command, str(OVERLAYS / overlay)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr

    def by_identity(objects):
        return {(obj["kind"], obj["metadata"].get("namespace"), obj["metadata"]["name"]): obj for obj in objects}

    expected = by_identity(doc for doc in yaml.safe_load_all(result.stdout) if doc)
    assert by_identity(build(OVERLAYS / overlay)) == expected


def test_patch_merges_pod_lists_by_key_puts_patch_items_first_and_null_removes_fields(tmp_path):
    """env merges by name (patched and new items first, as kustomize orders them), `valueFrom: null` turns a
    secret reference into a literal, and `rollingUpdate: null` leaves a valid Recreate strategy."""
    write_tree(
        tmp_path,
        {
            "deployment.yaml": DEPLOYMENT,
            "patch.yaml": """\
                apiVersion: apps/v1
                kind: Deployment
                metadata: {name: app}
                spec:
                  replicas: 1
                  strategy: {type: Recreate, rollingUpdate: null}
                  template:
                    spec:
                      containers:
                        - name: main
                          env:
                            - {name: B, value: literal, valueFrom: null}
                            - {name: D, value: "4"}
                """,
            "kustomization.yaml": "resources: [deployment.yaml]\npatches:\n  - path: patch.yaml\n",
        },
    )
    deployment = only(build(tmp_path), "Deployment")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["image"] == "ghcr.io/example/app:1"
    assert container["env"] == [
        {"name": "B", "value": "literal"},
        {"name": "D", "value": "4"},
        {"name": "A", "value": "1"},
        {"name": "C", "value": "3"},
    ]


def test_patch_with_patch_delete_removes_the_object(tmp_path):
    """A `$patch: delete` document removes the object it names and nothing else."""
    write_tree(
        tmp_path,
        {
            "deployment.yaml": DEPLOYMENT,
            "service.yaml": "apiVersion: v1\nkind: Service\nmetadata: {name: app}\nspec: {ports: [{port: 80}]}\n",
            "delete.yaml": "$patch: delete\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: app}\n",
            "kustomization.yaml": "resources: [deployment.yaml, service.yaml]\npatches:\n  - path: delete.yaml\n",
        },
    )
    assert [obj["kind"] for obj in build(tmp_path)] == ["Service"]


def test_generated_configmap_gets_kustomizes_hash_suffix_and_references_follow_it(tmp_path):
    """A literal a=b is named settings-4h2mbtbbt6 (what kustomize 5.5 prints), in the base and through an
    overlay, and the Deployment's envFrom and volume are renamed to match."""
    write_tree(
        tmp_path,
        {
            "base/deployment.yaml": DEPLOYMENT,
            "base/kustomization.yaml": """\
                resources: [deployment.yaml]
                configMapGenerator:
                  - name: settings
                    literals: [a=b]
                """,
            "overlay/kustomization.yaml": "resources: [../base]\nnamespace: team\n",
        },
    )
    for directory in (tmp_path / "base", tmp_path / "overlay"):
        objects = build(directory)
        configmap = only(objects, "ConfigMap")
        assert configmap["metadata"]["name"] == "settings-4h2mbtbbt6"
        assert configmap["data"] == {"a": "b"}
        pod = only(objects, "Deployment")["spec"]["template"]["spec"]
        assert pod["containers"][0]["envFrom"] == [{"configMapRef": {"name": "settings-4h2mbtbbt6"}}]
        assert pod["volumes"][0]["configMap"] == {"name": "settings-4h2mbtbbt6"}
    assert only(build(tmp_path / "overlay"), "ConfigMap")["metadata"]["namespace"] == "team"


def test_labels_reach_pod_templates_only_when_asked_and_never_selectors(tmp_path):
    """`labels` with includeTemplates labels the object and its pods; selectors stay as written."""
    write_tree(
        tmp_path,
        {
            "deployment.yaml": DEPLOYMENT,
            "kustomization.yaml": """\
                resources: [deployment.yaml]
                labels:
                  - pairs: {tier: one}
                  - pairs: {tier2: two}
                    includeTemplates: true
                """,
        },
    )
    deployment = only(build(tmp_path), "Deployment")
    assert deployment["metadata"]["labels"] == {"tier": "one", "tier2": "two"}
    assert deployment["spec"]["template"]["metadata"]["labels"] == {"app": "x", "tier2": "two"}
    assert deployment["spec"]["selector"] == {"matchLabels": {"app": "x"}}


def test_images_rewrites_name_and_tag_of_matching_containers(tmp_path):
    """An `images` entry replaces registry/name and tag; a registry with a port is not mistaken for a tag."""
    write_tree(
        tmp_path,
        {
            "deployment.yaml": DEPLOYMENT,
            "kustomization.yaml": """\
                resources: [deployment.yaml]
                images:
                  - {name: ghcr.io/example/app, newName: "registry.local:5000/app", newTag: "2"}
                """,
        },
    )
    (container,) = only(build(tmp_path), "Deployment")["spec"]["template"]["spec"]["containers"]
    assert container["image"] == "registry.local:5000/app:2"
    assert split_image("registry.local:5000/app") == ("registry.local:5000/app", None, None)
    assert split_image("app:1@sha256:abc") == ("app", "1", "sha256:abc")


@pytest.mark.parametrize(
    "kustomization",
    [
        "resources: [deployment.yaml]\ncommonLabels: {a: b}\n",
        "resources: [deployment.yaml]\nlabels:\n  - pairs: {a: b}\n    includeSelectors: true\n",
        "resources: [deployment.yaml]\npatches:\n  - target: {kind: Deployment}\n    path: p.yaml\n",
    ],
    ids=["commonLabels", "includeSelectors", "targeted-patch"],
)
def test_features_the_renderer_does_not_implement_are_refused(tmp_path, kustomization):
    """A kustomization that needs more than the renderer implements fails loudly instead of rendering wrong."""
    write_tree(tmp_path, {"deployment.yaml": DEPLOYMENT, "p.yaml": "[]\n", "kustomization.yaml": kustomization})
    with pytest.raises(UnsupportedError):
        build(tmp_path)
