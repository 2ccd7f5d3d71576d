"""Hosting from the command line: upload a file, follow its processing.

An upload creates a pending video, applies its details (title, privacy: before the
file is sent, so a private video is never listed publicly, not even for a moment) and
sends the file straight to storage, in one of two ways:

- one POST of the whole file with a presigned POST policy (`GET /video/upload/`), for
  files up to `RESUMABLE_ABOVE`;
- a resumable upload (`/video/upload/multipart`): the file in parts, each PUT to its
  own presigned URL, then completed. An interrupted `kino upload` run again with the
  same file resumes: it finds the account's pending resumable upload of the same file
  name and size, and sends only the parts storage does not already hold with the same
  bytes (S3's ETag of a part is the MD5 of its bytes, compared with the local file's;
  a part that differs or cannot be compared is sent again, and completing names each
  part's ETag, so the copy sent last is the one joined). Nothing is kept on disk.

Following processing reads the live event stream (`GET /api/v1/users/events`): the
stream is opened first, then the video's state is read once (it may be done already),
then the stream's `job.progress`, `video.ready` and `video.failed` of this video tell
the rest. A dropped stream is opened again after the last event seen.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from cli.client import KinoClient
from cli.errors import KinoError
from cli.files import file_size, video_type
from cli.multipart import OnSent
from cli.progress import JobReport, stderr
from cli.schemas import MultipartUpload, UnprocessedVideo, UploadInstructions, Video

#: Files larger than this go as resumable uploads (a smaller one too with `--resumable`).
RESUMABLE_ABOVE = 64 * 1024 * 1024
#: How often a dropped event stream is opened again before giving up.
STREAM_REOPENS = 5


@dataclass(frozen=True)
class PreparedUpload:
    """A pending video whose file is ready to be sent: with a POST policy
    (`instructions`) or as a resumable upload (`multipart`)."""

    path: Path
    content_type: str
    size: int
    hash_id: str
    instructions: UploadInstructions | None = None
    multipart: MultipartUpload | None = None

    @classmethod
    def prepare(
        cls,
        client: KinoClient,
        path: Path,
        *,
        title: str | None,
        private: bool,
        resumable: bool | None = None,
    ) -> PreparedUpload:
        """Check the file against the upload config, then create its pending video (or
        find the resumable upload it already has). `resumable=None`: by size."""
        size = file_size(path)
        config = client.upload_config()
        content_type = video_type(path, config.valid_file_types)
        if size > config.max_size_in_bytes:
            raise KinoError(
                f"{path.name} is {size} bytes; Kino accepts at most "
                f"{config.max_size_in_bytes} bytes"
            )
        if resumable or (resumable is None and size > RESUMABLE_ABOVE):
            multipart = _unfinished_upload(client, path, size)
            if multipart is None:
                multipart = client.begin_multipart(content_type, path.name, size)
            else:
                stderr.print(f"Resuming the upload of {path.name} ({multipart.hash_id}).")
            prepared = cls(path, content_type, size, multipart.hash_id, multipart=multipart)
        else:
            instructions = client.upload_instructions(content_type, path.name)
            prepared = cls(path, content_type, size, instructions.hash_id, instructions)
        if title is not None or private:
            client.update_video(prepared.hash_id, title=title, is_private=True if private else None)
        return prepared

    def send(self, client: KinoClient, on_sent: OnSent) -> None:
        """Store the file: one POST, or the parts storage lacks, then complete."""
        if self.instructions is not None:
            client.post_to_storage(self.instructions, self.path, self.content_type, on_sent)
            return
        if self.multipart is None:
            raise KinoError("nothing to send the file with")  # prepare() sets one
        stored = {part.part_number: part.etag for part in self.multipart.uploaded_parts}
        etags: dict[int, str] = {}
        with self.path.open("rb") as file:
            for number in range(1, self.multipart.parts + 1):
                start, length = self.multipart.part_range(number)
                file.seek(start)
                data = file.read(length)
                digest = hashlib.md5(data, usedforsecurity=False).hexdigest()
                if stored.get(number) == digest:
                    etags[number] = digest
                    on_sent(length)  # already there, byte for byte
                    continue
                etags[number] = client.put_part(self.hash_id, number, data, on_sent)
        client.complete_multipart(self.hash_id, etags)


def _unfinished_upload(client: KinoClient, path: Path, size: int) -> MultipartUpload | None:
    """The account's resumable upload of a file of this name and size still pending."""
    for video in client.my_videos().unprocessed_videos:
        if video.status == "pending" and video.file_name == path.name:
            upload = client.multipart_upload(video.hash_id)
            if upload is not None and upload.size == size:
                return upload
    return None


def _state(video: UnprocessedVideo) -> str:
    if video.status == "pending":
        return "waiting for storage to announce the file"
    if video.eta_seconds is not None:
        return f"{video.status}, about {video.eta_seconds:.0f} s left"
    return video.status


def _failed(hash_id: str, reason: object) -> KinoError:
    return KinoError(f"processing {hash_id} failed: {reason or 'no reason given'}")


def _look(client: KinoClient, hash_id: str, report: JobReport) -> Video | None:
    """The video if it is listed; its failure is a `KinoError`; else None (reported)."""
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
        raise _failed(hash_id, pending.failure_reason)
    report(pending.progress, _state(pending))
    return None


def wait_until_listed(client: KinoClient, hash_id: str, report: JobReport) -> Video:
    """Follow the video on the live event stream until it is listed; its failure is a
    `KinoError`."""
    last_id: str | None = None
    for _ in range(STREAM_REOPENS + 1):
        with client.events(last_id) as events:
            if (listed := _look(client, hash_id, report)) is not None:
                return listed
            for event in events:
                last_id = event.id or last_id
                subject = event.subject
                ours = subject.get("hash_id", subject.get("id")) == hash_id
                if event.type == "job.progress" and ours and subject.get("job") == "video":
                    eta = subject.get("eta_seconds")
                    state = f"processing, about {eta:.0f} s left" if eta else "processing"
                    report(subject.get("fraction"), state)
                elif event.type == "video.ready" and ours:
                    report(1.0, "listed")
                    return Video.model_validate(subject)
                elif event.type == "video.failed" and ours:
                    raise _failed(hash_id, subject.get("failure_reason"))
    raise KinoError("the event stream kept closing; run `kino ls` to see the video")
