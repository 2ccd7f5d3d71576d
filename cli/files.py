"""Local files: checking what is about to be sent, writing what was downloaded."""

from __future__ import annotations

import mimetypes
import os
from collections.abc import Callable, Collection, Iterable
from pathlib import Path

from cli.errors import KinoError


def file_size(path: Path) -> int:
    """The size of a file about to be sent; a missing or empty one is a `KinoError`."""
    if path.is_dir():
        raise KinoError(f"{path} is a directory, not a file")
    if not path.is_file():
        raise KinoError(f"no such file: {path}")
    size = path.stat().st_size
    if size == 0:
        raise KinoError(f"{path} is empty")
    return size


def video_type(path: Path, accepted: Collection[str]) -> str:
    """The content type of a video from its file name, if it is one of `accepted`.

    The system's tables call some containers audio (`.3gp` is `audio/3gpp` on Debian);
    the video type of the same name is taken when that one is accepted.
    """
    guessed, _ = mimetypes.guess_type(path.name)
    if guessed is not None and guessed.startswith("audio/"):
        as_video = "video/" + guessed.removeprefix("audio/")
        guessed = as_video if as_video in accepted else guessed
    if guessed is None or guessed not in accepted:
        kind = f"its type {guessed}" if guessed else "its type (unknown extension)"
        raise KinoError(
            f"{path.name}: {kind} is not one Kino accepts ({', '.join(sorted(accepted))})"
        )
    return guessed


def write_whole(
    destination: Path, chunks: Iterable[bytes], on_written: Callable[[int], None]
) -> None:
    """Write `chunks` to `destination`, which appears only once all of them are written."""
    if not destination.parent.is_dir():
        raise KinoError(f"no such directory: {destination.parent}")
    partial = destination.with_name(f".{destination.name}.{os.getpid()}.part")
    try:
        with partial.open("xb") as file:
            for chunk in chunks:
                file.write(chunk)
                on_written(len(chunk))
        partial.replace(destination)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
