"""The one exception the CLI reports: a failure explained in one line."""

from __future__ import annotations

NOT_SIGNED_IN = "not signed in: run `kino login`"


class KinoError(Exception):
    """A failure to report to the user: its message is one readable line."""
