"""Every object key in the media bucket: one prefix per kind of object, and the one
function that builds each key. Catalog and the transcoder both name objects; neither
works a key out on its own.

- `incoming/<video_id>`: a hosting upload, as the client POSTed it (removed once processed)
- `playback/<video_id>/<height>p.mp4` and `.m3u8`: a rung of a hosted video's ladder (a
  fragmented MP4, also its progressive download) and its HLS media playlist
- `playback/<video_id>.mp4`: the one web-playable file of a video hosted before ladders
- `thumbnails/<video_id>.jpg`: its thumbnail
- `sources/<video_id>`: the source of a trimming request (kept: a restart cuts it again)
- `sources/<video_id>.probe.json`: what probing that source found (a restart reuses it)
- `clips/<trim_id>.mp4`: the clip a trimming request made
"""

from __future__ import annotations

INCOMING_PREFIX = "incoming/"
PLAYBACK_PREFIX = "playback/"
THUMBNAILS_PREFIX = "thumbnails/"
SOURCES_PREFIX = "sources/"
CLIPS_PREFIX = "clips/"


def upload_key(video_id: str) -> str:
    return f"{INCOMING_PREFIX}{video_id}"


def uploaded_video_id(key: str) -> str | None:
    """The video an `incoming/` key belongs to; None for any other key."""
    video_id = key.removeprefix(INCOMING_PREFIX)
    return video_id if key.startswith(INCOMING_PREFIX) and video_id else None


def playback_key(video_id: str) -> str:
    return f"{PLAYBACK_PREFIX}{video_id}.mp4"


def renditions_prefix(video_id: str) -> str:
    """Everything of a video's ladder is under it (deleting the video removes it all)."""
    return f"{PLAYBACK_PREFIX}{video_id}/"


def rendition_file_name(height: int) -> str:
    """The rendition file's name, as its media playlist names it (relatively)."""
    return f"{height}p.mp4"


def rendition_key(video_id: str, height: int) -> str:
    return f"{renditions_prefix(video_id)}{rendition_file_name(height)}"


def rendition_playlist_key(video_id: str, height: int) -> str:
    return f"{renditions_prefix(video_id)}{height}p.m3u8"


def thumbnail_key(video_id: str) -> str:
    return f"{THUMBNAILS_PREFIX}{video_id}.jpg"


def hosted_video_keys(video_id: str) -> list[str]:
    """Every object a hosted video may have, whatever state it reached."""
    return [upload_key(video_id), playback_key(video_id), thumbnail_key(video_id)]


def source_key(video_id: str) -> str:
    return f"{SOURCES_PREFIX}{video_id}"


def source_probe_key(video_id: str) -> str:
    return f"{SOURCES_PREFIX}{video_id}.probe.json"


def clip_key(trim_id: str) -> str:
    return f"{CLIPS_PREFIX}{trim_id}.mp4"
