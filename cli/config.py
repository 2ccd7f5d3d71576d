"""Where `kino login` keeps its sessions: one file, readable by its owner only.

The file is `sessions.json` in the user's configuration directory
(`typer.get_app_dir("kino")`, or `$KINO_CONFIG_DIR`), mapping each gateway URL to the
session signed in there, so one user can keep accounts on several stacks. It is
written whole to a new file created with mode 0600 (never readable by others, not
even for a moment) and moved over the old one, so a crash never leaves half a file.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import typer

from cli.errors import KinoError

FILE_NAME = "sessions.json"


@dataclass(frozen=True)
class Session:
    """A signed-in account on one gateway."""

    email: str
    token: str

    @property
    def user_id(self) -> str:
        """The account's id: the `sub` of the token (read, not verified: the gateway does)."""
        try:
            payload = self.token.split(".")[1]
            claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
            return str(claims["sub"])
        except (IndexError, KeyError, TypeError, ValueError, binascii.Error):
            raise KinoError("the saved session is damaged: run `kino login`") from None


class SessionStore:
    """The sessions file of a configuration directory."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.path = directory / FILE_NAME

    @classmethod
    def default(cls) -> SessionStore:
        """`$KINO_CONFIG_DIR` when set, else the platform's directory for kino's settings."""
        configured = os.environ.get("KINO_CONFIG_DIR")
        return cls(Path(configured) if configured else Path(typer.get_app_dir("kino")))

    def _read(self) -> dict[str, Session]:
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return {}
        try:
            return {url: Session(**fields) for url, fields in json.loads(text).items()}
        except (TypeError, ValueError, AttributeError):
            raise KinoError(f"{self.path} is damaged: remove it and run `kino login`") from None

    def _write(self, sessions: dict[str, Session]) -> None:
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        text = json.dumps({url: asdict(session) for url, session in sessions.items()}, indent=2)
        # mkstemp creates the file with mode 0600.
        descriptor, temporary = tempfile.mkstemp(dir=self.directory, prefix=f".{FILE_NAME}.")
        try:
            with os.fdopen(descriptor, "w") as file:
                file.write(text + "\n")
            os.replace(temporary, self.path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise

    def load(self, url: str) -> Session | None:
        return self._read().get(url)

    def save(self, url: str, session: Session) -> None:
        self._write({**self._read(), url: session})

    def forget(self, url: str) -> bool:
        """Remove the session of `url`; whether there was one."""
        sessions = self._read()
        if sessions.pop(url, None) is None:
            return False
        self._write(sessions)
        return True
