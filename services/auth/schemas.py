"""Request and response bodies of the auth API (JSON:API, seed 004)."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from services.auth.passwords import BCRYPT_MAX_BYTES

# Deliberately simple: one @, no spaces or control characters, a dot in the domain.
# Deliverability is the mail server's business, not a regex's.
_EMAIL = re.compile(r"^[^@\s\x00-\x1f\x7f]+@[^@\s\x00-\x1f\x7f]+\.[^@\s.\x00-\x1f\x7f]+$")
PASSWORD_MIN_LENGTH = 8


class _Input(BaseModel):
    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True, frozen=True)


def _valid_email(value: str) -> str:
    if not value:
        raise ValueError("can't be blank")
    if len(value) > 254 or not _EMAIL.match(value):
        raise ValueError("is invalid")
    return value


class RegistrationInput(_Input):
    # The validators give the seed's messages; `json_schema_extra` shows the same rules
    # in the OpenAPI document.
    email: str = Field(json_schema_extra={"format": "email", "maxLength": 254})
    password: str = Field(
        json_schema_extra={
            "minLength": PASSWORD_MIN_LENGTH,
            "maxLength": BCRYPT_MAX_BYTES,
            "description": f"At most {BCRYPT_MAX_BYTES} bytes of UTF-8 (what bcrypt reads).",
        }
    )
    password_confirmation: str

    _email = field_validator("email")(_valid_email)

    @field_validator("password")
    @classmethod
    def _password_length(cls, value: str) -> str:
        if len(value) < PASSWORD_MIN_LENGTH:
            raise ValueError(f"is too short (minimum is {PASSWORD_MIN_LENGTH} characters)")
        if len(value.encode()) > BCRYPT_MAX_BYTES:
            raise ValueError(f"is too long (maximum is {BCRYPT_MAX_BYTES} bytes)")
        return value

    @field_validator("password_confirmation")
    @classmethod
    def _confirmation_matches(cls, value: str, info: ValidationInfo) -> str:
        # `password` is absent from info.data when it failed its own checks.
        password = info.data.get("password")
        if password is not None and value != password:
            raise ValueError("doesn't match Password")
        return value


class SessionInput(_Input):
    email: str = Field(min_length=1)
    password: str = Field(min_length=1)


class UserAttributes(BaseModel):
    email: str


class UserResource(BaseModel):
    id: str
    type: Literal["users"] = "users"
    attributes: UserAttributes


class TokenAttributes(BaseModel):
    access: str


class TokenResource(BaseModel):
    #: The seed shows the issue time here (`2019-07-25 18:33:54 UTC`).
    id: str
    type: Literal["tokens"] = "tokens"
    attributes: TokenAttributes
