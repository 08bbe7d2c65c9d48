"""The rendered overlays: what `kubectl apply -k deploy/k8s/overlays/<name>` would send to a cluster.

Each overlay is rendered once by the real kustomize (``kubectl kustomize``, see ``tests/support/deploy.py``)
and checked as a whole: the shape each overlay promises (single node: one web pod with the worker inside and
SQLite on a volume; production: several web and worker pods on PostgreSQL; listen: production with an event
WebSocket listener instead of an Ingress), and what every workload must have
(the locked-down security context, resources, probes, metrics, the policy file, the Secret's keys, the image).
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath

import kubernetes_validate
import pytest
from sqlalchemy.engine import make_url

from service.policy import load_policy
from tests.support.deploy import (
    IMAGE,
    KUBERNETES_VERSION,
    NAMESPACE,
    OVERLAYS,
    ROOT,
    SECRET_NAME,
    SECRET_TEMPLATE,
    UID,
    all_containers,
    build,
    load_documents,
    pod_spec,
    pod_template,
    pod_template_labels,
)

SQLITE_URL = "sqlite:////var/lib/mfa-enforcer/enforcer.db"
WEB = "mfa-enforcer-web"
WORKER = "mfa-enforcer-worker"
LISTEN = "mfa-enforcer-listen"
WORKLOAD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob"}
STANDARD_LABELS = {"app.kubernetes.io/name", "app.kubernetes.io/part-of", "app.kubernetes.io/instance"}
CONTAINER_SECURITY = {
    "runAsNonRoot": True,
    "runAsUser": UID,
    "readOnlyRootFilesystem": True,
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}


@pytest.fixture(scope="module")
def single_node():
    return build(OVERLAYS / "single-node")


@pytest.fixture(scope="module")
def production():
    return build(OVERLAYS / "production")


@pytest.fixture(scope="module")
def listen_overlay():
    return build(OVERLAYS / "listen")


@pytest.fixture(scope="module", params=["single-node", "production", "listen"])
def rendered(request):
    return build(OVERLAYS / request.param)


def objects_of(objects, kind):
    return [obj for obj in objects if obj["kind"] == kind]


def named(objects, kind, name):
    (found,) = [obj for obj in objects_of(objects, kind) if obj["metadata"]["name"] == name]
    return found


def named_or_none(objects, kind, name):
    return next((obj for obj in objects_of(objects, kind) if obj["metadata"]["name"] == name), None)


def workloads(objects):
    return [obj for obj in objects if obj["kind"] in WORKLOAD_KINDS]


def only_container(obj):
    (container,) = all_containers(obj)
    return container


def env_entry(container, name):
    (entry,) = [entry for entry in container.get("env", []) if entry["name"] == name]
    return entry


def env_entry_or_none(container, name):
    return next((entry for entry in container.get("env", []) if entry["name"] == name), None)


def env_value(container, name):
    return env_entry(container, name)["value"]


def configmap_values(objects, container):
    """The variables a container receives from ConfigMaps through envFrom."""
    values = {}
    for source in container.get("envFrom", []):
        values.update(named(objects, "ConfigMap", source["configMapRef"]["name"])["data"])
    return values


def selects(selector, labels):
    return bool(selector) and all(labels.get(key) == value for key, value in selector.items())


# --- single node -------------------------------------------------------------------------------------------


def test_single_node_runs_one_web_pod_with_the_worker_inside(single_node):
    """One web replica, ENFORCER_RUN_WORKER=true, replaced (Recreate) rather than rolled."""
    web = named(single_node, "Deployment", WEB)
    assert web["spec"]["replicas"] == 1
    assert web["spec"]["strategy"] == {"type": "Recreate"}
    assert env_value(only_container(web), "ENFORCER_RUN_WORKER") == "true"


def test_single_node_has_no_worker_deployment_autoscaler_or_migration_job(single_node):
    """The worker runs in the web pod, SQLite cannot be scaled out, and the web pod creates the tables."""
    assert [obj["metadata"]["name"] for obj in objects_of(single_node, "Deployment")] == [WEB]
    assert objects_of(single_node, "HorizontalPodAutoscaler") == []
    assert objects_of(single_node, "Job") == []
    assert [obj["metadata"]["name"] for obj in objects_of(single_node, "PodDisruptionBudget")] == [WEB]


def test_single_node_keeps_the_sqlite_file_on_the_persistent_volume(single_node):
    """Every pod that opens DATABASE_URL gets the SQLite URL and the claim mounted at the file's directory."""
    (claim,) = objects_of(single_node, "PersistentVolumeClaim")
    assert claim["metadata"]["namespace"] == NAMESPACE
    users = [
        obj for obj in workloads(single_node) if any(env_entry_or_none(c, "DATABASE_URL") for c in all_containers(obj))
    ]
    assert {obj["metadata"]["name"] for obj in users} == {WEB, "mfa-enforcer-reconcile"}
    for obj in users:
        container = only_container(obj)
        assert env_entry(container, "DATABASE_URL") == {"name": "DATABASE_URL", "value": SQLITE_URL}
        directory = str(PurePosixPath(make_url(SQLITE_URL).database).parent)
        (mount,) = [mount for mount in container["volumeMounts"] if mount["mountPath"] == directory]
        (volume,) = [volume for volume in pod_spec(obj)["volumes"] if volume["name"] == mount["name"]]
        assert volume["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]
        assert not mount.get("readOnly", False)


def test_single_node_reconcile_job_runs_on_the_web_pods_node(single_node):
    """A ReadWriteOnce volume attaches to one node, so the reconcile pod is pinned next to the web pod."""
    web = named(single_node, "Deployment", WEB)
    cronjob = named(single_node, "CronJob", "mfa-enforcer-reconcile")
    (term,) = pod_spec(cronjob)["affinity"]["podAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert term["topologyKey"] == "kubernetes.io/hostname"
    assert selects(term["labelSelector"]["matchLabels"], pod_template_labels(web))


# --- production --------------------------------------------------------------------------------------------


def test_production_runs_at_least_two_web_and_two_worker_pods(production):
    """The autoscaler keeps ≥2 web pods (it owns their count) and the worker Deployment asks for ≥2."""
    web = named(production, "Deployment", WEB)
    (autoscaler,) = objects_of(production, "HorizontalPodAutoscaler")
    assert autoscaler["apiVersion"] == "autoscaling/v2"
    assert autoscaler["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": WEB}
    assert autoscaler["spec"]["minReplicas"] >= 2
    assert autoscaler["spec"]["maxReplicas"] > autoscaler["spec"]["minReplicas"]
    assert web["spec"].get("replicas", autoscaler["spec"]["minReplicas"]) >= 2
    assert named(production, "Deployment", WORKER)["spec"]["replicas"] >= 2


def test_production_web_leaves_the_queue_to_the_worker_deployment(production):
    """ENFORCER_RUN_WORKER=false on web; the worker pods run `mfa-enforcer worker`."""
    assert env_value(only_container(named(production, "Deployment", WEB)), "ENFORCER_RUN_WORKER") == "false"
    assert only_container(named(production, "Deployment", WORKER))["command"] == ["mfa-enforcer", "worker"]


def test_production_reads_database_url_from_the_secret(production):
    """Every workload takes DATABASE_URL (PostgreSQL) from the Secret, never from a literal."""
    for obj in workloads(production):
        entry = env_entry(only_container(obj), "DATABASE_URL")
        assert entry == {
            "name": "DATABASE_URL",
            "valueFrom": {"secretKeyRef": {"name": SECRET_NAME, "key": "DATABASE_URL"}},
        }, obj["metadata"]["name"]


def test_production_runs_migrations_and_the_nightly_reconcile(production):
    """A Job runs `mfa-enforcer db upgrade`; a CronJob runs `mfa-enforcer reconcile`, never two at once."""
    (job,) = objects_of(production, "Job")
    assert only_container(job)["command"] == ["mfa-enforcer", "db", "upgrade"]
    assert pod_spec(job)["restartPolicy"] == "Never"
    (cronjob,) = objects_of(production, "CronJob")
    assert only_container(cronjob)["command"] == ["mfa-enforcer", "reconcile"]
    assert cronjob["spec"]["concurrencyPolicy"] == "Forbid"


# --- listen ------------------------------------------------------------------------------------------------


def test_listen_runs_one_listener_beside_the_production_workers_and_no_ingress(listen_overlay, production):
    """One `mfa-enforcer listen` pod (a second would receive every event twice), the production web and worker
    pods, PostgreSQL from the Secret, and no Ingress: nothing outside the cluster calls in."""
    listener = named(listen_overlay, "Deployment", LISTEN)
    assert listener["spec"]["replicas"] == 1
    container = only_container(listener)
    assert container["command"] == ["mfa-enforcer", "listen"]
    assert env_value(container, "GENAUTH_EVENTS_URL").startswith("wss://")
    assert env_entry(container, "DATABASE_URL")["valueFrom"]["secretKeyRef"]["name"] == SECRET_NAME
    assert env_entry_or_none(container, "GENAUTH_WEBHOOK_SECRET") is None  # the listener needs none
    assert objects_of(listen_overlay, "Ingress") == []
    others = {obj["metadata"]["name"] for obj in objects_of(listen_overlay, "Deployment")} - {LISTEN}
    assert others == {obj["metadata"]["name"] for obj in objects_of(production, "Deployment")}


# --- every overlay ----------------------------------------------------------------------------------------


def test_every_rendered_object_validates_against_the_kubernetes_schema(rendered):
    """The objects the overlay sends to the cluster are valid Kubernetes 1.30 objects (strict)."""
    for obj in rendered:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)


def test_every_object_is_labelled_and_in_the_namespace(rendered):
    """Standard app.kubernetes.io labels everywhere; everything but the Namespace lives in mfa-enforcer."""
    for obj in rendered:
        assert set(obj["metadata"]["labels"]) >= STANDARD_LABELS, obj["metadata"]["name"]
        assert obj["metadata"]["labels"]["app.kubernetes.io/name"] == "mfa-enforcer"
        if obj["kind"] == "Namespace":
            assert obj["metadata"]["name"] == NAMESPACE
        else:
            assert obj["metadata"]["namespace"] == NAMESPACE, obj["metadata"]["name"]
    for obj in workloads(rendered):
        assert {"app.kubernetes.io/name", "app.kubernetes.io/component"} <= set(pod_template_labels(obj))


def test_every_container_runs_locked_down(rendered):
    """Non-root with a fixed UID, read-only root, no privilege escalation, no capabilities, RuntimeDefault
    seccomp, no API token; /tmp is a writable emptyDir."""
    for obj in workloads(rendered):
        spec = pod_spec(obj)
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["runAsUser"] == UID
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        assert spec["automountServiceAccountToken"] is False
        for container in all_containers(obj):
            assert CONTAINER_SECURITY.items() <= container["securityContext"].items(), container["name"]
            (tmp,) = [mount for mount in container["volumeMounts"] if mount["mountPath"] == "/tmp"]
            (volume,) = [volume for volume in spec["volumes"] if volume["name"] == tmp["name"]]
            assert "emptyDir" in volume


def test_every_container_has_resource_requests_and_limits(rendered):
    """CPU and memory requests (for scheduling) and limits (so one pod cannot starve the node)."""
    for obj in workloads(rendered):
        for container in all_containers(obj):
            resources = container["resources"]
            assert {"cpu", "memory"} <= set(resources["requests"]), container["name"]
            assert {"cpu", "memory"} <= set(resources["limits"]), container["name"]


def test_web_probes_liveness_and_startup_on_healthz_and_readiness_on_readyz(rendered):
    """The kubelet asks /healthz (alive) and /readyz (database reachable) on the container's port 8000."""
    container = only_container(named(rendered, "Deployment", WEB))
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert ports == {"http": 8000}
    expected = {"startupProbe": "/healthz", "livenessProbe": "/healthz", "readinessProbe": "/readyz"}
    for probe, path in expected.items():
        check = container[probe]["httpGet"]
        assert check["path"] == path
        assert ports.get(check["port"], check["port"]) == 8000
    assert container.get("command") is None  # the image's CMD: gunicorn with config/gunicorn.conf.py
    assert pod_spec(named(rendered, "Deployment", WEB))["terminationGracePeriodSeconds"] > 30  # graceful_timeout


def test_policy_configmap_is_mounted_at_policy_file_and_passes_the_policy_loader(rendered, tmp_path):
    """POLICY_FILE points into the mounted policies ConfigMap, and that file loads with service.policy."""
    for obj in workloads(rendered):
        container = only_container(obj)
        policy_file = configmap_values(rendered, container).get("POLICY_FILE")
        if policy_file is None:
            assert obj["kind"] == "Job"  # `db upgrade` reads DATABASE_URL only
            continue
        path = PurePosixPath(policy_file)
        (mount,) = [mount for mount in container["volumeMounts"] if mount["mountPath"] == str(path.parent)]
        (volume,) = [volume for volume in pod_spec(obj)["volumes"] if volume["name"] == mount["name"]]
        configmap = named(rendered, "ConfigMap", volume["configMap"]["name"])
        local = tmp_path / path.name
        local.write_text(configmap["data"][path.name], encoding="utf-8")
        assert load_policy(local).rules


def test_workloads_run_the_published_image(rendered):
    """Every container runs the documented placeholder image, ghcr.io/example/mfa-enforcer:0.1.0."""
    for obj in workloads(rendered):
        assert {container["image"] for container in all_containers(obj)} == {IMAGE}


def _variables_the_service_reads():
    sources = [*ROOT.joinpath("service").rglob("*.py"), ROOT / "config" / "gunicorn.conf.py"]
    pattern = re.compile(r"""\(\s*["']([A-Z][A-Z0-9_]{2,})["']""")
    return {name for path in sources for name in pattern.findall(path.read_text(encoding="utf-8"))}


def test_every_environment_variable_set_is_one_the_service_reads(rendered):
    """No misspelt or invented setting: each variable the manifests set is read by the service or gunicorn."""
    known = _variables_the_service_reads()
    assert {"DATABASE_URL", "ENFORCER_RUN_WORKER", "POLICY_FILE", "WEB_CONCURRENCY"} <= known
    for obj in workloads(rendered):
        for container in all_containers(obj):
            names = {entry["name"] for entry in container.get("env", [])} | set(configmap_values(rendered, container))
            assert names - known == set(), container["name"]


def test_credentials_come_only_from_the_secret_the_template_describes(rendered):
    """No Secret is rendered (it is created by hand); every secretKeyRef names a key of the template; no
    credential-like variable has a literal value."""
    assert objects_of(rendered, "Secret") == []
    (template,) = load_documents(SECRET_TEMPLATE)
    for obj in workloads(rendered):
        for container in all_containers(obj):
            for entry in container.get("env", []):
                reference = entry.get("valueFrom", {}).get("secretKeyRef")
                if reference is not None:
                    assert reference["name"] == SECRET_NAME
                    assert reference["key"] in template["stringData"]
                elif re.search(r"SECRET|KEY|PASSWORD|TOKEN", entry["name"]):
                    pytest.fail(f"{entry['name']} is set literally in {obj['metadata']['name']}")
                else:
                    url = entry.get("value", "")
                    assert "://" not in url or make_url(url).password is None, entry["name"]


def covering_policies(objects, obj):
    labels = pod_template_labels(obj)
    return [
        policy
        for policy in objects_of(objects, "NetworkPolicy")
        if selects(policy["spec"]["podSelector"]["matchLabels"], labels)
    ]


def admitted_ports(objects, obj):
    """The (protocol, port) pairs the NetworkPolicies let in to the workload's pods."""
    return {
        (port["protocol"], port["port"])
        for policy in covering_policies(objects, obj)
        for rule in policy["spec"].get("ingress", [])
        for port in rule["ports"]
    }


# Where each kind of pod serves, and so what may reach it: web pods their HTTP port (webhooks and /metrics),
# worker and listener pods their metrics port; the migration and reconcile pods serve nothing.
INGRESS_BY_COMPONENT = {"web": {("TCP", 8000)}, "worker": {("TCP", 9102)}, "listen": {("TCP", 9102)}}


def test_network_policies_admit_only_the_served_ports_and_the_needed_egress(rendered):
    """Every pod is covered by a default-deny policy; ingress reaches only TCP 8000 on web pods and the metrics
    port 9102 on worker pods; egress goes only to DNS, PostgreSQL (5432) and HTTPS (443)."""
    for obj in workloads(rendered):
        covering = covering_policies(rendered, obj)
        assert any({"Ingress", "Egress"} <= set(policy["spec"]["policyTypes"]) for policy in covering)
        component = pod_template_labels(obj)["app.kubernetes.io/component"]
        assert admitted_ports(rendered, obj) == INGRESS_BY_COMPONENT.get(component, set()), obj["metadata"]["name"]
        egress_ports = {
            (port["protocol"], port["port"])
            for policy in covering
            for rule in policy["spec"].get("egress", [])
            for port in rule["ports"]
        }
        assert egress_ports == {("UDP", 53), ("TCP", 53), ("TCP", 5432), ("TCP", 443)}


def test_every_pod_that_enforces_is_scraped_for_metrics(rendered):
    """The decision, job and GenAuth-call counters are counted where the work happens, so every pod that runs a
    worker (worker pods, or the single-node web pod with ENFORCER_RUN_WORKER=true) serves /metrics: its scrape
    annotations name a container port that the process serves (PORT for gunicorn, ENFORCER_METRICS_PORT for
    `mfa-enforcer worker`) and that a NetworkPolicy admits."""
    working = []
    for obj in objects_of(rendered, "Deployment"):
        container = only_container(obj)
        annotations = pod_template(obj)["metadata"]["annotations"]
        assert annotations["prometheus.io/scrape"] == "true", obj["metadata"]["name"]
        assert annotations["prometheus.io/path"] == "/metrics"
        port = int(annotations["prometheus.io/port"])
        container_ports = {entry["containerPort"]: entry["name"] for entry in container["ports"]}
        if container.get("command") in (["mfa-enforcer", "worker"], ["mfa-enforcer", "listen"]):
            assert env_value(container, "ENFORCER_METRICS_PORT") == str(port)
            assert container_ports.get(port) == "metrics"  # the name the PodMonitor in deploy/monitoring uses
            if container["command"][1] == "worker":
                working.append(obj)
        else:
            assert env_value(container, "PORT") == str(port)
            assert container_ports.get(port) == "http"
            if env_value(container, "ENFORCER_RUN_WORKER") == "true":
                working.append(obj)
        assert ("TCP", port) in admitted_ports(rendered, obj), obj["metadata"]["name"]
    assert working, "no scraped pod runs a worker"


def test_service_ingress_autoscaler_and_budgets_point_at_pods_that_exist(rendered):
    """The Service selects the web pods' named port, the Ingress routes /webhooks/genauth to the Service, and
    every PodDisruptionBudget and autoscaler targets a workload in the same rendering."""
    web = named(rendered, "Deployment", WEB)
    (service,) = objects_of(rendered, "Service")
    assert selects(service["spec"]["selector"], pod_template_labels(web))
    (service_port,) = service["spec"]["ports"]
    assert service_port["targetPort"] in {port["name"] for port in only_container(web)["ports"]}
    for ingress in objects_of(rendered, "Ingress"):  # one, but for the listen overlay (no webhook, none)
        (rule,) = ingress["spec"]["rules"]
        (path,) = rule["http"]["paths"]
        assert path["path"] == "/webhooks/genauth"
        assert path["backend"]["service"] == {
            "name": service["metadata"]["name"],
            "port": {"name": service_port["name"]},
        }
    assert len(objects_of(rendered, "Ingress")) == (0 if named_or_none(rendered, "Deployment", LISTEN) else 1)
    deployments = {obj["metadata"]["name"]: obj for obj in objects_of(rendered, "Deployment")}
    for budget in objects_of(rendered, "PodDisruptionBudget"):
        selector = budget["spec"]["selector"]["matchLabels"]
        assert any(selects(selector, pod_template_labels(obj)) for obj in deployments.values())
    for autoscaler in objects_of(rendered, "HorizontalPodAutoscaler"):
        assert autoscaler["spec"]["scaleTargetRef"]["name"] in deployments


def test_deploy_readme_walks_through_both_overlays():
    """deploy/README.md gives the apply command for each overlay, the Secret step and the webhook URL."""
    readme = (ROOT / "deploy" / "README.md").read_text(encoding="utf-8")
    for needed in (
        "kubectl apply -k deploy/k8s/overlays/single-node",
        "kubectl apply -k deploy/k8s/overlays/production",
        "kubectl apply -k deploy/k8s/overlays/listen",
        "deploy/k8s/secret.example.yaml",
        "/webhooks/genauth",
        "docker build -f deploy/Dockerfile",
    ):
        assert needed in readme, needed
