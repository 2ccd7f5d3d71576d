"""Event edges of the transcoder.

The queues are declared now so that no `video.uploaded`, `video.deleted` or
`trim.requested` published from here on is lost; their handlers arrive with the
hosting and trimming capabilities, and only then does the transcoder consume.
"""

from __future__ import annotations

from shared.events import TrimRequested, VideoDeleted, VideoUploaded
from shared.messaging import Subscription


def media_subscriptions() -> list[Subscription]:
    return [
        Subscription("videos", declared=(VideoUploaded, VideoDeleted)),
        Subscription("trims", declared=(TrimRequested,)),
    ]
