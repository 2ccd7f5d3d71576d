"""Read the Kubernetes manifests under `deploy/k8s/` the way `kubectl apply -k` would.

For tests that need what the deployment runs, without a cluster or `kubectl`:

- `load_manifests()`: every object of the self-contained install (the base plus the
  `stores/` component, as `deploy/k8s/overlays/self-contained/` renders them).
- `deployment_commands()`: service name -> its container's command.
- `deployment_environment(service)`: the environment that service's container gets.

`render()` is a small kustomize for exactly the features these kustomizations use
(`resources`, `components`, `patches` (strategic-merge or JSON 6902), `images`,
`namespace`); it refuses any other kustomization field rather than ignore it, and
`tests/deploy/test_k8s_manifests.py` compares it with `kubectl kustomize` where a
`kubectl` is at hand.

Secrets are not part of the manifests (the operator creates them), so the
environment's secret values are the placeholders of the templates
`deploy/k8s/secret.example.yaml` (`kino-secrets`) and `deploy/k8s/stores/secret.example.yaml`
(`kino-stores`). Every placeholder starts with `kino-dev-`, so a service started
with them and `KINO_ENV=production` (the ConfigMap's) refuses to start: replace them
(see `PLACEHOLDER_MARKER`) before running a service in production mode.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
K8S_DIR = REPO_ROOT / "deploy" / "k8s"
BASE_DIR = K8S_DIR / "base"
STORES_DIR = K8S_DIR / "stores"
SELF_CONTAINED_DIR = K8S_DIR / "overlays" / "self-contained"
#: Secret templates, never applied; the source of `deployment_environment`'s secrets.
SECRET_TEMPLATES = (K8S_DIR / "secret.example.yaml", STORES_DIR / "secret.example.yaml")
#: Every placeholder in the secret templates starts with this (the settings'
#: development-secret marker, which production mode refuses).
PLACEHOLDER_MARKER = "kino-dev-"

KUSTOMIZATION_NAMES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
#: The kustomization fields `render` implements; any other one is an error.
SUPPORTED_FIELDS = frozenset(
    {"apiVersion", "kind", "namespace", "resources", "components", "patches", "images"}
)
CLUSTER_SCOPED_KINDS = frozenset(
    {
        "Namespace",
        "ClusterRole",
        "ClusterRoleBinding",
        "CustomResourceDefinition",
        "PersistentVolume",
        "StorageClass",
        "PriorityClass",
        "IngressClass",
        "ClusterTriggerAuthentication",
    }
)
WORKLOAD_KINDS = frozenset({"Deployment", "StatefulSet", "DaemonSet", "Job"})

Manifest = dict[str, Any]


class KustomizeError(ValueError):
    """A kustomization this module cannot (or kustomize would not) render."""


def load_yaml_documents(path: Path) -> list[Manifest]:
    """The non-empty YAML documents of one file."""
    with path.open(encoding="utf-8") as stream:
        return [doc for doc in yaml.safe_load_all(stream) if doc is not None]


def kustomization_file(directory: Path) -> Path:
    for name in KUSTOMIZATION_NAMES:
        candidate = directory / name
        if candidate.is_file():
            return candidate
    raise KustomizeError(f"{directory} has no kustomization.yaml")


def read_kustomization(directory: Path) -> Manifest:
    path = kustomization_file(directory)
    (doc,) = load_yaml_documents(path)
    unknown = set(doc) - SUPPORTED_FIELDS
    if unknown:
        raise KustomizeError(f"{path}: fields this renderer does not implement: {sorted(unknown)}")
    return dict(doc)


def identity(obj: Manifest) -> tuple[str, str, str, str]:
    """(apiVersion, kind, namespace, name): what kustomize tells objects apart by."""
    meta = obj.get("metadata", {})
    return (obj["apiVersion"], obj["kind"], meta.get("namespace", ""), meta["name"])


def render(directory: Path) -> list[Manifest]:
    """The objects `kubectl kustomize <directory>` prints (in file order, not kustomize's
    kind order)."""
    kustomization = read_kustomization(directory)
    if kustomization.get("kind", "Kustomization") != "Kustomization":
        raise KustomizeError(f"{directory}: a {kustomization['kind']} cannot be built alone")
    return _build(directory, kustomization)


def _build(directory: Path, kustomization: Manifest) -> list[Manifest]:
    objects: list[Manifest] = []
    for entry in kustomization.get("resources", []):
        path = (directory / entry).resolve()
        if path.is_dir():
            sub = read_kustomization(path)
            if sub.get("kind", "Kustomization") != "Kustomization":
                raise KustomizeError(f"{directory}: resource {entry} is a {sub['kind']}")
            objects.extend(_build(path, sub))
        else:
            objects.extend(copy.deepcopy(load_yaml_documents(path)))
    for entry in kustomization.get("components", []):
        path = (directory / entry).resolve()
        component = read_kustomization(path)
        if component.get("kind") != "Component":
            raise KustomizeError(f"{directory}: component {entry} is not kind: Component")
        objects = _apply_component(path, component, objects)
    objects = _transform(directory, kustomization, objects)
    _check_unique(directory, objects)
    return objects


def _apply_component(
    directory: Path, component: Manifest, objects: list[Manifest]
) -> list[Manifest]:
    for entry in component.get("resources", []):
        path = (directory / entry).resolve()
        if path.is_dir():
            objects.extend(_build(path, read_kustomization(path)))
        else:
            objects.extend(copy.deepcopy(load_yaml_documents(path)))
    return _transform(directory, component, objects)


def _transform(directory: Path, kustomization: Manifest, objects: list[Manifest]) -> list[Manifest]:
    for patch in kustomization.get("patches", []):
        objects = _apply_patch(directory, patch, objects)
    for image in kustomization.get("images", []):
        for obj in objects:
            for container in _containers(obj):
                container["image"] = _retag(container["image"], image)
    namespace = kustomization.get("namespace")
    if namespace:
        for obj in objects:
            if obj["kind"] not in CLUSTER_SCOPED_KINDS:
                obj.setdefault("metadata", {})["namespace"] = namespace
    return objects


def _check_unique(directory: Path, objects: list[Manifest]) -> None:
    seen: set[tuple[str, str, str, str]] = set()
    for obj in objects:
        key = identity(obj)
        if key in seen:
            raise KustomizeError(f"{directory}: {key} is defined twice")
        seen.add(key)


def _apply_patch(directory: Path, patch: Manifest, objects: list[Manifest]) -> list[Manifest]:
    if "path" in patch:
        (body,) = load_yaml_documents(directory / patch["path"])
    elif "patch" in patch:
        body = yaml.safe_load(patch["patch"])
    else:
        raise KustomizeError(f"{directory}: a patch without `path` or `patch`: {patch}")
    target = patch.get("target")
    if isinstance(body, list):  # JSON 6902
        if target is None:
            raise KustomizeError(f"{directory}: a JSON 6902 patch needs a target")
        matched = [obj for obj in objects if _matches(obj, target)]
        for obj in matched:
            for operation in body:
                _json6902(obj, operation)
    else:  # strategic merge
        target = target or {"kind": body["kind"], "name": body["metadata"]["name"]}
        matched = [obj for obj in objects if _matches(obj, target)]
        for obj in matched:
            _strategic_merge(obj, body)
    if not matched:
        raise KustomizeError(f"{directory}: patch {patch} matches no object")
    return objects


def _matches(obj: Manifest, target: Manifest) -> bool:
    group, _, version = obj["apiVersion"].rpartition("/")
    checks = {
        "group": group,
        "version": version,
        "kind": obj["kind"],
        "name": obj["metadata"]["name"],
        "namespace": obj["metadata"].get("namespace", ""),
    }
    return all(checks[key] == value for key, value in target.items() if key in checks)


def _strategic_merge(into: Manifest, patch: Manifest) -> None:
    """Maps merge key by key; lists of named maps merge by `name`; other lists replace."""
    for key, value in patch.items():
        if value is None:
            into.pop(key, None)
        elif isinstance(value, dict) and isinstance(into.get(key), dict):
            _strategic_merge(into[key], value)
        elif _named_list(value) and _named_list(into.get(key)):
            by_name = {item["name"]: item for item in into[key]}
            for item in value:
                if item["name"] in by_name:
                    _strategic_merge(by_name[item["name"]], item)
                else:
                    into[key].append(copy.deepcopy(item))
        else:
            into[key] = copy.deepcopy(value)


def _named_list(value: object) -> bool:
    return isinstance(value, list) and all(
        isinstance(item, dict) and "name" in item for item in value
    )


def _json6902(obj: Manifest, operation: Manifest) -> None:
    tokens = [
        token.replace("~1", "/").replace("~0", "~") for token in operation["path"].split("/")[1:]
    ]
    *parents, last = tokens
    node: Any = obj
    for token in parents:
        node = node[int(token)] if isinstance(node, list) else node[token]
    op = operation["op"]
    if isinstance(node, list):
        index = len(node) if last == "-" else int(last)
        if op == "add":
            node.insert(index, copy.deepcopy(operation["value"]))
        elif op == "replace":
            node[index] = copy.deepcopy(operation["value"])
        elif op == "remove":
            del node[index]
        else:
            raise KustomizeError(f"unsupported JSON 6902 operation {op!r}")
    elif op in {"add", "replace"}:
        if op == "replace" and last not in node:
            raise KustomizeError(f"replace of a missing path {operation['path']}")
        node[last] = copy.deepcopy(operation["value"])
    elif op == "remove":
        del node[last]
    else:
        raise KustomizeError(f"unsupported JSON 6902 operation {op!r}")


def _retag(image: str, rule: Manifest) -> str:
    name, tag, digest = split_image(image)
    if name != rule["name"]:
        return image
    name = str(rule.get("newName", name))
    if "digest" in rule:
        return f"{name}@{rule['digest']}"
    if "newTag" in rule:
        return f"{name}:{rule['newTag']}"
    return name + (f"@{digest}" if digest else f":{tag}" if tag else "")


def split_image(image: str) -> tuple[str, str, str]:
    """(name, tag, digest) of an image reference; tag and digest may be ""."""
    name, _, digest = image.partition("@")
    slash = name.rfind("/")
    colon = name.rfind(":")
    tag = ""
    if colon > slash:
        name, tag = name[:colon], name[colon + 1 :]
    return name, tag, digest


def pod_spec(obj: Manifest) -> Manifest | None:
    """The pod template's spec of a workload, else None."""
    if obj["kind"] not in WORKLOAD_KINDS:
        return None
    spec: Manifest = obj["spec"]["template"]["spec"]
    return spec


def pod_labels(obj: Manifest) -> dict[str, str]:
    labels: dict[str, str] = obj["spec"]["template"]["metadata"].get("labels", {})
    return labels


def _containers(obj: Manifest) -> Iterator[Manifest]:
    spec = pod_spec(obj)
    if spec is not None:
        yield from spec.get("initContainers", [])
        yield from spec.get("containers", [])


def containers(obj: Manifest) -> list[Manifest]:
    """Init containers, then containers, of a workload's pod template."""
    return list(_containers(obj))


@functools.cache
def _self_contained() -> tuple[Manifest, ...]:
    return tuple(render(SELF_CONTAINED_DIR))


def load_manifests() -> list[Manifest]:
    """Every object of the base plus the stores component, as the self-contained
    overlay renders them (patches applied). A fresh copy on each call."""
    return copy.deepcopy(list(_self_contained()))


def find(objects: list[Manifest], kind: str, name: str) -> Manifest:
    for obj in objects:
        if obj["kind"] == kind and obj["metadata"]["name"] == name:
            return obj
    raise KeyError(f"no {kind} {name}")


def _service_container(deployment: Manifest) -> Manifest:
    name = deployment["metadata"]["name"]
    for container in deployment["spec"]["template"]["spec"]["containers"]:
        if container["name"] == name:
            found: Manifest = container
            return found
    raise KeyError(f"Deployment {name} has no container named {name}")


def deployment_commands() -> dict[str, list[str]]:
    """Service (Deployment) name -> the command its container runs, e.g.
    `{"gateway": ["python", "-m", "services.gateway"], ...}`."""
    return {
        obj["metadata"]["name"]: list(_service_container(obj)["command"])
        for obj in load_manifests()
        if obj["kind"] == "Deployment"
    }


def secret_templates() -> dict[str, dict[str, str]]:
    """Secret name -> its template's keys and placeholder values."""
    found: dict[str, dict[str, str]] = {}
    for path in SECRET_TEMPLATES:
        for doc in load_yaml_documents(path):
            found[doc["metadata"]["name"]] = {
                key: str(value) for key, value in doc.get("stringData", {}).items()
            }
    return found


def container_environment(container: Manifest, objects: list[Manifest]) -> dict[str, str]:
    """The environment a container gets: its `envFrom` sources in order (ConfigMaps
    from `objects`, Secrets from the templates), then its `env` (literal values, and
    `valueFrom` ConfigMap and Secret keys), later ones winning as in Kubernetes."""
    config_maps = {
        obj["metadata"]["name"]: {key: str(value) for key, value in obj.get("data", {}).items()}
        for obj in objects
        if obj["kind"] == "ConfigMap"
    }
    secrets = secret_templates()
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            env.update(config_maps[source["configMapRef"]["name"]])
        elif "secretRef" in source:
            env.update(secrets[source["secretRef"]["name"]])
    for variable in container.get("env", []):
        if "value" in variable:
            env[variable["name"]] = str(variable["value"])
            continue
        reference = variable.get("valueFrom", {})
        if "configMapKeyRef" in reference:
            ref = reference["configMapKeyRef"]
            env[variable["name"]] = config_maps[ref["name"]][ref["key"]]
        elif "secretKeyRef" in reference:
            ref = reference["secretKeyRef"]
            env[variable["name"]] = secrets[ref["name"]][ref["key"]]
    return env


def deployment_environment(service: str) -> dict[str, str]:
    """The environment of `service`'s container: the `kino-config` ConfigMap (as the
    self-contained overlay patches it), the `kino-secrets` keys with the template's
    placeholder values (see the module docstring), then the Deployment's own `env`."""
    objects = load_manifests()
    deployment = find(objects, "Deployment", service)
    return container_environment(_service_container(deployment), objects)
