"""The Docker Compose deployment, checked offline (no Docker engine needed).

`docker-compose.yml` is interpolated from `.env.example` and validated against the
Compose Specification's JSON schema (vendored in `deploy/compose/`); then its wiring:
the Kino services' commands, healthchecks, start order, published ports and settings
(each one a real setting of that service, complete enough to build the service's
settings, refused in production with the development values), MinIO's bucket
notification against what catalog declares, and the Dockerfile's promises.
"""

from __future__ import annotations

import json
import os
import re
import secrets
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import pytest

from ops.init_stores import InitSettings
from services.auth.settings import AuthSettings
from services.auth.token_issuer import generate_private_key_pem
from services.catalog.settings import CatalogSettings
from services.gateway.settings import GatewaySettings
from services.transcoder.settings import TranscoderSettings
from shared.config import SETTINGS_CONFIG, KinoSettings
from tests.deploy.compose_file import (
    COMPOSE_FILE,
    ENV_EXAMPLE,
    KINO_SERVICES,
    ROOT,
    SCHEMA_FILE,
    InterpolationError,
    compose_commands,
    compose_environment,
    interpolate,
    load_compose,
    read_env_file,
    references,
)

#: Every container of the Kino image → the settings class it builds from its environment.
SETTINGS: dict[str, type[KinoSettings]] = {
    "gateway": GatewaySettings,
    "auth": AuthSettings,
    "catalog": CatalogSettings,
    "transcoder": TranscoderSettings,
    "init-stores": InitSettings,
}
KINO_IMAGE_SERVICES = (*KINO_SERVICES, "init-stores")
INIT_SERVICES = ("init-stores", "minio-init")
DOCKERFILE = ROOT / "Dockerfile"
HEALTHCHECK = ["CMD", "python", "-m", "shared.healthcheck"]
MINIO_TARGET = "kino"  # MINIO_NOTIFY_AMQP_*_kino
MINIO_ARN = f"arn:minio:sqs::{MINIO_TARGET}:amqp"
PROD_SECRET_VARIABLES = (
    "KINO_INTERNAL_SECRET",
    "MONGO_ROOT_PASSWORD",
    "RABBITMQ_PASSWORD",
    "KINO_S3_SECRET_KEY",
)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load_compose()


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = compose["services"]
    return found


def schema_errors(document: dict[str, Any]) -> list[str]:
    schema = json.loads(SCHEMA_FILE.read_text())
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    validator = validator_class(schema)
    return [
        f"{'/'.join(str(p) for p in error.absolute_path) or '<root>'}: {error.message}"
        for error in validator.iter_errors(document)
    ]


def seconds(duration: str) -> float:
    """A Compose duration (`1m30s`, `10m`, `45s`, `500ms`) in seconds."""
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001, "us": 1e-6}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|us|h|m|s)", duration)
    assert parts, f"not a duration: {duration!r}"
    assert "".join(n + u for n, u in parts) == duration, f"not a duration: {duration!r}"
    return sum(float(n) * units[u] for n, u in parts)


def dependencies(services: dict[str, Any], name: str) -> set[str]:
    """Every service `name` waits for, directly or through another one."""
    found: set[str] = set()
    pending = [name]
    while pending:
        for dependency in services[pending.pop()].get("depends_on", {}):
            if dependency not in found:
                found.add(dependency)
                pending.append(dependency)
    return found


def env_names(settings_class: type[KinoSettings]) -> set[str]:
    prefix = SETTINGS_CONFIG.get("env_prefix", "")
    return {(prefix + name).upper() for name in settings_class.model_fields}


@pytest.fixture
def isolated_environment(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No `KINO_*` variable of the test process reaches the settings built here."""
    for name in list(os.environ):
        if name.upper().startswith("KINO_"):
            monkeypatch.delenv(name)
    return monkeypatch


def build_settings(
    monkeypatch: pytest.MonkeyPatch, service: str, environment: dict[str, str]
) -> KinoSettings:
    with monkeypatch.context() as patch:
        for name, value in environment.items():
            patch.setenv(name, value)
        return SETTINGS[service]()


def production_env_file(tmp_path: Path) -> Path:
    """`.env.example` with KINO_ENV=production, every secret replaced and a signing key."""
    values = read_env_file(ENV_EXAMPLE)
    values["KINO_ENV"] = "production"
    for name in PROD_SECRET_VARIABLES:
        values[name] = secrets.token_urlsafe(24)
    lines = [f"{name}={value}" for name, value in values.items()]
    lines.append("KINO_AUTH_SIGNING_KEY=" + json.dumps(generate_private_key_pem()))
    path = tmp_path / ".env"
    path.write_text("\n".join(lines) + "\n")
    return path


# --- the interpolation helper ----------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("plain", "plain"),
        ("$$HOME and $${X}", "$HOME and ${X}"),
        ("a-$SET-b", "a-value-b"),
        ("${SET}/${UNSET}", "value/"),
        ("${UNSET:-fallback}", "fallback"),
        ("${EMPTY:-fallback}|${EMPTY-fallback}", "fallback|"),
        ("${SET:-fallback}", "value"),
        ("${UNSET:-${SET}}", "value"),
        ("${UNSET:-http://h:${SET}/x}", "http://h:value/x"),
        ("${SET:?must be set}", "value"),
        ("${EMPTY?may be empty}", ""),
        ("${SET:+other}|${EMPTY:+other}|${EMPTY+other}|${UNSET+other}", "other||other|"),
    ],
)
def test_interpolation_follows_the_compose_specification(text: str, expected: str) -> None:
    assert interpolate(text, {"SET": "value", "EMPTY": ""}) == expected


@pytest.mark.parametrize(
    "text", ["${UNSET:?set it}", "${EMPTY:?set it}", "${UNSET?set it}", "${BROKEN", "$ x", "${}"]
)
def test_interpolation_refuses_missing_required_variables_and_bad_syntax(text: str) -> None:
    with pytest.raises(InterpolationError):
        interpolate(text, {"EMPTY": ""})


def test_a_missing_env_file_value_is_an_error(tmp_path: Path) -> None:
    incomplete = tmp_path / ".env"
    incomplete.write_text(
        "".join(
            line + "\n"
            for line in ENV_EXAMPLE.read_text().splitlines()
            if not line.startswith("KINO_INTERNAL_SECRET=")
        )
    )
    with pytest.raises(InterpolationError, match="KINO_INTERNAL_SECRET"):
        load_compose(incomplete)


# --- the Compose Specification ---------------------------------------------------------


def test_compose_file_matches_the_compose_specification(compose: dict[str, Any]) -> None:
    assert schema_errors(compose) == []


@pytest.mark.parametrize(
    ("service", "path", "value"),
    [
        ("gateway", ["healthcheck", "intervall"], "10s"),
        ("auth", ["depends_on", "mongo", "condition"], "service_ready"),
        ("catalog", ["ports"], "8082:8082"),
        ("transcoder", ["read_only"], ["yes"]),
    ],
)
def test_the_schema_check_is_not_vacuous(
    compose: dict[str, Any], service: str, path: list[str], value: Any
) -> None:
    broken = json.loads(json.dumps(compose))
    node = broken["services"][service]
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    errors = schema_errors(broken)
    assert errors
    assert all(error.startswith(f"services/{service}") for error in errors), errors


def test_env_example_defines_every_variable_used_without_a_default() -> None:
    defined = read_env_file(ENV_EXAMPLE)
    required = {ref.name for ref in references() if ref.required}
    assert required, "the compose file reads its secrets from .env"
    assert required <= set(defined), sorted(required - set(defined))
    assert all(defined[name] for name in required)


def test_env_example_holds_only_development_secrets() -> None:
    values = read_env_file(ENV_EXAMPLE)
    assert values["KINO_ENV"] == "development"
    for name in PROD_SECRET_VARIABLES:
        assert values[name].startswith("kino-dev-"), name
    assert "KINO_AUTH_SIGNING_KEY" not in values
    text = ENV_EXAMPLE.read_text()
    assert "KINO_ENV=production" in text
    assert "refuse" in text


# --- the Kino services -----------------------------------------------------------------


def test_each_kino_service_runs_its_module() -> None:
    assert compose_commands() == {
        name: ["python", "-m", f"services.{name}"] for name in KINO_SERVICES
    }


def test_init_stores_runs_ops_init_stores(services: dict[str, Any]) -> None:
    assert services["init-stores"]["command"] == ["python", "-m", "ops.init_stores"]


@pytest.mark.parametrize("name", KINO_IMAGE_SERVICES)
def test_kino_containers_share_the_hardened_image(services: dict[str, Any], name: str) -> None:
    service = services[name]
    assert service["image"] == services["gateway"]["image"]
    assert service["build"]["context"] == "."
    assert service["read_only"] is True
    assert "/tmp" in service["tmpfs"]
    assert service["cap_drop"] == ["ALL"]
    assert "no-new-privileges:true" in service["security_opt"]


@pytest.mark.parametrize("name", KINO_SERVICES)
def test_kino_services_have_healthchecks_and_ordered_dependencies(
    services: dict[str, Any], name: str
) -> None:
    service = services[name]
    healthcheck = service["healthcheck"]
    assert healthcheck["test"] == HEALTHCHECK
    assert not healthcheck.get("disable", False)
    assert seconds(healthcheck["timeout"]) > 3  # the probe itself waits up to 3 s
    depends_on = service["depends_on"]
    assert isinstance(depends_on, dict)
    assert depends_on
    for dependency, spec in depends_on.items():
        expected = (
            "service_completed_successfully" if dependency in INIT_SERVICES else "service_healthy"
        )
        assert spec["condition"] == expected, (name, dependency)
        assert dependency in services
        if expected == "service_healthy":
            assert "healthcheck" in services[dependency], dependency


def test_every_store_a_service_uses_is_ready_first(services: dict[str, Any]) -> None:
    uses = {
        "KINO_MONGO_URL": "mongo",
        "KINO_AMQP_URL": "rabbitmq",
        "KINO_S3_ENDPOINT": "minio",
        "KINO_AUTH_URL": "auth",
        "KINO_CATALOG_URL": "catalog",
    }
    for name in KINO_IMAGE_SERVICES:
        environment = compose_environment(name)
        for variable, store in uses.items():
            if variable in environment:
                assert store in dependencies(services, name), (name, store)
    for name in ("auth", "catalog"):
        assert "init-stores" in services[name]["depends_on"]
    for name in ("catalog", "transcoder", "init-stores"):
        assert "minio-init" in services[name]["depends_on"]
    assert services["minio"]["depends_on"] == {"rabbitmq": {"condition": "service_healthy"}}


def test_init_services_run_once(services: dict[str, Any]) -> None:
    for name in INIT_SERVICES:
        assert services[name]["restart"] == "no"
    assert services["init-stores"]["healthcheck"] == {"disable": True}


def test_only_the_gateway_and_minio_s3_are_published(services: dict[str, Any]) -> None:
    published = {name: service["ports"] for name, service in services.items() if "ports" in service}
    assert published == {"gateway": ["8080:8080"], "minio": ["9000:9000"]}


def test_stores_keep_their_data_in_named_volumes(compose: dict[str, Any]) -> None:
    services, volumes = compose["services"], compose["volumes"]
    for name, path in {
        "mongo": "/data/db",
        "rabbitmq": "/var/lib/rabbitmq",
        "minio": "/data",
    }.items():
        mounts = dict(volume.split(":", 1)[::-1] for volume in services[name]["volumes"])
        assert mounts[path] in volumes, name
    assert services["rabbitmq"]["hostname"] == "rabbitmq"  # stable node name


# --- the settings each Kino container gets -----------------------------------------------


@pytest.mark.parametrize("name", KINO_IMAGE_SERVICES)
def test_every_kino_variable_is_a_setting_of_that_service(name: str) -> None:
    readme = (ROOT / "README.md").read_text()
    settings = env_names(SETTINGS[name])
    for variable in compose_environment(name):
        assert variable.startswith("KINO_"), variable
        assert variable in settings, f"{name} does not read {variable}"
        assert f"`{variable}`" in readme, f"{variable} is not in the README's table"


@pytest.mark.parametrize("name", KINO_SERVICES)
def test_services_listen_on_all_interfaces_on_their_own_port(name: str) -> None:
    environment = compose_environment(name)
    assert environment["KINO_HTTP_HOST"] == "0.0.0.0"
    default_port = SETTINGS[name].model_fields["http_port"].default
    assert environment["KINO_HTTP_PORT"] == str(default_port)
    assert environment["KINO_ENV"] == read_env_file(ENV_EXAMPLE)["KINO_ENV"]


def test_gateway_reaches_auth_and_catalog() -> None:
    gateway = compose_environment("gateway")
    for upstream in ("auth", "catalog"):
        url = urlsplit(gateway[f"KINO_{upstream.upper()}_URL"])
        assert url.hostname == upstream
        assert url.port == int(compose_environment(upstream)["KINO_HTTP_PORT"])


def test_clients_get_urls_for_the_published_minio_port() -> None:
    assert compose_environment("catalog")["KINO_S3_PUBLIC_ENDPOINT"] == "http://localhost:9000"


def test_store_credentials_match_the_stores(services: dict[str, Any]) -> None:
    mongo = services["mongo"]["environment"]
    rabbitmq = services["rabbitmq"]["environment"]
    minio = services["minio"]["environment"]
    for name in ("auth", "catalog", "init-stores"):
        url = urlsplit(compose_environment(name)["KINO_MONGO_URL"])
        assert (url.hostname, url.port) == ("mongo", 27017)
        assert (url.username, url.password) == (
            mongo["MONGO_INITDB_ROOT_USERNAME"],
            mongo["MONGO_INITDB_ROOT_PASSWORD"],
        )
    for name in ("auth", "catalog", "transcoder"):
        url = urlsplit(compose_environment(name)["KINO_AMQP_URL"])
        assert (url.hostname, url.port) == ("rabbitmq", 5672)
        assert (url.username, url.password) == (
            rabbitmq["RABBITMQ_DEFAULT_USER"],
            rabbitmq["RABBITMQ_DEFAULT_PASS"],
        )
    for name in ("catalog", "transcoder", "init-stores"):
        environment = compose_environment(name)
        assert environment["KINO_S3_ENDPOINT"] == "http://minio:9000"
        assert environment["KINO_S3_ACCESS_KEY"] == minio["MINIO_ROOT_USER"]
        assert environment["KINO_S3_SECRET_KEY"] == minio["MINIO_ROOT_PASSWORD"]


def test_transcoder_finishes_its_job_before_it_is_killed(services: dict[str, Any]) -> None:
    transcoder = services["transcoder"]
    environment = compose_environment("transcoder")
    grace = float(environment["KINO_SHUTDOWN_GRACE_SECONDS"])
    stop = seconds(transcoder["stop_grace_period"])
    assert stop >= 300
    assert stop - 60 <= grace < stop
    work_dir = environment["KINO_WORK_DIR"]
    mounted = [volume.split(":")[1] for volume in transcoder.get("volumes", [])]
    assert work_dir in mounted or work_dir in transcoder["tmpfs"]


@pytest.mark.parametrize("name", KINO_SERVICES)
def test_docker_waits_for_the_shutdown_grace(services: dict[str, Any], name: str) -> None:
    environment = compose_environment(name)
    default = SETTINGS[name].model_fields["shutdown_grace_seconds"].default
    grace = float(environment.get("KINO_SHUTDOWN_GRACE_SECONDS", default))
    assert seconds(services[name]["stop_grace_period"]) > grace


@pytest.mark.parametrize("name", KINO_IMAGE_SERVICES)
def test_development_values_build_every_services_settings(
    isolated_environment: pytest.MonkeyPatch, name: str
) -> None:
    settings = build_settings(isolated_environment, name, compose_environment(name))
    assert settings.env == "development"


@pytest.mark.parametrize("name", KINO_IMAGE_SERVICES)
def test_production_refuses_the_development_values(
    isolated_environment: pytest.MonkeyPatch, name: str
) -> None:
    environment = {**compose_environment(name), "KINO_ENV": "production"}
    with pytest.raises(ValueError, match="KINO_"):
        build_settings(isolated_environment, name, environment)


@pytest.mark.parametrize("name", KINO_IMAGE_SERVICES)
def test_production_values_from_env_reach_every_service(
    isolated_environment: pytest.MonkeyPatch, tmp_path: Path, name: str
) -> None:
    environment = compose_environment(name, production_env_file(tmp_path))
    settings = build_settings(isolated_environment, name, environment)
    assert settings.env == "production"
    if name == "auth":
        assert "BEGIN PRIVATE KEY" in environment["KINO_AUTH_SIGNING_KEY"]


def test_the_signing_key_is_passed_on_only_when_set() -> None:
    assert "KINO_AUTH_SIGNING_KEY" not in compose_environment("auth")


# --- MinIO's bucket notification ------------------------------------------------------------


def test_minio_notifies_the_exchange_catalog_declares(services: dict[str, Any]) -> None:
    minio = services["minio"]["environment"]
    catalog = compose_environment("catalog")
    exchange = catalog.get(
        "KINO_STORAGE_EVENTS_EXCHANGE",
        CatalogSettings.model_fields["storage_events_exchange"].default,
    )

    def notify(key: str) -> str:
        return str(minio[f"MINIO_NOTIFY_AMQP_{key}_{MINIO_TARGET}"])

    assert notify("ENABLE") == "on"
    assert notify("EXCHANGE") == exchange == "kino.storage"
    # catalog declares it a durable fanout exchange
    # (services/catalog/hosting/storage_notifications.py)
    assert notify("EXCHANGE_TYPE") == "fanout"
    assert notify("DURABLE") == "on"
    assert notify("DELIVERY_MODE") == "2"
    url, amqp = urlsplit(notify("URL")), urlsplit(catalog["KINO_AMQP_URL"])
    assert (url.scheme, url.hostname, url.port) == ("amqp", "rabbitmq", 5672)
    assert (url.username, url.password) == (amqp.username, amqp.password)


def test_minio_init_creates_the_bucket_and_subscribes_it_idempotently(
    services: dict[str, Any],
) -> None:
    init = services["minio-init"]
    assert init["image"].startswith("quay.io/minio/mc:")
    assert init["depends_on"] == {"minio": {"condition": "service_healthy"}}
    script = " ".join(init["command"])
    bucket = compose_environment("catalog")["KINO_S3_BUCKET"]
    assert bucket == compose_environment("transcoder")["KINO_S3_BUCKET"] == "kino-media"
    assert f"mc mb --ignore-existing local/{bucket}" in script
    listing = script.index(f"mc event ls local/{bucket} {MINIO_ARN}")
    adding = script.index(f"mc event add local/{bucket} {MINIO_ARN} --event put --prefix incoming/")
    assert listing < adding
    credentials = urlsplit(init["environment"]["MC_HOST_local"])
    minio = services["minio"]["environment"]
    assert (credentials.hostname, credentials.port) == ("minio", 9000)
    assert (credentials.username, credentials.password) == (
        minio["MINIO_ROOT_USER"],
        minio["MINIO_ROOT_PASSWORD"],
    )


# --- the image ---------------------------------------------------------------------------


def dockerfile_stages() -> list[str]:
    text = DOCKERFILE.read_text()
    joined = re.sub(r"\\\n", " ", text)
    lines = [line for line in joined.splitlines() if line.strip() and not line.startswith("#")]
    stages: list[str] = []
    for line in lines:
        if line.upper().startswith("FROM "):
            stages.append("")
        if stages:
            stages[-1] += line + "\n"
    return stages


def test_dockerfile_builds_a_slim_non_root_image_with_a_healthcheck() -> None:
    stages = dockerfile_stages()
    assert len(stages) >= 2, "multi-stage"
    build = next(stage for stage in stages if stage.split("\n")[0].endswith(" AS build"))
    final = stages[-1]
    assert "--require-hashes" in build
    assert "requirements-prod.hashes.lock" in build
    assert "--only-binary=:all:" in build
    assert re.search(r"^ARG PYTHON_IMAGE=python:3\.11-slim", DOCKERFILE.read_text(), re.M)
    for word in ("apt-get", "gcc", "build-essential", "pip install"):
        assert word not in final, word
    assert re.search(r"^USER 10001(:10001)?$", final, re.M)
    assert "--uid 10001" in final
    assert "PYTHONDONTWRITEBYTECODE=1" in final
    assert "PYTHONUNBUFFERED=1" in final
    assert re.search(r'^HEALTHCHECK .*CMD \["python", "-m", "shared.healthcheck"\]$', final, re.M)
    assert re.search(r'^CMD \["python", "-m", "services.gateway"\]$', final, re.M)


def test_front_end_assets_come_pinned_from_the_npm_registry() -> None:
    [assets] = [
        stage for stage in dockerfile_stages() if stage.split("\n")[0].endswith(" AS assets")
    ]
    assert "npm ci" in assets  # the lockfile's versions and integrity hashes, nothing else
    assert "web/package-lock.json" in assets
    lock = json.loads((ROOT / "web" / "package-lock.json").read_text())
    for package in ("hls.js", "swagger-ui-dist"):
        assert lock["packages"][f"node_modules/{package}"]["integrity"].startswith("sha512-")
    joined = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    [copy] = re.findall(r"^COPY --from=assets (.*)$", joined, re.M)
    for asset in ("hls.min.js", "swagger-ui-bundle.js", "swagger-ui.css"):
        assert asset in copy
    assert copy.split()[-1] == "/app/services/gateway/static/vendor/"


def test_image_holds_every_package_the_services_import() -> None:
    copied = set(re.findall(r"^COPY (\w+) /app/\1$", DOCKERFILE.read_text(), re.M))
    assert copied == {"shared", "services", "ops"}
    ignore = (ROOT / ".dockerignore").read_text().splitlines()
    assert "*" in ignore  # everything else (.env included) stays out of the context
    assert "!.env" not in ignore


def test_hashed_lock_pins_exactly_the_production_lock() -> None:
    def pins(path: Path) -> dict[str, str]:
        found: dict[str, str] = {}
        for line in path.read_text().splitlines():
            match = re.match(r"^([A-Za-z0-9_.\-]+)==([^\s\\;]+)", line)
            if match:
                found[re.sub(r"[-_.]+", "-", match[1]).lower()] = match[2]
        return found

    production = pins(ROOT / "requirements-prod.lock")
    hashed = pins(ROOT / "requirements-prod.hashes.lock")
    assert hashed == production, "run .venv/bin/python deploy/compose/lock_hashes.py"
    text = (ROOT / "requirements-prod.hashes.lock").read_text()
    blocks = re.split(r"\n(?=[A-Za-z])", text.split("\n", 3)[-1].strip())
    assert all("--hash=sha256:" in block for block in blocks if not block.startswith("#"))


def test_compose_file_documents_its_commands() -> None:
    text = COMPOSE_FILE.read_text()
    assert "make compose-up" in text
    assert "cp .env.example .env" in text
