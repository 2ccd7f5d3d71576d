"""Kino's web app (`/app/`) in headless Chromium, used the way a person uses it.

The journey: sign up → upload a generated clip → see its progress → watch it play
through HLS → edit it → trim a span of it → play the clip → delete it; and the errors a
person meets (a wrong password, a file that is not a video, a file over the limit)
show a readable message. No page may log an error or break its Content-Security-Policy,
and nothing is fetched from outside the gateway and the store. Each step saves a
screenshot under the test's temporary directory (`screenshots/`).
"""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
from playwright.async_api import Browser, ConsoleMessage, Page, expect

from devstack.stores import StoreEndpoints
from tests.conftest import (
    PASSWORD,
    UPLOAD_LIMIT,
    Account,
    make_user,
    unique_email,
    upload_video,
    wait_until_done,
)
from tests.transcoder import media_factory as factory

#: Long enough for an upload to be processed and a trim to be cut on a busy machine.
JOB_MS = 60_000
PLAYED_SECONDS = 1.0
VIEWPORT = {"width": 1100, "height": 900}
PHONE = {"width": 390, "height": 844}


class Journey:
    """A page of the app with its problems recorded and its screenshots numbered."""

    def __init__(self, browser: Browser, page: Page, gateway_url: str, shots: Path) -> None:
        self.browser = browser
        self.page = page
        self.base = f"{gateway_url}/app/"
        self.shots = shots
        self.count = 0
        self.problems: list[str] = []
        #: Every URL the page asked for, and what must never appear in one (the token).
        self.requested: list[str] = []
        self.secrets: list[str] = []
        page.on("request", lambda request: self.requested.append(request.url))
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.problems.append(f"page error: {error}"))

    def _console(self, message: ConsoleMessage) -> None:
        if message.type == "error" and not _expected_error(message.text):
            self.problems.append(f"console: {message.text}")

    async def goto(self, route: str) -> None:
        await self.page.goto(f"{self.base}#{route}")

    async def shot(self, name: str) -> Path:
        self.count += 1
        path = self.shots / f"{self.count:02d}-{name}.png"
        await self.page.screenshot(path=str(path), full_page=True)
        return path


def make_journey_clip(path: Path) -> Path:
    """A minute of MPEG-4 Part 2, quick to make and small (3 MB): no browser plays it
    as it is, so it is transcoded, which takes a few seconds and reports progress."""
    return factory.make_clip(
        path, seconds=60, size=(640, 360), video_codec="mpeg4", video_options={"qscale": "12"}
    )


def _expected_error(text: str) -> bool:
    """What a browser logs by itself for the answers a test provokes on purpose: the
    failed sign-in's 401 ("Failed to load resource")."""
    return text.startswith("Failed to load resource") and "401" in text


async def test_a_person_signs_up_uploads_watches_edits_trims_and_deletes(
    browser: Browser, page: Page, gateway_url: str, stores: StoreEndpoints, tmp_path: Path
) -> None:
    shots = tmp_path / "screenshots"
    shots.mkdir()
    clip = await asyncio.to_thread(make_journey_clip, tmp_path / "holiday.mp4")
    await page.set_viewport_size(VIEWPORT)
    journey = Journey(browser, page, gateway_url, shots)
    await run_journey(journey, clip, tmp_path)
    assert journey.problems == []
    assert journey.secrets
    leaked = [url for url in journey.requested for secret in journey.secrets if secret in url]
    assert leaked == []  # the token stays out of URLs
    origins = {_origin(url) for url in journey.requested if not url.startswith(("blob:", "data:"))}
    assert origins <= {_origin(gateway_url), _origin(stores.s3_endpoint)}, origins


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


async def run_journey(journey: Journey, clip: Path, tmp_path: Path) -> None:
    page = journey.page
    email = unique_email("webapp")

    # --- explore, signed out; the CSP is strict ---------------------------------------
    response = await page.goto(journey.base)
    assert response is not None
    assert response.status == 200
    policy = response.headers["content-security-policy"]
    assert "script-src 'self';" in policy
    assert "unsafe" not in policy
    await expect(page.get_by_role("heading", name="Explore")).to_be_visible()
    await journey.shot("explore-signed-out")

    # --- sign up ----------------------------------------------------------------------
    await page.get_by_role("link", name="Sign up", exact=True).click()
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("Password", exact=True).fill(PASSWORD)
    await page.get_by_label("Repeat the password").fill(PASSWORD)
    await journey.shot("sign-up")
    await page.get_by_role("button", name="Create account").click()
    await expect(page.get_by_role("heading", name="My videos")).to_be_visible()
    token = await page.evaluate("JSON.parse(localStorage.getItem('kino.session')).token")
    journey.secrets.append(token)

    # --- a wrong password reads as one ----------------------------------------------------
    await page.get_by_role("button", name="Sign out").click()
    await page.get_by_role("link", name="Sign in", exact=True).click()
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("Password").fill("not the password")
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("alert")).to_have_text("Invalid email or password")
    await journey.shot("sign-in-wrong-password")
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("heading", name="My videos")).to_be_visible()

    # --- upload: files Kino refuses are refused before anything is sent --------------------
    await page.get_by_role("link", name="Upload", exact=True).click()
    await expect(page.locator("#upload-limits")).to_contain_text("Up to 8.0 MB")
    notes = factory.make_text_file(tmp_path / "notes.txt")
    await page.locator("#file").set_input_files(notes)
    await expect(page.get_by_role("alert")).to_contain_text(
        "“notes.txt” is not a video Kino accepts"
    )
    await journey.shot("upload-not-a-video")
    big = tmp_path / "too-big.mp4"
    big.write_bytes(b"\0" * (UPLOAD_LIMIT + 1))
    await page.locator("#file").set_input_files(big)
    await expect(page.get_by_role("alert")).to_contain_text("Kino accepts videos up to 8.0 MB")
    await journey.shot("upload-too-big")

    # --- upload a clip: the progress bar fills, then processing is followed live -----------
    await page.locator("#file").set_input_files(clip)
    await expect(page.get_by_label("Title")).to_have_value("holiday")
    await page.get_by_label("Description").fill("A minute of test pattern.")
    await page.get_by_role("button", name="Upload", exact=True).click()
    upload_bar = page.get_by_label("Upload progress")
    await expect(upload_bar).to_have_attribute("value", "1", timeout=JOB_MS)
    await expect(page.get_by_text("Uploaded", exact=True)).to_be_visible()
    # Processing, followed on the event stream: a percentage, then "ready".
    await expect(page.locator(".follow .progress-text")).to_contain_text("%", timeout=JOB_MS)
    await journey.shot("upload-processing")
    await expect(page.get_by_text("“holiday” is ready.")).to_be_visible(timeout=JOB_MS)
    await journey.shot("upload-processed")

    # --- watch it play through HLS ----------------------------------------------------------
    await page.get_by_role("link", name="Watch it", exact=True).click()
    await expect(page.get_by_role("heading", name="holiday")).to_be_visible()
    await expect(page.get_by_text("A minute of test pattern.")).to_be_visible()
    player = page.locator("#player")
    await expect(player).to_have_attribute("data-playback", "hls")
    await player.evaluate("video => { video.muted = true; return video.play(); }")
    await page.wait_for_function(
        f"() => document.getElementById('player').currentTime > {PLAYED_SECONDS}", timeout=JOB_MS
    )
    await player.evaluate("video => video.pause()")
    await journey.shot("watch")
    watch_url = page.url

    # --- explore shows it, with its duration ---------------------------------------------------
    await page.get_by_role("link", name="Explore", exact=True).click()
    card = page.locator(".video-card", has_text="holiday")
    await expect(card).to_be_visible()
    await expect(card.locator(".duration")).to_have_text("1:00")
    await journey.shot("explore")

    # --- edit: title, description, privacy ----------------------------------------------------
    await page.get_by_role("link", name="My videos", exact=True).click()
    hash_id = await page.locator(
        ".my-item[data-status='processed']", has_text="holiday"
    ).get_attribute("data-hash-id")
    item = page.locator(f".my-item[data-hash-id='{hash_id}']")
    await item.get_by_role("button", name="Edit").click()
    await item.get_by_label("Title").fill("Holiday, edited")
    await item.get_by_label("Description").fill("Now private.")
    await item.get_by_label("Private: only I can watch it").check()
    await journey.shot("edit")
    await item.get_by_role("button", name="Save").click()
    edited = item.filter(has_text="Holiday, edited")
    await expect(edited).to_be_visible()
    await expect(edited.locator(".badge")).to_have_text("Private")
    await journey.shot("my-videos")
    # Now private: someone signed out cannot watch it.
    stranger = await journey.browser.new_context()
    try:
        other = await stranger.new_page()
        await other.goto(watch_url)
        await expect(other.get_by_role("heading", name="Video unavailable")).to_be_visible()
        await expect(other.get_by_role("alert")).to_have_text("This video is private")
    finally:
        await stranger.close()

    # --- trim a span of it, frame by frame ---------------------------------------------------
    await edited.get_by_role("link", name="Trim", exact=True).click()
    await expect(page.get_by_label("My video", exact=True)).to_have_value(re.compile(r"\S+"))
    source = page.locator("#trim-player")
    await page.wait_for_function(
        "() => document.getElementById('trim-player').readyState >= 1", timeout=JOB_MS
    )
    await page.get_by_role("button", name="Forward one frame").click()
    await page.get_by_role("button", name="Forward one frame").click()
    stepped = await source.evaluate("video => video.currentTime")
    assert abs(stepped - 2 / 30) < 0.002, stepped  # 1/30 s a frame until measured
    await page.get_by_role("button", name="Back one frame").click()
    back = await source.evaluate("video => video.currentTime")
    assert abs(back - 1 / 30) < 0.002, back
    await page.get_by_label("Start (seconds)").fill("1")
    await page.get_by_label("Duration (seconds)").fill("1.5")
    await page.get_by_label("Clip name").fill("the middle")
    await journey.shot("trim-span")
    await page.get_by_role("button", name="Cut the clip").click()
    await expect(page.get_by_text("“the middle” is ready.")).to_be_visible(timeout=JOB_MS)
    table = page.locator(".follow .cut-table")
    await expect(table.locator("tr", has_text="Start")).to_contain_text("1.000 s")
    await expect(table.locator("tr", has_text="Duration")).to_contain_text("1.500 s")
    clip_player = page.locator("#clip-player")
    await clip_player.evaluate("video => { video.muted = true; return video.play(); }")
    await page.wait_for_function(
        "() => document.getElementById('clip-player').currentTime > 0.5", timeout=JOB_MS
    )
    await clip_player.evaluate("video => video.pause()")
    await journey.shot("trim-done")
    async with page.expect_download() as download_info:
        await page.locator(".follow").get_by_role("button", name="Download").click()
    download = await download_info.value
    assert download.suggested_filename == "the middle.mp4"

    # --- phone width: every page fits the screen ---------------------------------------------
    await page.set_viewport_size(PHONE)
    await page.goto(watch_url)
    await expect(page.get_by_role("heading", name="Holiday, edited")).to_be_visible()
    await journey.shot("watch-phone")
    for route, heading in (
        ("/explore", "Explore"),
        ("/my", "My videos"),
        ("/upload", "Upload a video"),
        ("/trim", "Trim a clip"),
        ("/webhooks", "Webhooks"),
    ):
        await journey.goto(route)
        await expect(page.get_by_role("heading", name=heading, exact=True)).to_be_visible()
        width = await page.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE["width"], (route, width)  # nothing wider than the screen
    await journey.shot("trim-phone")
    await page.set_viewport_size(VIEWPORT)

    # --- delete, after a confirmation ---------------------------------------------------
    await page.get_by_role("link", name="My videos", exact=True).click()
    await item.get_by_role("button", name="Delete").click()
    dialog = page.get_by_role("dialog")
    await expect(dialog).to_contain_text("Delete “Holiday, edited”?")
    await journey.shot("delete-confirm")
    await dialog.get_by_role("button", name="Delete").click()
    await expect(item).to_have_count(0)
    await expect(page.get_by_text("Nothing published yet.")).to_be_visible()
    await journey.shot("deleted")


async def test_the_app_is_one_page_under_a_strict_policy(
    http: aiohttp.ClientSession, gateway_url: str, stores: StoreEndpoints
) -> None:
    async with http.get(f"{gateway_url}/app", allow_redirects=False) as response:
        assert response.status == 308
        assert response.headers["Location"] == "/app/"
    async with http.get(f"{gateway_url}/app/") as response:
        assert response.status == 200
        assert response.content_type == "text/html"
        policy = dict(
            directive.strip().split(" ", 1)
            for directive in response.headers["Content-Security-Policy"].split(";")
        )
    assert policy["default-src"] == "'self'"
    assert policy["script-src"] == "'self'"  # no inline script, no eval
    assert policy["style-src"] == "'self'"
    storage = stores.s3_endpoint.rstrip("/")
    for directive in ("img-src", "media-src", "connect-src"):
        assert storage in policy[directive].split(), directive
    assert "blob:" in policy["media-src"].split()  # Media Source buffers
    assert policy["worker-src"] == "'none'"
    assert policy["frame-ancestors"] == "'none'"
    async with http.get(f"{gateway_url}/app/elsewhere") as response:
        assert response.status == 404
    async with http.get(f"{gateway_url}/static/app/main.js") as response:
        assert response.status == 200
        assert "javascript" in response.content_type


async def test_a_large_file_goes_up_resumably_and_resumes_after_a_cancel(
    http: aiohttp.ClientSession, gateway_url: str, page: Page, tmp_path: Path
) -> None:
    """The resumable path (multipart, one presigned PUT per part) that files of 64 MiB
    and more take, here for a clip of two of the test stack's parts (`multipartFrom:
    1`): cancelled once begun, then chosen again, it resumes the same upload and is
    processed."""
    account = await make_user(http, gateway_url)
    clip = await asyncio.to_thread(factory.make_two_part_clip, tmp_path / "big.mp4")
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(str(error)))
    await sign_in_page(page, gateway_url, account)
    await page.goto(f"{gateway_url}/app/#/upload")
    await page.locator("#file").set_input_files(clip)
    result = await page.evaluate(
        """async () => {
            const { uploadVideo, unfinishedUpload } = await import("/static/app/uploads.js");
            const file = document.getElementById("file").files[0];
            const details = { title: "resumed", description: "", is_private: false };
            const controller = new AbortController();
            let cancelled = null;
            try {
                await uploadVideo(file, details, {
                    multipartFrom: 1, signal: controller.signal,
                    onProgress: () => controller.abort(),
                });
            } catch (error) {
                cancelled = error.message;
            }
            const remembered = unfinishedUpload(file);
            const hashId = await uploadVideo(file, details, { multipartFrom: 1 });
            return { cancelled, remembered, hashId, left: unfinishedUpload(file) };
        }"""
    )
    assert result["cancelled"] == "The upload was cancelled.", result
    assert result["remembered"] == result["hashId"], result
    assert result["left"] is None, result
    state, video = await wait_until_done(http, gateway_url, account, result["hashId"])
    assert state == "listed", video
    assert video["title"] == "resumed"
    assert problems == []


async def test_explore_shows_more_videos_as_the_person_scrolls(
    http: aiohttp.ClientSession, gateway_url: str, page: Page, tmp_path: Path
) -> None:
    """The session's listings hold 3 videos a page (`KINO_PAGE_SIZE`): the fourth comes
    from `next` once the end of the grid scrolls into view."""
    account = await make_user(http, gateway_url)
    clip = await asyncio.to_thread(factory.make_clip, tmp_path / "short.mp4", seconds=1)
    for number in range(4):
        hash_id = await upload_video(
            http, gateway_url, account, clip.read_bytes(), file_name=f"short {number}.mp4"
        )
        assert (await wait_until_done(http, gateway_url, account, hash_id))[0] == "listed"
    await page.set_viewport_size({"width": 390, "height": 600})
    await page.goto(f"{gateway_url}/app/#/explore")
    cards = page.locator(".video-card")
    await expect(cards).to_have_count(3)
    await expect(page.get_by_role("button", name="More videos")).to_be_visible()
    await page.locator(".sentinel").scroll_into_view_if_needed()
    await expect(cards.nth(3)).to_be_visible()
    assert await cards.count() > 3


async def test_trimming_a_file_from_this_device(
    http: aiohttp.ClientSession, gateway_url: str, page: Page, tmp_path: Path
) -> None:
    """The source can be a local file, previewed from a `blob:` URL before anything is
    sent; a start past its end is refused before sending."""
    account = await make_user(http, gateway_url)
    clip = await asyncio.to_thread(factory.make_clip, tmp_path / "local.mp4", seconds=3)
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(str(error)))
    await sign_in_page(page, gateway_url, account)
    await page.goto(f"{gateway_url}/app/#/trim")
    await page.get_by_label("Video file").set_input_files(clip)
    await page.wait_for_function(
        "() => document.getElementById('trim-player').readyState >= 1", timeout=JOB_MS
    )
    assert (await page.locator("#trim-player").get_attribute("src") or "").startswith("blob:")
    await expect(page.get_by_label("Clip name")).to_have_value("local clip")
    await page.get_by_label("Start (seconds)").fill("5")
    await page.get_by_role("button", name="Cut the clip").click()
    await expect(page.get_by_role("alert")).to_have_text("The start is past the end of the video.")
    await page.get_by_label("Start (seconds)").fill("0.5")
    await page.get_by_label("Duration (seconds)").fill("2")
    await page.get_by_role("button", name="Cut the clip").click()
    await expect(page.get_by_text("“local clip” is ready.")).to_be_visible(timeout=JOB_MS)
    table = page.locator(".follow .cut-table")
    await expect(table.locator("tr", has_text="Start")).to_contain_text("0.500 s")
    await expect(page.locator(".clip-item")).to_have_count(1)
    await expect(page.locator(".request-item[data-status='done']")).to_have_count(1)
    assert problems == []


async def test_webhooks_are_added_with_their_secret_shown_once_and_deleted(
    http: aiohttp.ClientSession, gateway_url: str, page: Page
) -> None:
    account = await make_user(http, gateway_url)
    await sign_in_page(page, gateway_url, account)
    await page.goto(f"{gateway_url}/app/#/my")
    await page.get_by_role("link", name="Webhooks").click()
    await page.get_by_label("Address").fill("not an address")
    await page.get_by_role("button", name="Add the webhook").click()
    await expect(page.get_by_role("alert")).to_be_visible()
    await page.get_by_label("Address").fill("https://example.org/kino-hook")
    await page.get_by_label("A trim failed").uncheck()
    await page.get_by_role("button", name="Add the webhook").click()
    await expect(page.locator(".secret")).to_have_text(re.compile(r"^whsec_"))
    hook = page.locator(".webhook-item", has_text="https://example.org/kino-hook")
    await expect(hook).to_contain_text("video.ready, video.failed, trim.done")
    await hook.get_by_role("button", name="Deliveries").click()
    await expect(hook).to_contain_text("Nothing sent yet.")
    await hook.get_by_role("button", name="Delete").click()
    await page.get_by_role("dialog").get_by_role("button", name="Delete").click()
    await expect(hook).to_have_count(0)
    await expect(page.get_by_text("No webhooks yet.")).to_be_visible()


async def sign_in_page(page: Page, gateway_url: str, account: Account) -> None:
    """Sign the app in as `account`, as the sign-in page does (its stored session)."""
    await page.goto(f"{gateway_url}/app/")
    session = json.dumps({"token": account.token, "email": account.email})
    await page.evaluate("session => localStorage.setItem('kino.session', session)", session)


async def test_a_file_kino_cannot_process_says_why_and_is_retried_then_deleted(
    http: aiohttp.ClientSession, gateway_url: str, page: Page, tmp_path: Path
) -> None:
    """A file that passes the type check but is no video: the upload page says why it
    failed; My videos shows the reason with Retry (which fails the same way) and Delete."""
    account = await make_user(http, gateway_url)
    broken = factory.make_random_bytes(tmp_path / "broken.mp4")
    await sign_in_page(page, gateway_url, account)
    await page.goto(f"{gateway_url}/app/#/upload")
    await page.locator("#file").set_input_files(broken)
    await page.get_by_role("button", name="Upload", exact=True).click()
    await expect(page.get_by_role("alert")).to_have_text(
        "“broken” could not be processed: file is not a media file.", timeout=JOB_MS
    )
    await page.get_by_role("link", name="Retry it from My videos").click()
    failed = page.locator(".my-item[data-status='failed']")
    await expect(failed).to_contain_text("file is not a media file")
    await failed.get_by_role("button", name="Retry").click()
    await expect(page.get_by_role("status").filter(has_text="Trying again.")).to_be_visible()
    await expect(failed).to_contain_text("file is not a media file", timeout=JOB_MS)
    await failed.get_by_role("button", name="Delete").click()
    await page.get_by_role("dialog").get_by_role("button", name="Delete").click()
    await expect(page.locator(".my-item")).to_have_count(0)
