"""Registration and sign-in: the auth domain, free of HTTP and AMQP."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from services.auth.errors import InvalidCredentials, TooManyAttempts
from services.auth.passwords import PasswordHasher
from services.auth.repository import LoginAttemptRepository, User, UserRepository, email_key
from services.auth.schemas import RegistrationInput, SessionInput
from services.auth.token_issuer import TokenIssuer
from shared.events import Envelope, UserRegistered
from shared.mongo import document_id, new_id
from shared.outbox import OutboxRelay


@dataclass(frozen=True)
class LoginLimits:
    per_email: int
    per_address: int


@dataclass(frozen=True)
class IssuedToken:
    access: str
    issued_at: datetime


class AuthService:
    def __init__(
        self,
        users: UserRepository,
        attempts: LoginAttemptRepository,
        hasher: PasswordHasher,
        issuer: TokenIssuer,
        outbox: OutboxRelay,
        limits: LoginLimits,
    ) -> None:
        self._users = users
        self._attempts = attempts
        self._hasher = hasher
        self._issuer = issuer
        self._outbox = outbox
        self._limits = limits

    async def register(self, data: RegistrationInput, *, correlation_id: str | None) -> User:
        user = User(
            id=new_id(),
            email=data.email,
            password_hash=await self._hasher.hash(data.password),
        )
        event = Envelope.wrap(
            UserRegistered(user_id=user.id, email=user.email), correlation_id=correlation_id
        )
        await self._users.insert(user, [event])
        await self._outbox.publish_soon(document_id(user.id))
        return user

    async def sign_in(self, data: SessionInput, *, client_address: str | None) -> IssuedToken:
        """Check the password and issue a token, within the limits on failures.

        Only failed sign-ins count, per email (a password guessed at) and per client
        address (many accounts tried from one place): a success is never limited, so
        many people behind one NAT address sign in freely. At a limit, attempts get
        `TooManyAttempts` (429) until the window ends. The email's count is taken
        before the password is checked and given back on success, so concurrent
        guesses cannot slip past it.
        """
        key = email_key(data.email)
        if client_address:
            by_address = await self._attempts.count("address", client_address)
            if by_address.count >= self._limits.per_address:
                raise TooManyAttempts(by_address.retry_after_seconds)
        by_email = await self._attempts.increment("email", key)
        if by_email.count > self._limits.per_email:
            raise TooManyAttempts(by_email.retry_after_seconds)
        user = await self._users.find_by_email(data.email)
        if (
            not await self._hasher.verify(data.password, user.password_hash if user else None)
            or user is None
        ):
            if client_address:
                await self._attempts.increment("address", client_address)
            raise InvalidCredentials
        await self._attempts.give_back(by_email)
        token, issued_at = self._issuer.issue(user.id)
        return IssuedToken(access=token, issued_at=datetime.fromtimestamp(issued_at, UTC))
