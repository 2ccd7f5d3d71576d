"""The catalog domain's errors; `app.py` maps them to HTTP statuses."""

from __future__ import annotations


class VideoNotFound(Exception):
    def __init__(self) -> None:
        super().__init__("Video not found")


class UserNotFound(Exception):
    def __init__(self) -> None:
        super().__init__("User not found")


class VideoIsPrivate(Exception):
    def __init__(self) -> None:
        super().__init__("This video is private")


class StillProcessing(Exception):
    def __init__(self) -> None:
        super().__init__("The video is still being processed; try again when it is done")


class VideoNotFailed(Exception):
    """Only a failed video can be retried (the message says what it is)."""


class UploadGone(Exception):
    def __init__(self) -> None:
        super().__init__(
            "The uploaded file is no longer stored (failed uploads are kept for a while); "
            "upload it again"
        )


class UploadExpired(Exception):
    def __init__(self) -> None:
        super().__init__("The upload expired before it was completed; start a new one")


class UploadIncomplete(Exception):
    """Completing a multipart upload whose parts are not all stored, or not of the
    agreed sizes (the message says which); the client sends them and completes again."""


class InvalidUploadRequest(Exception):
    """Unusable file name or content type (the message says which)."""


class InvalidCursor(ValueError):
    """A `next` cursor that this service did not issue, or that was altered."""


class TrimRequestNotFound(Exception):
    def __init__(self) -> None:
        super().__init__("Request not found")


class RequestNotFailed(Exception):
    """Only a failed request can be restarted."""


class UploadTooLarge(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(f"The file exceeds the limit of {limit} bytes")


class PlaylistLinkRefused(Exception):
    """A playlist link that is not signed, signed wrongly or expired (the message says
    which)."""
