"""The transcoder's settings (`KINO_*` environment variables)."""

from __future__ import annotations

from pydantic import Field

from shared.config import SETTINGS_CONFIG, BrokerSettings, KinoSettings, StorageSettings


class TranscoderSettings(KinoSettings, BrokerSettings, StorageSettings):
    model_config = SETTINGS_CONFIG

    http_port: int = Field(default=8083, ge=1, le=65535)
    #: One media job at a time per process: more throughput means more processes.
    amqp_prefetch: int = Field(default=1, ge=1)
