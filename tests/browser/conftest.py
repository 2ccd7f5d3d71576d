"""One headless Chromium per test session, driven by Playwright.

The browser is Debian's `chromium` package at /usr/bin/chromium (`make test` installs
it with `python -m devstack.chromium`); Playwright's own browser download is never
used. A missing browser fails the tests that need it, loudly: it is not a skip.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from playwright.async_api import Browser, BrowserContext, Page, async_playwright

from devstack.chromium import CHROMIUM

#: Headless, no sandbox (root in a container), nothing that phones home or updates.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    """Launched once per session; Playwright gives it a fresh temporary profile
    (user-data-dir), removed when the browser closes."""
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: the browser tests need Debian's chromium package "
            "(`make test` installs it; or run `.venv/bin/python -m devstack.chromium` "
            "as root, or `apt-get install --no-install-recommends chromium`)",
            pytrace=False,
        )
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS
        )
        try:
            yield launched
        finally:
            await launched.close()


@pytest.fixture
async def page(browser: Browser) -> AsyncIterator[Page]:
    """A page in a context of its own (no cookies or cache shared between tests)."""
    context: BrowserContext = await browser.new_context()
    try:
        yield await context.new_page()
    finally:
        await context.close()
