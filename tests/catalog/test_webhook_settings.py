"""Webhook settings: private targets allowed in development, refused in production
unless `KINO_WEBHOOKS_ALLOW_PRIVATE` says otherwise; the retry schedule as JSON."""

from __future__ import annotations

from pydantic import SecretStr

from services.catalog.settings import CatalogSettings

STRONG = {
    "internal_secret": SecretStr("a-long-random-internal-secret-for-tests"),
    "amqp_url": "amqp://kino:a-strong-password@rabbitmq.internal:5672/",
    "s3_secret_key": SecretStr("a-long-random-s3-secret-for-tests"),
}


def test_private_targets_follow_the_environment() -> None:
    assert CatalogSettings().webhook_private_targets_allowed
    assert not CatalogSettings(env="production", **STRONG).webhook_private_targets_allowed
    production_opt_in = CatalogSettings(env="production", webhooks_allow_private=True, **STRONG)
    assert production_opt_in.webhook_private_targets_allowed
    assert not CatalogSettings(webhooks_allow_private=False).webhook_private_targets_allowed


def test_the_retry_schedule_is_the_specs_unless_configured() -> None:
    assert CatalogSettings().webhook_retry_schedule_seconds == (
        5,
        300,
        1800,
        7200,
        18000,
        36000,
        36000,
    )
    short = CatalogSettings(webhook_retry_schedule_seconds="[0.5, 1]")  # type: ignore[arg-type]
    assert short.webhook_retry_schedule_seconds == (0.5, 1.0)
