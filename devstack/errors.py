"""Failures the devstack reports to a person, not as a traceback.

Every error carries a message written for whoever ran `make run` or the test suite:
what went wrong and what to do about it. `python -m devstack` prints the message and
exits non-zero; tests read the same message from the exception.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit


class DevstackError(Exception):
    """Base of every failure the devstack explains in words."""

    @property
    def message(self) -> str:
        return str(self)


class PortInUse(DevstackError):
    """A port the devstack needs is already taken by some other process."""

    def __init__(self, port: int, component: str, env_var: str | None) -> None:
        how = f"set {env_var} to another port" if env_var else "pick another port"
        super().__init__(
            f"port {port} needed by {component} is already in use: stop what listens there or {how}"
        )
        self.port = port
        self.component = component
        self.env_var = env_var


class StoreFailed(DevstackError):
    """A store could not be started, reached, or installed."""


class ServiceFailed(DevstackError):
    """A service process exited or never became ready."""


def redact_url(url: str) -> str:
    """`url` without its password, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))
