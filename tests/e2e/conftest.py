"""Fixtures shared by the end-to-end tests on the session's stack."""

from __future__ import annotations

import aiohttp
import pytest

from tests.conftest import Account, make_user


@pytest.fixture
async def account(http: aiohttp.ClientSession, gateway_url: str) -> Account:
    """A new signed-in user of the session's stack."""
    return await make_user(http, gateway_url)
