"""`GET /docs`: the API reference, Swagger UI from the gateway's own static files
(installed by `make setup` from the npm registry) rendering `/openapi.json`, in
headless Chromium, under a Content-Security-Policy that admits only the gateway's own
scripts: every operation shows, and nothing is blocked or fails."""

from __future__ import annotations

import aiohttp
from playwright.async_api import ConsoleMessage, Page, Request

OPERATIONS_SHOWN_MS = 20_000


async def test_the_docs_page_renders_every_operation_from_the_gateways_own_files(
    http: aiohttp.ClientSession, gateway_url: str, page: Page
) -> None:
    async with http.get(f"{gateway_url}/openapi.json") as response:
        document = await response.json()
    operations = [op for path in document["paths"].values() for op in path.values()]
    problems: list[str] = []
    fetched: list[str] = []
    page.on("console", lambda m: _console_problem(m, problems))
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.on("request", lambda r: _record(r, fetched))

    response = await page.goto(f"{gateway_url}/docs")

    assert response is not None
    assert response.status == 200
    assert "script-src 'self'" in response.headers["content-security-policy"]
    shown = page.locator(".opblock-summary-operation-id, .opblock-summary-description")
    await page.wait_for_function(
        f"document.querySelectorAll('.opblock').length >= {len(operations)}",
        timeout=OPERATIONS_SHOWN_MS,
    )
    assert await page.locator(".opblock").count() == len(operations)
    summaries = await shown.all_inner_texts()
    for operation in ("Get Watch Video Record", "Get HLS Playlist", "Create a new user video"):
        assert operation in summaries
    assert problems == []
    assert all(url.startswith(gateway_url) for url in fetched), fetched  # no CDN


def _console_problem(message: ConsoleMessage, problems: list[str]) -> None:
    if message.type == "error":
        problems.append(f"console: {message.text}")


def _record(request: Request, fetched: list[str]) -> None:
    if not request.url.startswith("data:"):
        fetched.append(request.url)
