"""The gateway's signed identity assertion (`shared.identity`)."""

from __future__ import annotations

import base64
import json
import secrets
import time
from typing import Any

import jwt
import pytest

from shared.identity import Identity, IdentitySigner, IdentityVerifier, InvalidIdentity

SECRET = secrets.token_urlsafe(32)


def claims(**overrides: Any) -> dict[str, Any]:
    """Claims like the signer's, to craft assertions it would not produce."""
    now = int(time.time())
    values: dict[str, Any] = {
        "iss": "kino-gateway",
        "aud": "kino-internal",
        "iat": now,
        "exp": now + 60,
        "sub": "user-1",
    }
    values.update(overrides)
    return {name: value for name, value in values.items() if value is not None}


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_round_trip_keeps_user_address_and_request_id() -> None:
    identity = Identity(user_id="user-42", client_address="203.0.113.7", request_id="req-abc")

    assertion = IdentitySigner(SECRET).sign(identity)

    assert IdentityVerifier(SECRET).verify(assertion) == identity


def test_round_trip_of_an_anonymous_caller() -> None:
    identity = Identity(user_id=None, client_address="198.51.100.2", request_id="req-anon")

    verified = IdentityVerifier(SECRET).verify(IdentitySigner(SECRET).sign(identity))

    assert verified == identity
    assert verified.user_id is None


def test_assertion_is_short_lived_hs256_for_the_internal_audience() -> None:
    assertion = IdentitySigner(SECRET, ttl_seconds=60).sign(Identity(user_id="u"))

    header = jwt.get_unverified_header(assertion)
    payload = jwt.decode(assertion, options={"verify_signature": False})
    assert header["alg"] == "HS256"
    assert payload["aud"] == "kino-internal"
    assert payload["iss"] == "kino-gateway"
    assert payload["exp"] - payload["iat"] == 60


def test_wrong_secret_is_refused() -> None:
    assertion = IdentitySigner(secrets.token_urlsafe(32)).sign(Identity(user_id="user-1"))

    with pytest.raises(InvalidIdentity, match=r"(?i)signature verification"):
        IdentityVerifier(SECRET).verify(assertion)


def test_expired_assertion_is_refused() -> None:
    assertion = IdentitySigner(SECRET, ttl_seconds=-1).sign(Identity(user_id="user-1"))

    with pytest.raises(InvalidIdentity, match="expired"):
        IdentityVerifier(SECRET).verify(assertion)


def test_tampered_payload_is_refused() -> None:
    assertion = IdentitySigner(SECRET).sign(Identity(user_id="user-1"))
    header, payload, signature = assertion.split(".")
    forged = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    forged["sub"] = "admin"
    tampered = ".".join((header, b64url(json.dumps(forged).encode()), signature))

    with pytest.raises(InvalidIdentity):
        IdentityVerifier(SECRET).verify(tampered)


def test_unsigned_alg_none_assertion_is_refused() -> None:
    header = b64url(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    payload = b64url(json.dumps(claims(sub="admin")).encode())
    unsigned = f"{header}.{payload}."

    with pytest.raises(InvalidIdentity):
        IdentityVerifier(SECRET).verify(unsigned)


@pytest.mark.parametrize("assertion", [None, ""], ids=["absent", "empty"])
def test_missing_assertion_is_refused(assertion: str | None) -> None:
    with pytest.raises(InvalidIdentity, match="missing"):
        IdentityVerifier(SECRET).verify(assertion)


def test_garbage_assertion_is_refused() -> None:
    with pytest.raises(InvalidIdentity):
        IdentityVerifier(SECRET).verify("not-a-jwt")


@pytest.mark.parametrize(
    "crafted",
    [
        pytest.param(claims(aud="someone-else"), id="other-audience"),
        pytest.param(claims(iss="not-the-gateway"), id="other-issuer"),
        pytest.param(claims(exp=None), id="no-expiry"),
        pytest.param(claims(aud=None), id="no-audience"),
    ],
)
def test_assertion_the_gateway_would_not_issue_is_refused(crafted: dict[str, Any]) -> None:
    assertion = jwt.encode(crafted, SECRET, algorithm="HS256")

    with pytest.raises(InvalidIdentity):
        IdentityVerifier(SECRET).verify(assertion)


def test_crafted_assertion_with_the_gateway_claims_is_accepted() -> None:
    # The counterpart of the refusals above: the same claims, complete, verify.
    assertion = jwt.encode(claims(addr="192.0.2.1", rid="r-1"), SECRET, algorithm="HS256")

    assert IdentityVerifier(SECRET).verify(assertion) == Identity(
        user_id="user-1", client_address="192.0.2.1", request_id="r-1"
    )
