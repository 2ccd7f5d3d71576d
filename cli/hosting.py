"""Hosting from the command line: upload a file, follow its processing.

An upload is three calls: the instructions (a pending video and a presigned POST
policy for its file), the details (title, privacy; applied before the file is sent,
so a private video is never listed publicly, not even for a moment) and the file
POSTed straight to storage.

Resumable uploads: the API offers no resumable (multipart) upload yet, so a file
goes in one POST and an interrupted upload starts again. When it does, `send` is the
one place to change: a second path for large files that uploads parts to presigned
part URLs and remembers the parts done under the video's `hash_id` in the configuration
directory, so that `kino upload` run again resumes. Checking, instructions, details
and waiting stay as they are.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from cli.client import KinoClient
from cli.errors import KinoError
from cli.files import file_size, video_type
from cli.multipart import OnSent
from cli.progress import JobReport
from cli.schemas import UnprocessedVideo, UploadInstructions, Video

#: Seconds between two looks at a job's state.
POLL_SECONDS = 0.5


@dataclass(frozen=True)
class PreparedUpload:
    """A pending video whose file is ready to be sent."""

    path: Path
    content_type: str
    size: int
    instructions: UploadInstructions

    @property
    def hash_id(self) -> str:
        return self.instructions.hash_id

    @classmethod
    def prepare(
        cls, client: KinoClient, path: Path, *, title: str | None, private: bool
    ) -> PreparedUpload:
        """Check the file against the upload config, then create its pending video."""
        size = file_size(path)
        config = client.upload_config()
        content_type = video_type(path, config.valid_file_types)
        if size > config.max_size_in_bytes:
            raise KinoError(
                f"{path.name} is {size} bytes; Kino accepts at most "
                f"{config.max_size_in_bytes} bytes"
            )
        instructions = client.upload_instructions(content_type, path.name)
        if title is not None or private:
            client.update_video(
                instructions.hash_id, title=title, is_private=True if private else None
            )
        return cls(path, content_type, size, instructions)

    def send(self, client: KinoClient, on_sent: OnSent) -> None:
        """Store the file: one POST of the whole file to the presigned URL."""
        client.post_to_storage(self.instructions, self.path, self.content_type, on_sent)


def _state(video: UnprocessedVideo) -> str:
    if video.status == "pending":
        return "waiting for storage to announce the file"
    if video.eta_seconds is not None:
        return f"{video.status}, about {video.eta_seconds:.0f} s left"
    return video.status


def wait_until_listed(client: KinoClient, hash_id: str, report: JobReport) -> Video:
    """Poll the owner's videos until this one is listed; its failure is a `KinoError`."""
    while True:
        mine = client.my_videos()
        for video in mine.videos:
            if video.hash_id == hash_id:
                report(1.0, "listed")
                return video
        unprocessed = {video.hash_id: video for video in mine.unprocessed_videos}
        if hash_id not in unprocessed:
            raise KinoError(f"video {hash_id} is not among your videos (deleted?)")
        pending = unprocessed[hash_id]
        if pending.status == "failed":
            reason = pending.failure_reason or "no reason given"
            raise KinoError(f"processing {hash_id} failed: {reason}")
        report(pending.progress, _state(pending))
        time.sleep(POLL_SECONDS)
