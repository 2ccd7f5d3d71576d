"""The `kino` command against the session's stack, run as a real process: a user's
journey from registration to a deleted video, and the one-line failures."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import sys
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import av
import pytest

from cli import hosting
from cli.client import KinoClient
from tests.conftest import (
    PASSWORD,
    Account,
    make_user,
    send_upload_part,
    unique_email,
    upload_video,
)
from tests.transcoder.media_factory import make_clip, make_two_part_clip

#: The console script `pip install -e .` puts beside the interpreter.
KINO = Path(sys.executable).parent / "kino"


@dataclass(frozen=True)
class Run:
    code: int
    stdout: str
    stderr: str


async def kino(
    *args: str, url: str, config: Path, password: str = PASSWORD, within: float = 60
) -> Run:
    """Run `kino` with its environment pointing at `url` and the config dir `config`."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("KINO_")}
    env.update(
        KINO_URL=url,
        KINO_CONFIG_DIR=str(config),
        KINO_PASSWORD=password,
        COLUMNS="200",  # tables keep whole cells
    )
    process = await asyncio.create_subprocess_exec(
        str(KINO), *args, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), within)
    assert process.returncode is not None
    return Run(process.returncode, stdout.decode(), stderr.decode())


def succeeded(run: Run) -> Run:
    assert run.code == 0, run.stderr
    return run


def one_line_failure(run: Run) -> str:
    """The stderr of a failed run, checked to be a single line and no traceback."""
    assert run.code != 0, run.stdout
    assert "Traceback" not in run.stderr
    assert run.stderr.strip().count("\n") == 0, run.stderr
    return run.stderr.strip()


async def status_of(http: aiohttp.ClientSession, url: str) -> int:
    async with http.get(url) as response:
        await response.read()
        return response.status


async def test_a_user_uploads_watches_trims_and_deletes(
    gateway_url: str, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    config = tmp_path / "config"
    clip = make_clip(tmp_path / "holiday.mp4", seconds=2.0, size=(320, 240))
    email = unique_email("cli")

    succeeded(await kino("register", "--email", email, url=gateway_url, config=config))
    succeeded(await kino("login", "--email", email, url=gateway_url, config=config))
    sessions = config / "sessions.json"
    assert stat.S_IMODE(sessions.stat().st_mode) == 0o600
    token = json.loads(sessions.read_text())[gateway_url]["token"]
    auth = {"Authorization": f"Bearer {token}"}

    uploaded = succeeded(
        await kino(
            "upload", str(clip), "--title", "From the CLI", "--wait", url=gateway_url, config=config
        )
    )
    hash_id = uploaded.stdout.strip()
    assert len(hash_id) == 11, uploaded.stdout

    listed = succeeded(await kino("ls", url=gateway_url, config=config)).stdout
    assert hash_id in listed
    assert "From the CLI" in listed
    explored = await kino("explore", "--include-my", url=gateway_url, config=config)
    assert hash_id in succeeded(explored).stdout

    watched = succeeded(await kino("watch", hash_id, url=gateway_url, config=config)).stdout
    urls = dict(line.split(": ", 1) for line in watched.splitlines())
    assert set(urls) == {"watchable_url", "hls_url", "thumbnail_url"}
    for url in urls.values():
        assert await status_of(http, url) == 200, url

    out = tmp_path / "intro.mp4"
    trimmed = await kino(
        "trim",
        str(clip),
        "--start",
        "0.5",
        "--duration",
        "1",
        "--out",
        str(out),
        url=gateway_url,
        config=config,
    )
    video_id = succeeded(trimmed).stdout.strip()
    with av.open(str(out)) as container:
        assert container.duration is not None
        assert container.duration / av.time_base == pytest.approx(1.0, abs=0.1)
        assert next(container.decode(video=0)).width == 320
    async with http.get(f"{gateway_url}/api/v1/users/videos", headers=auth) as response:
        assert video_id in {clip["id"] for clip in (await response.json())["data"]}
    async with http.get(f"{gateway_url}/api/v1/users/requests", headers=auth) as response:
        [request] = (await response.json())["data"]
    requests = succeeded(await kino("requests", url=gateway_url, config=config)).stdout
    assert request["id"] in requests
    assert "done" in requests

    succeeded(await kino("rm", hash_id, url=gateway_url, config=config))
    assert hash_id not in succeeded(await kino("ls", url=gateway_url, config=config)).stdout


async def test_a_wrong_password_is_one_line(
    gateway_url: str, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    account: Account = await make_user(http, gateway_url)
    run = await kino(
        "login", "--email", account.email, url=gateway_url, config=tmp_path, password="wrong-one"
    )
    assert "Invalid email or password" in one_line_failure(run)
    assert not (tmp_path / "sessions.json").exists()


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("ls",), "not signed in: run `kino login`"),
        (("trim", "missing.mp4", "--start", "0", "--duration", "1"), "no such file"),
        (("upload", "missing.mp4"), "no such file"),
        (("--url", "http://127.0.0.1:9", "explore"), "cannot reach Kino at http://127.0.0.1:9"),
        # A hash_id may begin with "-": it is still the argument, not an unknown option.
        (
            ("--url", "http://127.0.0.1:9", "watch", "-tWx3_9aB0c", "--user", "someone"),
            "cannot reach Kino",
        ),
        (("rm", "-tWx3_9aB0c"), "not signed in"),
    ],
)
async def test_failures_are_one_line(
    gateway_url: str, tmp_path: Path, args: tuple[str, ...], expected: str
) -> None:
    run = await kino(*args, url=gateway_url, config=tmp_path)
    assert expected in one_line_failure(run)


async def test_an_interrupted_upload_resumes_where_storage_left_it(
    gateway_url: str, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    config = tmp_path / "config"
    clip = make_two_part_clip(tmp_path / "long-take.mp4")
    data = clip.read_bytes()
    email = unique_email("cli-resume")
    succeeded(await kino("register", "--email", email, url=gateway_url, config=config))
    token = json.loads((config / "sessions.json").read_text())[gateway_url]["token"]
    auth = {"Authorization": f"Bearer {token}"}

    # An earlier try got the first part across, and the second one damaged.
    body = {"file_name": clip.name, "file_content_type": "video/mp4", "size": len(data)}
    async with http.post(f"{gateway_url}/video/upload/multipart", json=body, headers=auth) as r:
        assert r.status == 201, await r.text()
        begun = await r.json()
    assert begun["parts"] == 2
    first, second = data[: begun["part_size"]], data[begun["part_size"] :]
    for number, part in ((1, first), (2, bytes(len(second)))):
        await send_upload_part(http, gateway_url, auth, begun["hash_id"], number, part)

    run = succeeded(
        await kino("upload", str(clip), "--resumable", "--wait", url=gateway_url, config=config)
    )
    assert run.stdout.strip() == begun["hash_id"]
    assert f"Resuming the upload of {clip.name}" in run.stderr
    async with http.get(f"{gateway_url}/video/my/", headers=auth) as r:
        mine = await r.json()
    [video] = mine["videos"]
    assert (video["hash_id"], mine["unprocessed_videos"]) == (begun["hash_id"], [])
    assert video["duration_seconds"] in {3, 4}  # 3.5 s, decoded whole: part 2 was sent again


async def test_waiting_follows_the_live_event_stream(
    gateway_url: str, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    account = await make_user(http, gateway_url)
    # 4:4:4, which browsers do not play: its first rung is encoded, not copied.
    clip = make_clip(tmp_path / "walk.mp4", seconds=10.0, size=(960, 540), pix_fmt="yuv444p")
    hash_id = await upload_video(http, gateway_url, account, clip.read_bytes())
    reports: list[tuple[float | None, str]] = []

    def follow() -> str:
        with KinoClient(gateway_url, account.token) as client:
            report = lambda fraction, state: reports.append((fraction, state))  # noqa: E731
            return hosting.wait_until_listed(client, hash_id, report).hash_id

    assert await asyncio.to_thread(follow) == hash_id
    # The state is read once, when the stream opens: not listed yet then, so what
    # ended the wait was the stream's `video.ready`.
    assert reports[0][1] != "listed"
    assert reports[-1] == (1.0, "listed")
