"""Server-Sent Events: the `text/event-stream` format of Kino's live event stream,
read line by line (https://html.spec.whatwg.org/multipage/server-sent-events.html)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ServerEvent:
    """One message: its id (for `Last-Event-ID`), type, and JSON data."""

    id: str | None
    type: str
    data: dict[str, Any]

    @property
    def subject(self) -> dict[str, Any]:
        """What the event is about: the `data` of Kino's `{"type", "timestamp", "data"}`."""
        inner = self.data.get("data")
        return inner if isinstance(inner, dict) else {}


def server_events(lines: Iterable[str]) -> Iterator[ServerEvent]:
    """The messages of a stream's lines; comments (heartbeats) and messages whose data
    is not a JSON object are skipped."""
    event_id: str | None = None
    event_type = "message"
    data: list[str] = []
    for line in lines:
        if not line:
            if data:
                try:
                    parsed = json.loads("\n".join(data))
                except ValueError:
                    parsed = None
                if isinstance(parsed, dict):
                    yield ServerEvent(event_id, event_type, parsed)
            event_type, data = "message", []
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field == "id":
            event_id = value
        elif field == "event":
            event_type = value
        elif field == "data":
            data.append(value)
