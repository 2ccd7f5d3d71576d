"""Errors of the webhooks API; `services/catalog/app.py` maps them to statuses."""

from __future__ import annotations


class WebhookNotFound(Exception):
    """Unknown, or another user's (indistinguishable on purpose)."""

    def __init__(self) -> None:
        super().__init__("Webhook not found")


class UnsafeWebhookUrl(Exception):
    """A URL catalog refuses to call (not http(s), or an internal address)."""


class TooManyWebhooks(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(f"A user may have at most {limit} webhooks")
