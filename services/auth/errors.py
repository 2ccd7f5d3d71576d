"""The auth domain's errors; `app.py` maps them to HTTP statuses."""

from __future__ import annotations


class EmailTaken(Exception):
    def __init__(self) -> None:
        super().__init__("Email has already been taken")


class InvalidCredentials(Exception):
    def __init__(self) -> None:
        super().__init__("Invalid email or password")


class TooManyAttempts(Exception):
    def __init__(self, retry_after_seconds: int) -> None:
        super().__init__("Too many login attempts, try again later")
        self.retry_after_seconds = retry_after_seconds
