"""Offline checks of the Kubernetes deployment in `deploy/k8s/` (no cluster, no network).

- Every object validates: Kubernetes kinds against the JSON schemas that the
  `kubernetes-validate` package ships (strict: unknown fields are errors) for the
  oldest and the newest Kubernetes release the manifests target; KEDA's kinds against
  the schemas in `deploy/k8s/schemas/`.
- The kustomizations are whole: every file they name exists, every YAML file is named
  by one (the secret templates excepted, and they are never applied).
- What the deployment means, read from the rendered manifests (`k8s_manifests.render`,
  compared with `kubectl kustomize` where a kubectl is at hand): commands, probes,
  security contexts, PDBs, NetworkPolicy flows, the Ingress limits, KEDA's queues, and
  the services' settings, which must build in production mode from the ConfigMap,
  the Secret's keys and each Deployment's `env`.
"""

from __future__ import annotations

import copy
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit

import jsonschema
import kubernetes_validate
import pytest
import yaml
from pydantic import SecretStr
from pydantic_settings import BaseSettings

from ops.init_stores import InitSettings
from services.auth.settings import AuthSettings
from services.auth.token_issuer import generate_private_key_pem
from services.catalog.hosting.storage_notifications import storage_events_source
from services.catalog.settings import CatalogSettings
from services.gateway.settings import GatewaySettings
from services.transcoder.consumers import job_subscription
from services.transcoder.settings import TranscoderSettings
from shared.config import DEV_SECRET_MARKER
from tests.deploy.k8s_manifests import (
    BASE_DIR,
    K8S_DIR,
    PLACEHOLDER_MARKER,
    REPO_ROOT,
    SECRET_TEMPLATES,
    SELF_CONTAINED_DIR,
    STORES_DIR,
    Manifest,
    container_environment,
    containers,
    deployment_commands,
    deployment_environment,
    find,
    kustomization_file,
    load_manifests,
    load_yaml_documents,
    pod_labels,
    pod_spec,
    read_kustomization,
    render,
    secret_templates,
    split_image,
)

#: The oldest Kubernetes minor the manifests support (the pod `sleep` preStop action,
#: PDB `unhealthyPodEvictionPolicy` GA) and the newest whose schemas the pinned
#: kubernetes-validate ships.
KUBERNETES_VERSIONS = ("1.31", "1.37")
KEDA_SCHEMAS = {
    "ScaledObject": K8S_DIR / "schemas" / "keda-scaledobject-v1alpha1.json",
    "TriggerAuthentication": K8S_DIR / "schemas" / "keda-triggerauthentication-v1alpha1.json",
}
SERVICES = ("gateway", "auth", "catalog", "transcoder")
SETTINGS: dict[str, type[BaseSettings]] = {
    "gateway": GatewaySettings,
    "auth": AuthSettings,
    "catalog": CatalogSettings,
    "transcoder": TranscoderSettings,
}
SERVICE_PORTS = {"gateway": 8080, "auth": 8081, "catalog": 8082, "transcoder": 8083}
GATEWAY_ADMIN_PORT = 8090
KINO_IMAGE = "kino"


# --- what is under deploy/k8s ------------------------------------------------------------


def kustomization_dirs() -> list[Path]:
    return sorted({path.parent for path in K8S_DIR.rglob("kustomization.yaml")})


def yaml_files() -> list[Path]:
    return sorted([*K8S_DIR.rglob("*.yaml"), *K8S_DIR.rglob("*.yml")])


def referenced_files() -> set[Path]:
    """Every file a kustomization names: resource files and patch files."""
    found: set[Path] = set()
    for directory in kustomization_dirs():
        kustomization = read_kustomization(directory)
        for entry in kustomization.get("resources", []):
            path = (directory / entry).resolve()
            if path.is_file():
                found.add(path)
        for patch in kustomization.get("patches", []):
            if "path" in patch:
                found.add((directory / patch["path"]).resolve())
    return found


def base_objects() -> list[Manifest]:
    return render(K8S_DIR)


def objects_to_validate() -> list[tuple[str, Manifest]]:
    """Each distinct object of the base and of the self-contained install (patched),
    and the secret templates."""
    seen: set[str] = set()
    found: list[tuple[str, Manifest]] = []
    sources = [("base", base_objects()), ("self-contained", load_manifests())]
    sources += [
        (str(path.relative_to(K8S_DIR)), load_yaml_documents(path)) for path in SECRET_TEMPLATES
    ]
    for source, objects in sources:
        for obj in objects:
            canonical = json.dumps(obj, sort_keys=True)
            if canonical not in seen:
                seen.add(canonical)
                found.append((f"{source}:{obj['kind']}/{obj['metadata']['name']}", obj))
    return found


VALIDATED = objects_to_validate()


def workloads(objects: list[Manifest]) -> dict[str, Manifest]:
    return {obj["metadata"]["name"]: obj for obj in objects if pod_spec(obj) is not None}


def of_kind(objects: list[Manifest], kind: str) -> list[Manifest]:
    return [obj for obj in objects if obj["kind"] == kind]


def config_map(objects: list[Manifest]) -> dict[str, str]:
    data: dict[str, str] = find(objects, "ConfigMap", "kino-config")["data"]
    return data


def service_container(objects: list[Manifest], service: str) -> Manifest:
    (container,) = [
        c for c in containers(find(objects, "Deployment", service)) if c["name"] == service
    ]
    return container


def env_value(container: Manifest, name: str) -> str:
    for variable in container.get("env", []):
        if variable["name"] == name:
            return str(variable["value"])
    raise KeyError(name)


# --- schema validation ---------------------------------------------------------------


def test_kubernetes_validate_ships_the_schemas_offline() -> None:
    # The schemas are package data: validation opens no connection (checked by hand in
    # a network namespace without a network, `unshare -rn`).
    shipped = kubernetes_validate.utils.all_versions()
    for version in KUBERNETES_VERSIONS:
        assert any(v.startswith(version + ".") for v in shipped), (version, shipped)


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize(("name", "obj"), VALIDATED, ids=[name for name, _ in VALIDATED])
def test_object_validates(name: str, obj: Manifest, version: str) -> None:
    if obj["kind"] in KEDA_SCHEMAS:
        schema = json.loads(KEDA_SCHEMAS[obj["kind"]].read_text())
        jsonschema.Draft202012Validator(schema).validate(obj)
    else:
        kubernetes_validate.validate(obj, version, strict=True)


def test_validation_rejects_unknown_fields() -> None:
    """The validation is strict, so a misspelt field fails instead of being dropped."""
    gateway = copy.deepcopy(find(load_manifests(), "Deployment", "gateway"))
    gateway["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(gateway, KUBERNETES_VERSIONS[-1], strict=True)
    scaled = copy.deepcopy(find(load_manifests(), "ScaledObject", "transcoder"))
    scaled["spec"]["maxReplicas"] = scaled["spec"].pop("maxReplicaCount")
    schema = json.loads(KEDA_SCHEMAS["ScaledObject"].read_text())
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft202012Validator(schema).validate(scaled)


@pytest.mark.parametrize("path", KEDA_SCHEMAS.values(), ids=lambda p: p.name)
def test_keda_schemas_are_valid_and_attributed(path: Path) -> None:
    schema = json.loads(path.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    assert "Apache-2.0" in schema["$comment"]
    assert "kedacore/keda" in schema["$comment"]


# --- kustomizations ------------------------------------------------------------------


def test_layout() -> None:
    assert kustomization_dirs() == sorted([K8S_DIR, BASE_DIR, STORES_DIR, SELF_CONTAINED_DIR]), (
        "update this test and README.md when adding a kustomization"
    )
    assert read_kustomization(K8S_DIR)["resources"] == ["base"]
    assert read_kustomization(STORES_DIR)["kind"] == "Component"
    assert read_kustomization(STORES_DIR)["apiVersion"] == "kustomize.config.k8s.io/v1alpha1"
    overlay = read_kustomization(SELF_CONTAINED_DIR)
    assert overlay["resources"] == ["../../base"]
    assert overlay["components"] == ["../../stores"]


@pytest.mark.parametrize(
    "directory", kustomization_dirs(), ids=lambda d: str(d.relative_to(K8S_DIR))
)
def test_every_listed_file_exists(directory: Path) -> None:
    kustomization = read_kustomization(directory)
    for entry in kustomization.get("resources", []):
        path = directory / entry
        assert path.is_file() or kustomization_file(path).is_file(), entry
    for entry in kustomization.get("components", []):
        assert read_kustomization(directory / entry)["kind"] == "Component", entry
    for patch in kustomization.get("patches", []):
        assert (directory / patch["path"]).is_file(), patch


def test_every_yaml_file_is_in_a_kustomization() -> None:
    templates = {path.resolve() for path in SECRET_TEMPLATES}
    kustomizations = {kustomization_file(d).resolve() for d in kustomization_dirs()}
    expected = {path.resolve() for path in yaml_files()} - templates - kustomizations
    assert referenced_files() == expected
    # The templates exist and are named by no kustomization.
    assert all(path.is_file() for path in templates)
    assert not templates & referenced_files()
    # schemas/ holds the JSON schemas only.
    assert {p.suffix for p in (K8S_DIR / "schemas").iterdir()} == {".json"}


def test_no_secret_is_applied() -> None:
    """The Secrets are the operator's: a kustomization must not ship placeholder ones."""
    for objects in (base_objects(), load_manifests()):
        assert not of_kind(objects, "Secret")
    templates = secret_templates()
    assert set(templates) == {"kino-secrets", "kino-stores"}
    for key, value in templates["kino-secrets"].items():
        assert PLACEHOLDER_MARKER in value, key
    for key in ("MONGO_INITDB_ROOT_PASSWORD", "RABBITMQ_DEFAULT_PASS"):
        assert templates["kino-stores"][key].startswith(PLACEHOLDER_MARKER), key


def find_kubectl() -> str | None:
    beside_python = Path(sys.executable).parent / "kubectl"
    if beside_python.is_file():
        return str(beside_python)
    return shutil.which("kubectl")


@pytest.mark.parametrize("directory", [K8S_DIR, SELF_CONTAINED_DIR], ids=["base", "self-contained"])
def test_renderer_matches_kustomize(directory: Path) -> None:
    """`k8s_manifests.render` builds what `kubectl kustomize` builds (object order aside)."""
    kubectl = find_kubectl()
    if kubectl is None:
        pytest.skip("no kubectl on PATH to compare the renderer with")
    built = subprocess.run(
        [kubectl, "kustomize", str(directory)],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    expected = sorted(json.dumps(obj, sort_keys=True) for obj in yaml.safe_load_all(built) if obj)
    actual = sorted(json.dumps(obj, sort_keys=True) for obj in render(directory))
    assert actual == expected


# --- workloads -----------------------------------------------------------------------


def test_deployment_commands() -> None:
    commands = deployment_commands()
    assert commands == {name: ["python", "-m", f"services.{name}"] for name in SERVICES}
    for name in SERVICES:
        assert (REPO_ROOT / "services" / name / "__main__.py").is_file()


def test_init_job_runs_init_stores_then_the_notification() -> None:
    job = find(load_manifests(), "Job", "init-stores")
    spec = job["spec"]
    assert spec["ttlSecondsAfterFinished"] > 0
    (init,) = spec["template"]["spec"]["initContainers"]
    assert init["command"] == ["python", "-m", "ops.init_stores"]
    assert (REPO_ROOT / "ops" / "init_stores.py").is_file()
    (mc,) = spec["template"]["spec"]["containers"]
    assert split_image(mc["image"])[0] == "quay.io/minio/mc"
    script = mc["command"][-1]
    assert "mc event ls" in script  # checked before adding: safe to re-run
    assert "--event put --prefix incoming/" in script


@pytest.mark.parametrize("service", SERVICES)
def test_probes_hit_health_routes_on_the_service_port(service: str) -> None:
    """Internal services are probed on their one port; the gateway on its admin port,
    since its public port does not serve the health routes."""
    objects = load_manifests()
    container = service_container(objects, service)
    port, *admin = container["ports"]
    assert port["containerPort"] == SERVICE_PORTS[service]
    assert env_value(container, "KINO_HTTP_PORT") == str(port["containerPort"])
    assert env_value(container, "KINO_HTTP_HOST") == "0.0.0.0"
    probed = port
    if service == "gateway":
        (probed,) = admin
        assert probed["containerPort"] == GATEWAY_ADMIN_PORT
        assert env_value(container, "KINO_GATEWAY_ADMIN_PORT") == str(GATEWAY_ADMIN_PORT)
    else:
        assert admin == []
    for probe, path in [
        ("readinessProbe", "/ready"),
        ("livenessProbe", "/health"),
        ("startupProbe", "/health"),
    ]:
        get = container[probe]["httpGet"]
        assert get["path"] == path, probe
        assert get["port"] in (probed["name"], probed["containerPort"]), probe
    (service_port,) = find(objects, "Service", service)["spec"]["ports"]
    assert service_port["targetPort"] in (port["name"], port["containerPort"])
    assert service_port["port"] == SERVICE_PORTS[service]


ALL_WORKLOADS = list(workloads(load_manifests()).items())


@pytest.mark.parametrize(("name", "workload"), ALL_WORKLOADS, ids=[n for n, _ in ALL_WORKLOADS])
def test_pod_security(name: str, workload: Manifest) -> None:
    """Every pod (stores and Job too) meets the "restricted" Pod Security Standard, with
    a read-only root filesystem; the Kino image runs as 10001 with /tmp an emptyDir."""
    spec = pod_spec(workload)
    assert spec is not None
    pod = spec["securityContext"]
    assert pod["runAsNonRoot"] is True
    assert pod["seccompProfile"] == {"type": "RuntimeDefault"}
    assert spec["automountServiceAccountToken"] is False
    volumes = {volume["name"]: volume for volume in spec.get("volumes", [])}
    for container in containers(workload):
        context = container["securityContext"]
        assert context["allowPrivilegeEscalation"] is False, container["name"]
        assert context["readOnlyRootFilesystem"] is True, container["name"]
        assert context["capabilities"] == {"drop": ["ALL"]}, container["name"]
        assert context.get("runAsNonRoot", pod["runAsNonRoot"]) is True
        assert context.get("runAsUser", pod.get("runAsUser", 0)) != 0
        mounts = {mount["mountPath"]: mount["name"] for mount in container["volumeMounts"]}
        assert "emptyDir" in volumes[mounts["/tmp"]], container["name"]
        if split_image(container["image"])[0] == KINO_IMAGE:
            assert context["runAsUser"] == pod["runAsUser"] == 10001


@pytest.mark.parametrize(("name", "workload"), ALL_WORKLOADS, ids=[n for n, _ in ALL_WORKLOADS])
def test_resources_are_bounded(name: str, workload: Manifest) -> None:
    for container in containers(workload):
        for bound in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(container["resources"][bound]), container["name"]


def quantity(value: str | int) -> float:
    units = {"m": 1e-3, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "": 1}
    match = re.fullmatch(r"([0-9.]+)([A-Za-z]*)", str(value))
    assert match, value
    return float(match[1]) * units[match[2]]


def test_transcoder_gets_the_most_cpu_and_memory() -> None:
    objects = load_manifests()
    transcoder = service_container(objects, "transcoder")["resources"]
    for service in SERVICES[:-1]:
        other = service_container(objects, service)["resources"]
        for bound in ("requests", "limits"):
            for resource in ("cpu", "memory"):
                assert quantity(transcoder[bound][resource]) > quantity(other[bound][resource])


@pytest.mark.parametrize("service", SERVICES)
def test_topology_spread(service: str) -> None:
    deployment = find(load_manifests(), "Deployment", service)
    constraints = deployment["spec"]["template"]["spec"]["topologySpreadConstraints"]
    assert {c["topologyKey"] for c in constraints} == {
        "topology.kubernetes.io/zone",
        "kubernetes.io/hostname",
    }
    for constraint in constraints:
        assert selector_matches(constraint["labelSelector"], pod_labels(deployment))


@pytest.mark.parametrize("service", SERVICES)
def test_shutdown_fits_the_grace_period(service: str) -> None:
    deployment = find(load_manifests(), "Deployment", service)
    spec = deployment["spec"]["template"]["spec"]
    container = service_container(load_manifests(), service)
    pre_stop = container.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds", 0)
    grace = float(env_value(container, "KINO_SHUTDOWN_GRACE_SECONDS"))
    assert pre_stop + grace < spec["terminationGracePeriodSeconds"]


def test_transcoder_finishes_its_job_and_works_in_tmp() -> None:
    objects = load_manifests()
    deployment = find(objects, "Deployment", "transcoder")
    container = service_container(objects, "transcoder")
    assert deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] == 600
    assert env_value(container, "KINO_SHUTDOWN_GRACE_SECONDS") == "570"
    work_dir = env_value(container, "KINO_WORK_DIR")
    mounts = {mount["mountPath"]: mount["name"] for mount in container["volumeMounts"]}
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    assert "emptyDir" in volumes[mounts[work_dir]]


def test_images_are_pinned() -> None:
    version = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["version"]
    for workload in workloads(load_manifests()).values():
        for container in containers(workload):
            name, tag, digest = split_image(container["image"])
            assert tag or digest, container["image"]
            assert tag != "latest", container["image"]
            if name == KINO_IMAGE:
                assert tag == version, container["image"]


# --- disruption and scaling ----------------------------------------------------------


def selects(selector: Manifest, workload: Manifest) -> bool:
    return selector_matches(selector, pod_labels(workload))


def test_every_deployment_has_a_pdb_that_allows_eviction() -> None:
    objects = load_manifests()
    budgets = of_kind(objects, "PodDisruptionBudget")
    for deployment in of_kind(objects, "Deployment"):
        (budget,) = [b for b in budgets if selects(b["spec"]["selector"], deployment)]
        assert budget["spec"].get("maxUnavailable", 0) >= 1, budget["metadata"]["name"]


def test_gateway_and_catalog_scale_on_cpu() -> None:
    objects = load_manifests()
    autoscalers = {
        h["spec"]["scaleTargetRef"]["name"]: h for h in of_kind(objects, "HorizontalPodAutoscaler")
    }
    assert set(autoscalers) == {"gateway", "catalog"}
    for name, hpa in autoscalers.items():
        assert hpa["spec"]["scaleTargetRef"]["kind"] == "Deployment"
        (metric,) = hpa["spec"]["metrics"]
        assert metric["resource"]["name"] == "cpu"
        assert hpa["spec"]["minReplicas"] >= 2
        # The autoscaler owns the count: a `replicas` would reset it on every apply.
        assert "replicas" not in find(objects, "Deployment", name)["spec"]
    assert "replicas" not in find(objects, "Deployment", "transcoder")["spec"]


def test_keda_scales_the_transcoder_on_its_queues() -> None:
    objects = load_manifests()
    scaled = find(objects, "ScaledObject", "transcoder")["spec"]
    assert scaled["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "transcoder",
    }
    assert scaled["minReplicaCount"] == 1
    prefix = config_map(objects)["KINO_AMQP_QUEUE_PREFIX"]
    unused = cast(Any, None)
    subscription = job_subscription(unused, unused, unused, delivery_limit=1)
    expected = {f"{prefix}.transcoder.{subscription.name}"}
    assert expected == {"kino.transcoder.jobs"}
    triggers = scaled["triggers"]
    assert {t["metadata"]["queueName"] for t in triggers} == expected
    for trigger in triggers:
        assert trigger["type"] == "rabbitmq"
        assert trigger["metadata"]["protocol"] == "amqp"
        assert trigger["metadata"]["mode"] == "QueueLength"
        auth = find(objects, "TriggerAuthentication", trigger["authenticationRef"]["name"])
        (ref,) = auth["spec"]["secretTargetRef"]
        assert ref["parameter"] == "host"
        assert ref["key"] in secret_templates()[ref["name"]]
        assert ref["key"] == "KINO_AMQP_URL"


def test_transcoder_max_replicas_is_set_per_overlay() -> None:
    assert find(base_objects(), "ScaledObject", "transcoder")["spec"]["maxReplicaCount"] == 10
    assert find(load_manifests(), "ScaledObject", "transcoder")["spec"]["maxReplicaCount"] == 4


# --- NetworkPolicies -----------------------------------------------------------------


def selector_matches(selector: Manifest, labels: dict[str, str]) -> bool:
    if any(labels.get(key) != value for key, value in selector.get("matchLabels", {}).items()):
        return False
    for expression in selector.get("matchExpressions", []):
        key, operator = expression["key"], expression["operator"]
        values = expression.get("values", [])
        ok = {
            "In": key in labels and labels[key] in values,
            "NotIn": key not in labels or labels[key] not in values,
            "Exists": key in labels,
            "DoesNotExist": key not in labels,
        }[operator]
        if not ok:
            return False
    return True


def peer_names(peer: Manifest, pods: dict[str, Manifest]) -> set[str]:
    """Workload names (this namespace), `ns:<name>` or `dns` a policy peer stands for."""
    if "namespaceSelector" in peer:
        namespace = peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
        if namespace == "kube-system" and peer["podSelector"]["matchLabels"] == {
            "k8s-app": "kube-dns"
        }:
            return {"dns"}
        return {f"ns:{namespace}"}
    assert set(peer) == {"podSelector"}, peer
    return {name for name, pod in pods.items() if selects(peer["podSelector"], pod)}


def allowed(objects: list[Manifest], name: str, direction: str) -> set[tuple[str, int]]:
    """(peer, port) pairs the NetworkPolicies allow `name`'s pods, "*" for any address."""
    pods = workloads(objects)
    pairs: set[tuple[str, int]] = set()
    for policy in of_kind(objects, "NetworkPolicy"):
        spec = policy["spec"]
        if direction not in spec["policyTypes"] or not selects(spec["podSelector"], pods[name]):
            continue
        key, peers_key = ("ingress", "from") if direction == "Ingress" else ("egress", "to")
        for rule in spec.get(key, []):
            peers: set[str] = set()
            for peer in rule.get(peers_key, [{"ipBlock": "*"}]):
                peers |= {"*"} if "ipBlock" in peer else peer_names(peer, pods)
            for port in rule["ports"]:
                pairs |= {(peer, port["port"]) for peer in peers}
    return pairs


def test_every_policy_declares_its_types() -> None:
    for policy in of_kind(load_manifests(), "NetworkPolicy"):
        assert policy["spec"]["policyTypes"], policy["metadata"]["name"]
    default = find(load_manifests(), "NetworkPolicy", "default-deny")["spec"]
    assert default == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}


#: Who may reach Kino's own workloads (the base alone has these and no stores).
KINO_INGRESS_FLOWS: dict[str, set[tuple[str, int]]] = {
    "gateway": {("ns:ingress-nginx", 8080)},
    "auth": {("gateway", 8081)},
    "catalog": {("gateway", 8082)},
    "transcoder": set(),
    "init-stores": set(),
}


def test_ingress_flows() -> None:
    objects = load_manifests()
    expected: dict[str, set[tuple[str, int]]] = {
        **KINO_INGRESS_FLOWS,
        "mongodb": {(c, 27017) for c in ("auth", "catalog", "init-stores")},
        "rabbitmq": {(c, 5672) for c in ("auth", "catalog", "transcoder", "minio", "ns:keda")},
        "minio": {(c, 9000) for c in ("catalog", "transcoder", "init-stores", "ns:ingress-nginx")},
    }
    assert set(workloads(objects)) == set(expected)
    for name, flows in expected.items():
        assert allowed(objects, name, "Ingress") == flows, name


def test_egress_flows() -> None:
    objects = load_manifests()
    dns = {("dns", 53)}
    mongo, amqp, s3 = {("*", 27017)}, {("*", 5672), ("*", 5671)}, {("*", 9000), ("*", 443)}
    expected = {
        "gateway": {("auth", 8081), ("catalog", 8082)} | dns,
        "auth": mongo | amqp | dns,
        "catalog": mongo | amqp | s3 | dns,
        "transcoder": amqp | s3 | dns,
        "init-stores": mongo | s3 | dns,
        "mongodb": dns,
        "rabbitmq": dns,
        "minio": {("rabbitmq", 5672)} | dns,
    }
    for name, flows in expected.items():
        assert allowed(objects, name, "Egress") == flows, name


def test_base_alone_admits_outside_traffic_to_the_gateway_only() -> None:
    objects = base_objects()
    assert set(workloads(objects)) == set(KINO_INGRESS_FLOWS)
    for name, flows in KINO_INGRESS_FLOWS.items():
        assert allowed(objects, name, "Ingress") == flows, name


# --- Ingress -------------------------------------------------------------------------


def nginx_size(value: str) -> int:
    match = re.fullmatch(r"([0-9]+)([kKmMgG]?)", value)
    assert match, value
    exponent = " kmg".index(match[2].lower() or " ")
    return int(match[1]) << (10 * exponent)


def test_gateway_ingress_streams_uploads_up_to_the_gateway_limit() -> None:
    objects = load_manifests()
    settings = config_map(objects)
    annotations = find(objects, "Ingress", "gateway")["metadata"]["annotations"]
    prefix = "nginx.ingress.kubernetes.io/"
    assert nginx_size(annotations[prefix + "proxy-body-size"]) == int(
        settings["KINO_GATEWAY_MAX_UPLOAD_BYTES"]
    )
    assert annotations[prefix + "proxy-request-buffering"] == "off"
    assert int(annotations[prefix + "proxy-read-timeout"]) >= float(
        settings["KINO_GATEWAY_UPLOAD_TIMEOUT_SECONDS"]
    )
    (rule,) = find(objects, "Ingress", "gateway")["spec"]["rules"]
    (path,) = rule["http"]["paths"]
    assert path["backend"]["service"] == {"name": "gateway", "port": {"name": "http"}}


def test_media_ingress_serves_the_public_s3_endpoint() -> None:
    objects = load_manifests()
    settings = config_map(objects)
    ingress = find(objects, "Ingress", "minio")
    (rule,) = ingress["spec"]["rules"]
    assert settings["KINO_S3_PUBLIC_ENDPOINT"] == f"https://{rule['host']}"
    assert [rule["host"]] == ingress["spec"]["tls"][0]["hosts"]
    (path,) = rule["http"]["paths"]
    backend = path["backend"]["service"]
    (port,) = find(objects, "Service", backend["name"])["spec"]["ports"]
    assert backend["port"]["name"] == port["name"]
    assert port["port"] == 9000
    annotations = ingress["metadata"]["annotations"]
    body = nginx_size(annotations["nginx.ingress.kubernetes.io/proxy-body-size"])
    limit = int(settings["KINO_UPLOAD_MAX_SIZE_BYTES"])
    assert limit < body <= limit + 16 * 2**20
    assert annotations["nginx.ingress.kubernetes.io/proxy-request-buffering"] == "off"


# --- configuration -------------------------------------------------------------------


def readme_settings() -> set[str]:
    text = (REPO_ROOT / "README.md").read_text()
    table = text[text.index("## Configuration") :]
    found: set[str] = set()
    for line in table.splitlines():
        if line.startswith("| `KINO_"):
            found |= set(re.findall(r"`(KINO_[A-Z0-9_]+)`", line.split("|")[1]))
    return found


def settings_names(*classes: type[BaseSettings]) -> set[str]:
    return {f"KINO_{field.upper()}" for cls in classes for field in cls.model_fields}


def kino_keys_set(objects: list[Manifest]) -> set[str]:
    keys = set(config_map(objects))
    keys |= {key for values in secret_templates().values() for key in values}
    for workload in workloads(objects).values():
        for container in containers(workload):
            keys |= {variable["name"] for variable in container.get("env", [])}
    return {key for key in keys if key.startswith("KINO_")}


def test_every_kino_variable_is_a_documented_setting() -> None:
    documented = readme_settings()
    assert "KINO_GATEWAY_MAX_UPLOAD_BYTES" in documented
    assert len(documented) > 40
    real = settings_names(*SETTINGS.values())
    for objects in (base_objects(), load_manifests()):
        keys = kino_keys_set(objects)
        assert keys - documented == set()
        assert keys - real == set()


def test_per_service_values_are_not_shared() -> None:
    """Settings whose defaults differ by service stay out of the shared ConfigMap."""
    shared = set(config_map(load_manifests())) | set(secret_templates()["kino-secrets"])
    for key in (
        "KINO_HTTP_PORT",
        "KINO_HTTP_HOST",
        "KINO_MONGO_DB",
        "KINO_AMQP_PREFETCH",
        "KINO_WORK_DIR",
        "KINO_SHUTDOWN_GRACE_SECONDS",
        "KINO_AUTH_URL",
        "KINO_CATALOG_URL",
    ):
        assert key not in shared, key


def with_real_secrets(env: dict[str, str]) -> dict[str, str]:
    """The environment with every placeholder replaced by a strong value."""
    replaced = {}
    for key, value in env.items():
        if key == "KINO_AUTH_SIGNING_KEY":
            value = generate_private_key_pem()
        replaced[key] = re.sub(
            re.escape(PLACEHOLDER_MARKER) + r"[A-Za-z0-9-]*",
            lambda _: secrets.token_hex(16),
            value,
        )
    return replaced


SetEnvironment = Callable[[dict[str, str]], None]


@pytest.fixture
def use_environment(monkeypatch: pytest.MonkeyPatch) -> SetEnvironment:
    """Replace every KINO_* variable of this process's environment (for this test)."""

    def apply(env: dict[str, str]) -> None:
        for key in list(os.environ):
            if key.startswith("KINO_"):
                monkeypatch.delenv(key)
        for key, value in env.items():
            monkeypatch.setenv(key, value)

    return apply


#: Settings that production needs from the deployment, never from a default.
REQUIRED = {
    "gateway": {"internal_secret", "auth_url", "catalog_url"},
    "auth": {"internal_secret", "mongo_url", "amqp_url", "auth_signing_key"},
    "catalog": {
        "internal_secret",
        "mongo_url",
        "amqp_url",
        "s3_endpoint",
        "s3_public_endpoint",
        "s3_access_key",
        "s3_secret_key",
    },
    "transcoder": {
        "internal_secret",
        "amqp_url",
        "s3_endpoint",
        "s3_access_key",
        "s3_secret_key",
        "work_dir",
    },
}


@pytest.mark.parametrize("service", SERVICES)
def test_service_settings_build_in_production(
    service: str, use_environment: SetEnvironment
) -> None:
    env = with_real_secrets(deployment_environment(service))
    use_environment(env)
    settings = cast(Any, SETTINGS[service]())
    assert settings.is_production
    assert settings.http_host == "0.0.0.0"
    assert settings.http_port == SERVICE_PORTS[service]
    assert REQUIRED[service] <= settings.model_fields_set
    # Every secret and every store URL comes from the deployment, none from a default.
    secret_or_url = {
        name for name, value in settings if isinstance(value, SecretStr) or name.endswith("_url")
    }
    assert secret_or_url <= settings.model_fields_set


def test_init_job_settings_build_in_production(use_environment: SetEnvironment) -> None:
    objects = load_manifests()
    job = find(objects, "Job", "init-stores")
    (init,) = job["spec"]["template"]["spec"]["initContainers"]
    use_environment(with_real_secrets(container_environment(init, objects)))
    settings = InitSettings()
    assert settings.is_production
    assert {"mongo_url", "s3_endpoint", "s3_access_key", "s3_secret_key"} <= (
        settings.model_fields_set
    )


#: The placeholders each service's production check names.
REFUSED = {
    "gateway": {"KINO_INTERNAL_SECRET"},
    "auth": {"KINO_INTERNAL_SECRET", "KINO_MONGO_URL", "KINO_AMQP_URL", "KINO_AUTH_SIGNING_KEY"},
    "catalog": {"KINO_INTERNAL_SECRET", "KINO_MONGO_URL", "KINO_AMQP_URL", "KINO_S3_SECRET_KEY"},
    "transcoder": {"KINO_INTERNAL_SECRET", "KINO_AMQP_URL", "KINO_S3_SECRET_KEY"},
}


@pytest.mark.parametrize("service", SERVICES)
def test_secret_placeholders_are_refused_in_production(
    service: str, use_environment: SetEnvironment
) -> None:
    """An applied copy of the template could not run: every placeholder is a
    development secret to the settings' production check."""
    assert PLACEHOLDER_MARKER == DEV_SECRET_MARKER
    use_environment(deployment_environment(service))
    with pytest.raises(ValueError, match="refuses development or default secrets") as refused:
        SETTINGS[service]()
    for name in REFUSED[service]:
        assert name in str(refused.value), name


def test_gateway_reaches_auth_and_catalog_services() -> None:
    objects = load_manifests()
    gateway = service_container(objects, "gateway")
    for variable, service in [("KINO_AUTH_URL", "auth"), ("KINO_CATALOG_URL", "catalog")]:
        url = urlsplit(env_value(gateway, variable))
        (port,) = find(objects, "Service", service)["spec"]["ports"]
        assert (url.hostname, url.port) == (service, port["port"])


def test_secret_templates_match_the_self_contained_stores() -> None:
    objects = load_manifests()
    kino, stores = secret_templates()["kino-secrets"], secret_templates()["kino-stores"]
    mongo = urlsplit(kino["KINO_MONGO_URL"])
    assert (mongo.username, mongo.password) == (
        stores["MONGO_INITDB_ROOT_USERNAME"],
        stores["MONGO_INITDB_ROOT_PASSWORD"],
    )
    amqp = urlsplit(kino["KINO_AMQP_URL"])
    assert (amqp.username, amqp.password) == (
        stores["RABBITMQ_DEFAULT_USER"],
        stores["RABBITMQ_DEFAULT_PASS"],
    )
    s3 = urlsplit(config_map(objects)["KINO_S3_ENDPOINT"])
    for url, name in [(mongo, "mongodb"), (amqp, "rabbitmq"), (s3, "minio")]:
        service = find(objects, "Service", name)
        assert service["spec"]["clusterIP"] == "None"  # headless, for the StatefulSet
        assert (url.hostname, url.port) == (name, service["spec"]["ports"][0]["port"])
        assert find(objects, "StatefulSet", name)["spec"]["serviceName"] == name


def test_minio_notifies_the_exchange_catalog_consumes() -> None:
    objects = load_manifests()
    settings = config_map(objects)
    (minio,) = find(objects, "StatefulSet", "minio")["spec"]["template"]["spec"]["containers"]
    notify = {
        v["name"].removeprefix("MINIO_NOTIFY_AMQP_"): v
        for v in minio["env"]
        if v["name"].startswith("MINIO_NOTIFY_AMQP_")
    }
    (target,) = {name.rpartition("_")[2] for name in notify if name.startswith("ENABLE_")}
    values = {
        name.removesuffix("_" + target): v.get("value")
        for name, v in notify.items()
        if name.endswith("_" + target)
    }
    assert values["ENABLE"] == "on"
    assert values["EXCHANGE"] == settings["KINO_STORAGE_EVENTS_EXCHANGE"]
    assert values["EXCHANGE_TYPE"] == "fanout"
    assert values["DURABLE"] == "on"
    assert values["DELIVERY_MODE"] == "2"
    url = notify["URL_" + target]["valueFrom"]["secretKeyRef"]
    assert (url["name"], url["key"]) == ("kino-secrets", "KINO_AMQP_URL")
    # Catalog declares and binds the same exchange: durable, fanout.
    source = storage_events_source(settings["KINO_STORAGE_EVENTS_EXCHANGE"], "kino-media")
    assert source.exchange_type.value == "fanout"
    # The init Job subscribes the bucket to that target: MinIO's ARN carries the
    # variables' suffix verbatim.
    job = find(objects, "Job", "init-stores")
    (mc,) = job["spec"]["template"]["spec"]["containers"]
    assert env_value(mc, "NOTIFY_ARN") == f"arn:minio:sqs::{target}:amqp"


def test_readme_explains_the_secrets_and_the_stores() -> None:
    readme = (K8S_DIR / "README.md").read_text()
    for needle in (
        "create secret generic kino-secrets",
        "create secret generic kino-stores",
        "secret.example.yaml",
        "overlays/self-contained",
        "maxReplicaCount",
        "MINIO_NOTIFY_AMQP_",
        "mc event add",
        "kubectl -n kino delete job init-stores",
        "tests/deploy/test_k8s_manifests.py",
    ):
        assert needle in readme, needle
