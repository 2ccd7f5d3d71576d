"""Bodies the gateway renders itself."""

from __future__ import annotations

from pydantic import BaseModel


class HealthCheck(BaseModel):
    """`GET /health_check` of seed 000: an empty JSON object."""
