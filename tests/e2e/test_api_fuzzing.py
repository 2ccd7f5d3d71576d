"""Schemathesis against the whole stack, from the OpenAPI document the gateway serves.

Every operation gets generated requests, valid and invalid: the coverage phase (boundary
values, each kind of broken input, malformed content types), the seeds' examples and the
fuzzing phase (Hypothesis). All are sent signed in as one user (negative cases may drop
the token). No response may be a 5xx, and each must be what the document says: a
documented status, content type and body.

The trim upload's generated files are Schemathesis' samples (a few bytes to a few
hundred): every accepted one is streamed to storage and becomes a real, quickly failing,
trim job of the fuzzing user.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from services.gateway.openapi import build_document
from tests.conftest import Account, make_user

#: Fuzzing-phase examples per operation: enough for the multipart form's and the
#: cursors' odd cases; the whole module takes about a minute and a half.
MAX_EXAMPLES = 250
#: Fixed (with `derandomize`), so a failure found once is found again on the next run.
SEED = 20_100

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.fixture(scope="module")
async def fuzzer_account(gateway_url: str) -> AsyncIterator[Account]:
    async with aiohttp.ClientSession() as http:
        yield await make_user(http, gateway_url)


# Built in process, not loaded lazily from the stack with `schemathesis.pytest.from_fixture`:
# that loader sets `Node._nodeid`, which pytest 9.2 no longer has. The gateway serves this
# very document (tests/gateway/test_openapi.py).
schema = schemathesis.openapi.from_dict(
    build_document(),
    config=schemathesis.Config.from_dict(
        # No cache: a test run leaves nothing in the working tree.
        {"seed": SEED, "generation": {"mode": "all"}, "cache": {"enabled": False}}
    ),
    # The live event stream never ends by itself: every call would wait out its timeout
    # (tests/e2e/test_live_events.py covers it, tests/gateway/test_openapi.py its document).
).exclude(operation_id="live_events")


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_the_api_keeps_its_contract(
    case: schemathesis.Case, gateway_url: str, fuzzer_account: Account
) -> None:
    # The token goes to every operation: the gateway does not look at it on public ones.
    case.call_and_validate(
        base_url=gateway_url, headers=fuzzer_account.auth, checks=CHECKS, timeout=30
    )
