"""The transcoder's settings (`KINO_*` environment variables)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from shared.config import SETTINGS_CONFIG, BrokerSettings, KinoSettings, StorageSettings


class TranscoderSettings(KinoSettings, BrokerSettings, StorageSettings):
    model_config = SETTINGS_CONFIG

    http_port: int = Field(default=8083, ge=1, le=65535)
    #: One media job at a time per process: more throughput means more processes.
    amqp_prefetch: int = Field(default=1, ge=1)
    #: A job whose worker died (no ack) on this many deliveries is failed `worker_crashed`
    #: instead of being tried again (the broker counts them: quorum queues).
    job_delivery_limit: int = Field(default=3, ge=1)
    #: Where jobs keep their temporary files (an emptyDir in Kubernetes); None: the system's.
    work_dir: Path | None = None
    media_max_duration_seconds: float = Field(default=4 * 3600, gt=0)
    media_max_width: int = Field(default=7680, ge=16)
    media_max_height: int = Field(default=4320, ge=16)
    #: Playback files are scaled down to at most this height.
    playback_max_height: int = Field(default=1080, ge=16)
    #: The adaptive ladder's rung heights (JSON list); a video gets those at or below
    #: its own height and at most `playback_max_height`, and always its own rung.
    ladder_heights: tuple[int, ...] = (1080, 720, 480, 360, 240)
    playback_crf: int = Field(default=23, ge=0, le=51)
    playback_preset: str = "veryfast"
    thumbnail_max_width: int = Field(default=640, ge=16)
