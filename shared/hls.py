"""HLS playlists of a video's ladder (RFC 8216, version 7): the media playlist of one
rendition, a fragmented MP4 addressed by byte ranges (`#EXT-X-MAP` for its init
segment, `#EXT-X-BYTERANGE` per fragment), and the master playlist listing the rungs.

The transcoder writes each media playlist once, naming its file relatively; catalog
serves it with the file's presigned URL in that name's place (`with_file_uri`), so the
stored playlist never holds a URL that expires.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

CONTENT_TYPE = "application/vnd.apple.mpegurl"
_VERSION = 7  # EXT-X-MAP in a playlist without I-frames only needs 6; byte ranges 4


@dataclass(frozen=True)
class Segment:
    offset: int
    size: int
    duration: float


@dataclass(frozen=True)
class Variant:
    uri: str
    bandwidth: int
    average_bandwidth: int
    width: int
    height: int
    codecs: str


def media_playlist(file_uri: str, init_size: int, segments: Sequence[Segment]) -> str:
    """The VOD media playlist of one fragmented MP4: its init segment, then every
    fragment, by byte range of the one file at `file_uri`."""
    target = max((math.ceil(segment.duration) for segment in segments), default=1)
    lines = [
        "#EXTM3U",
        f"#EXT-X-VERSION:{_VERSION}",
        f"#EXT-X-TARGETDURATION:{max(1, target)}",
        "#EXT-X-MEDIA-SEQUENCE:0",
        "#EXT-X-PLAYLIST-TYPE:VOD",
        "#EXT-X-INDEPENDENT-SEGMENTS",
        f'#EXT-X-MAP:URI="{file_uri}",BYTERANGE="{init_size}@0"',
    ]
    for segment in segments:
        lines += [
            f"#EXTINF:{segment.duration:.6f},",
            f"#EXT-X-BYTERANGE:{segment.size}@{segment.offset}",
            file_uri,
        ]
    lines.append("#EXT-X-ENDLIST")
    return "\n".join(lines) + "\n"


def with_file_uri(playlist: str, file_uri: str, url: str) -> str:
    """The media playlist with every reference to `file_uri` (the segment lines and the
    `#EXT-X-MAP` URI) replaced by `url`."""
    lines = []
    for line in playlist.splitlines():
        if line == file_uri:
            line = url
        elif line.startswith("#EXT-X-MAP:"):
            line = line.replace(f'URI="{file_uri}"', f'URI="{url}"')
        lines.append(line)
    return "\n".join(lines) + "\n"


def master_playlist(variants: Sequence[Variant]) -> str:
    """The master playlist: one `#EXT-X-STREAM-INF` per rung, highest first."""
    lines = ["#EXTM3U", f"#EXT-X-VERSION:{_VERSION}", "#EXT-X-INDEPENDENT-SEGMENTS"]
    for variant in sorted(variants, key=lambda v: v.height, reverse=True):
        lines += [
            f"#EXT-X-STREAM-INF:BANDWIDTH={variant.bandwidth},"
            f"AVERAGE-BANDWIDTH={variant.average_bandwidth},"
            f"RESOLUTION={variant.width}x{variant.height},"
            f'CODECS="{variant.codecs}"',
            variant.uri,
        ]
    return "\n".join(lines) + "\n"
