"""HLS playlist text: a media playlist addresses one file by byte ranges, the served copy
names the file by its URL everywhere and nowhere else, the master lists rungs highest
first with what a player picks them by."""

from __future__ import annotations

from shared.hls import Segment, Variant, master_playlist, media_playlist, with_file_uri

SEGMENTS = [Segment(1200, 50_000, 2.0), Segment(51_200, 48_000, 2.0), Segment(99_200, 9_000, 0.52)]


def test_a_media_playlist_addresses_the_file_by_byte_range() -> None:
    text = media_playlist("720p.mp4", 1200, SEGMENTS)

    lines = text.splitlines()
    assert lines[:7] == [
        "#EXTM3U",
        "#EXT-X-VERSION:7",
        "#EXT-X-TARGETDURATION:2",
        "#EXT-X-MEDIA-SEQUENCE:0",
        "#EXT-X-PLAYLIST-TYPE:VOD",
        "#EXT-X-INDEPENDENT-SEGMENTS",
        '#EXT-X-MAP:URI="720p.mp4",BYTERANGE="1200@0"',
    ]
    assert lines[7:10] == ["#EXTINF:2.000000,", "#EXT-X-BYTERANGE:50000@1200", "720p.mp4"]
    assert lines[-4:] == [
        "#EXTINF:0.520000,",
        "#EXT-X-BYTERANGE:9000@99200",
        "720p.mp4",
        "#EXT-X-ENDLIST",
    ]
    assert text.endswith("\n")


def test_the_served_playlist_names_the_file_by_its_url_and_changes_nothing_else() -> None:
    stored = media_playlist("720p.mp4", 1200, SEGMENTS)
    url = "http://s3.example/kino/playback/x/720p.mp4?X-Amz-Signature=abc&X-Amz-Expires=60"

    served = with_file_uri(stored, "720p.mp4", url)

    assert "720p.mp4\n" not in served.replace(url, "")
    assert served.count(url) == len(SEGMENTS) + 1  # every segment and the init map
    assert f'#EXT-X-MAP:URI="{url}",BYTERANGE="1200@0"' in served
    assert served.replace(url, "720p.mp4") == stored


def test_the_master_lists_every_rung_highest_first() -> None:
    rungs = [
        Variant("240p.m3u8?s=1", 450_000, 300_000, 426, 240, "avc1.42c015,mp4a.40.2"),
        Variant("720p.m3u8?s=1", 3_000_000, 2_100_000, 1280, 720, "avc1.64001f,mp4a.40.2"),
    ]

    lines = master_playlist(rungs).splitlines()

    assert lines[:3] == ["#EXTM3U", "#EXT-X-VERSION:7", "#EXT-X-INDEPENDENT-SEGMENTS"]
    assert lines[3:] == [
        "#EXT-X-STREAM-INF:BANDWIDTH=3000000,AVERAGE-BANDWIDTH=2100000,"
        'RESOLUTION=1280x720,CODECS="avc1.64001f,mp4a.40.2"',
        "720p.m3u8?s=1",
        "#EXT-X-STREAM-INF:BANDWIDTH=450000,AVERAGE-BANDWIDTH=300000,"
        'RESOLUTION=426x240,CODECS="avc1.42c015,mp4a.40.2"',
        "240p.m3u8?s=1",
    ]
