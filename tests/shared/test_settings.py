"""Settings refuse development secrets in production (see `shared/config.py`).

Every settings object is built in code; the `KINO_*` variables of the test process
are removed first so that they cannot make a test pass or fail.
"""

from __future__ import annotations

import os
import re
import secrets
from typing import Any

import pytest
from pydantic import ValidationError

from services.auth.settings import AuthSettings
from services.auth.token_issuer import generate_private_key_pem
from services.catalog.settings import CatalogSettings
from services.gateway.settings import GatewaySettings
from services.transcoder.settings import TranscoderSettings
from shared.config import KinoSettings

SettingsClass = type[KinoSettings]


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.upper().startswith("KINO_"):
            monkeypatch.delenv(name)


def strong() -> str:
    return secrets.token_urlsafe(32)


def strong_values(settings_class: SettingsClass) -> dict[str, Any]:
    """A strong value for every secret the class has (and only for those)."""
    values: dict[str, Any] = {"internal_secret": strong()}
    fields = settings_class.model_fields
    if "amqp_url" in fields:
        values["amqp_url"] = f"amqp://kino:{strong()}@rabbitmq.internal:5672/"
    if "s3_secret_key" in fields:
        values["s3_secret_key"] = strong()
    if "auth_signing_key" in fields:
        values["auth_signing_key"] = generate_private_key_pem()
    return values


def named_variables(error: ValidationError) -> set[str]:
    """The `KINO_*` variables an error names, `KINO_ENV` aside."""
    return set(re.findall(r"KINO_[A-Z0-9_]+", str(error))) - {"KINO_ENV"}


#: Each service's settings and the variables that are weak when left at their defaults.
WEAK_DEFAULTS = [
    pytest.param(AuthSettings, {"KINO_INTERNAL_SECRET", "KINO_AMQP_URL"}, id="auth"),
    pytest.param(GatewaySettings, {"KINO_INTERNAL_SECRET"}, id="gateway"),
    pytest.param(
        CatalogSettings,
        {"KINO_INTERNAL_SECRET", "KINO_AMQP_URL", "KINO_S3_SECRET_KEY"},
        id="catalog",
    ),
    pytest.param(
        TranscoderSettings,
        {"KINO_INTERNAL_SECRET", "KINO_AMQP_URL", "KINO_S3_SECRET_KEY"},
        id="transcoder",
    ),
]

ALL_CLASSES = [
    pytest.param(AuthSettings, id="auth"),
    pytest.param(GatewaySettings, id="gateway"),
    pytest.param(CatalogSettings, id="catalog"),
    pytest.param(TranscoderSettings, id="transcoder"),
]

#: (class, secret field, its variable) for every secret a service holds.
EACH_SECRET = [
    pytest.param(settings_class, field, f"KINO_{field.upper()}", id=f"{service}-{field}")
    for service, settings_class in (
        ("auth", AuthSettings),
        ("gateway", GatewaySettings),
        ("catalog", CatalogSettings),
        ("transcoder", TranscoderSettings),
    )
    for field in ("internal_secret", "amqp_url", "s3_secret_key")
    if field in settings_class.model_fields
]


@pytest.mark.parametrize(("settings_class", "expected"), WEAK_DEFAULTS)
def test_production_refuses_the_development_defaults(
    settings_class: SettingsClass, expected: set[str]
) -> None:
    with pytest.raises(ValidationError) as refused:
        settings_class(env="production")

    assert "KINO_ENV=production" in str(refused.value)
    # Auth's missing signing key may be reported with these or after them.
    assert expected <= named_variables(refused.value) <= expected | {"KINO_AUTH_SIGNING_KEY"}


@pytest.mark.parametrize(("settings_class", "field", "variable"), EACH_SECRET)
def test_production_names_exactly_the_one_weak_secret(
    settings_class: SettingsClass, field: str, variable: str
) -> None:
    values = strong_values(settings_class)
    del values[field]  # back to its development default

    with pytest.raises(ValidationError) as refused:
        settings_class(env="production", **values)

    assert named_variables(refused.value) == {variable}


def test_production_refuses_amqp_url_with_guest_credentials() -> None:
    values = strong_values(CatalogSettings)
    values["amqp_url"] = "amqp://guest:guest@rabbitmq.internal:5672/"

    with pytest.raises(ValidationError) as refused:
        CatalogSettings(env="production", **values)

    assert named_variables(refused.value) == {"KINO_AMQP_URL"}


@pytest.mark.parametrize(
    ("field", "value", "variable"),
    [
        pytest.param("internal_secret", "", "KINO_INTERNAL_SECRET", id="empty"),
        pytest.param("internal_secret", "secret", "KINO_INTERNAL_SECRET", id="well-known"),
        pytest.param(
            "internal_secret", "kino-dev-but-longer-now", "KINO_INTERNAL_SECRET", id="marker"
        ),
        pytest.param("s3_secret_key", "minioadmin", "KINO_S3_SECRET_KEY", id="minio-default"),
        pytest.param(
            "mongo_url", "mongodb://admin:admin@mongo.internal:27017", "KINO_MONGO_URL", id="mongo"
        ),
        pytest.param(
            "amqp_url", "amqp://kino:@rabbitmq.internal:5672/", "KINO_AMQP_URL", id="empty-pw"
        ),
    ],
)
def test_production_refuses_empty_and_well_known_secrets(
    field: str, value: str, variable: str
) -> None:
    values = strong_values(CatalogSettings)
    values[field] = value

    with pytest.raises(ValidationError) as refused:
        CatalogSettings(env="production", **values)

    assert named_variables(refused.value) == {variable}


def test_production_auth_requires_a_signing_key() -> None:
    values = strong_values(AuthSettings)
    del values["auth_signing_key"]

    with pytest.raises(ValidationError) as refused:
        AuthSettings(env="production", **values)

    assert named_variables(refused.value) == {"KINO_AUTH_SIGNING_KEY"}


@pytest.mark.parametrize("settings_class", ALL_CLASSES)
def test_production_accepts_strong_secrets(settings_class: SettingsClass) -> None:
    values = strong_values(settings_class)

    settings = settings_class(env="production", **values)

    assert settings.is_production
    assert settings.development_secrets() == []
    assert settings.internal_secret.get_secret_value() == values["internal_secret"]


@pytest.mark.parametrize("settings_class", ALL_CLASSES)
def test_development_accepts_the_defaults(settings_class: SettingsClass) -> None:
    settings = settings_class()

    assert settings.env == "development"
    assert not settings.is_production
    assert "internal_secret" in settings.development_secrets()


def test_production_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KINO_ENV", "production")
    monkeypatch.setenv("KINO_INTERNAL_SECRET", "kino-dev-from-the-environment")

    with pytest.raises(ValidationError) as refused:
        GatewaySettings()

    assert named_variables(refused.value) == {"KINO_INTERNAL_SECRET"}

    monkeypatch.setenv("KINO_INTERNAL_SECRET", strong())
    assert GatewaySettings().is_production


@pytest.mark.parametrize("rounds", [4, 11, 17])
def test_auth_refuses_bcrypt_rounds_outside_12_to_16(rounds: int) -> None:
    with pytest.raises(ValidationError) as refused:
        AuthSettings(auth_bcrypt_rounds=rounds)

    assert [error["loc"] for error in refused.value.errors()] == [("auth_bcrypt_rounds",)]


@pytest.mark.parametrize("rounds", [12, 16])
def test_auth_accepts_bcrypt_rounds_from_12_to_16(rounds: int) -> None:
    assert AuthSettings(auth_bcrypt_rounds=rounds).auth_bcrypt_rounds == rounds
