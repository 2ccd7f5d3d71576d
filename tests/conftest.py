"""Session-wide real servers and the factories every test uses.

The stores (SecantusDB, SeaweedFS, RabbitMQ) are started once per test session by
the same launcher code as `make run`. Each session gets its own exchange, queue
prefix and bucket, so it never sees another run's messages; the queues it
declared are deleted at the end.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import aio_pika
import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from minio import Minio
from pydantic_settings import BaseSettings

from devstack.services import RunningServices, start_services
from devstack.stores import StoreEndpoints, start_stores
from services.auth.token_issuer import generate_private_key_pem
from tests.polling import eventually
from tests.stack_cleanup import declared_queues

S = TypeVar("S", bound=BaseSettings)

PASSWORD = "correct horse battery"
#: Hosting upload limit of the session's catalog (small, so tests can exceed it).
UPLOAD_LIMIT = 8 * 1024 * 1024
#: Resumable uploads' part size: S3's least, so a file within the limit has two parts.
PART_SIZE = 5 * 1024 * 1024


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("kino-run")


@pytest.fixture(scope="session")
def stores(run_dir: Path) -> Iterator[StoreEndpoints]:
    with start_stores(run_dir / "stores", ephemeral=True) as endpoints:
        yield endpoints


@pytest.fixture(scope="session")
def namespace() -> str:
    """Unique per session: exchange, queue prefix and bucket names derive from it."""
    return f"test-{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="session")
def bucket(namespace: str) -> str:
    """The session's media bucket (`KINO_S3_BUCKET` of its services)."""
    return f"kino-{namespace}"


@pytest.fixture(scope="session")
def s3(stores: StoreEndpoints) -> Minio:
    """A client of the session's S3 server, for looking at what the services stored."""
    return Minio(
        urlsplit(stores.s3_endpoint).netloc,
        access_key=stores.s3_access_key,
        secret_key=stores.s3_secret_key,
        secure=False,
        region="us-east-1",
    )


@pytest.fixture(scope="session")
def signing_key_pem() -> str:
    """The auth service's key in tests, so tests can mint (expired, ...) tokens with it."""
    return generate_private_key_pem()


@pytest.fixture(scope="session")
def service_env(
    stores: StoreEndpoints, namespace: str, bucket: str, signing_key_pem: str
) -> dict[str, str]:
    """The `KINO_*` environment of this session's services."""
    return {
        **stores.service_env(),
        "KINO_AMQP_EXCHANGE": f"kino.{namespace}",
        "KINO_AMQP_QUEUE_PREFIX": namespace,
        "KINO_AMQP_RETRY_DELAY_SECONDS": "0.2",
        "KINO_AMQP_MAX_ATTEMPTS": "3",
        "KINO_S3_BUCKET": bucket,
        "KINO_AUTH_SIGNING_KEY": signing_key_pem,
        # Every test client shares 127.0.0.1; the address limit has its own test.
        "KINO_AUTH_LOGIN_LIMIT_PER_ADDRESS": "1000000",
        "KINO_AUTH_LOGIN_LIMIT_PER_EMAIL": "3",
        "KINO_LOG_LEVEL": "DEBUG",
        "KINO_UPLOAD_MAX_SIZE_BYTES": str(UPLOAD_LIMIT),
        "KINO_UPLOAD_PART_SIZE_BYTES": str(PART_SIZE),
        "KINO_UPLOAD_RECONCILE_INTERVAL_SECONDS": "0.5",
        "KINO_STORAGE_EVENTS_EXCHANGE": f"kino.storage.{namespace}",
        "KINO_PAGE_SIZE": "3",
        # webhooks: retries within a second, the worker looking every 0.2 s
        "KINO_WEBHOOK_RETRY_SCHEDULE_SECONDS": "[0.3, 0.3, 0.3]",
        "KINO_WEBHOOK_DELIVERY_INTERVAL_SECONDS": "0.2",
        # live events: an idle stream says it is alive every half second
        "KINO_EVENT_STREAM_HEARTBEAT_SECONDS": "0.5",
        # Gateways run in process need no admin port of their own (`start_services`
        # gives the stack's gateway one).
        "KINO_GATEWAY_ADMIN_PORT": "0",
    }


@pytest.fixture(scope="session")
def make_settings(service_env: dict[str, str]) -> Callable[..., Any]:
    """Build a service's settings in code from the session's environment plus overrides."""

    def build(settings_class: type[S], **overrides: Any) -> S:
        values: dict[str, Any] = {
            name.removeprefix("KINO_").lower(): value for name, value in service_env.items()
        }
        values.update(overrides)
        return settings_class(**values)

    return build


@pytest.fixture(scope="session")
async def amqp_cleanup(stores: StoreEndpoints, namespace: str) -> AsyncIterator[list[str]]:
    """Queue names to delete at the end of the session (tests append theirs)."""
    queues: list[str] = []
    yield queues
    connection = await aio_pika.connect(stores.amqp_url)
    async with connection:
        for name in queues:
            channel = await connection.channel()
            with contextlib.suppress(aio_pika.exceptions.ChannelClosed):
                await channel.queue_delete(name)
        channel = await connection.channel()
        for exchange in (f"kino.{namespace}", f"kino.storage.{namespace}"):
            with contextlib.suppress(aio_pika.exceptions.ChannelClosed):
                await channel.exchange_delete(exchange)


@pytest.fixture(scope="session")
def stack(
    service_env: dict[str, str], run_dir: Path, namespace: str, amqp_cleanup: list[str]
) -> Iterator[RunningServices]:
    """The four services as processes, started as `make run` starts them."""
    with start_services(service_env, run_dir / "services") as running:
        yield running
    amqp_cleanup.extend(declared_queues(namespace))


@pytest.fixture(scope="session")
def gateway_url(stack: RunningServices) -> str:
    return stack.gateway_url


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@contextlib.asynccontextmanager
async def serve(app: web.Application) -> AsyncIterator[str]:
    """Run an app in this process on a real loopback port; yields its base URL."""
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield str(server.make_url("")).rstrip("/")
    finally:
        await server.close()


@dataclass(frozen=True)
class Account:
    id: str
    email: str
    password: str
    token: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def unique_email(prefix: str = "user") -> str:
    return f"{prefix}.{uuid.uuid4().hex[:12]}@example.org"


async def register(
    http: aiohttp.ClientSession, base_url: str, email: str, password: str = PASSWORD
) -> aiohttp.ClientResponse:
    return await http.post(
        f"{base_url}/api/v1/users/registration",
        data={"email": email, "password": password, "password_confirmation": password},
    )


async def sign_in(
    http: aiohttp.ClientSession, base_url: str, email: str, password: str = PASSWORD
) -> aiohttp.ClientResponse:
    return await http.post(
        f"{base_url}/api/v1/users/session", data={"email": email, "password": password}
    )


async def make_user(http: aiohttp.ClientSession, base_url: str) -> Account:
    """A registered, signed-in user."""
    email = unique_email()
    registered = await register(http, base_url, email)
    assert registered.status == 201, await registered.text()
    user_id = (await registered.json(content_type=None))["data"]["id"]
    session = await sign_in(http, base_url, email)
    assert session.status == 201, await session.text()
    token = (await session.json(content_type=None))["data"]["attributes"]["access"]
    return Account(id=user_id, email=email, password=PASSWORD, token=token)


async def upload_to_storage(
    http: aiohttp.ClientSession,
    instructions: dict[str, Any],
    data: bytes,
    *,
    content_type: str = "video/mp4",
    field_overrides: dict[str, str] | None = None,
) -> aiohttp.ClientResponse:
    """POST a file to storage as a browser would with the upload instructions."""
    form = aiohttp.FormData()
    for name, value in {**instructions["signatures"], **(field_overrides or {})}.items():
        form.add_field(name, value)
    form.add_field("file", data, filename="upload.bin", content_type=content_type)
    return await http.post(instructions["url"], data=form)


async def request_upload(
    http: aiohttp.ClientSession,
    gateway_url: str,
    account: Account,
    file_name: str = "holiday.mp4",
    content_type: str = "video/mp4",
) -> dict[str, Any]:
    async with http.get(
        f"{gateway_url}/video/upload/",
        params={"file_content_type": content_type, "file_name": file_name},
        headers=account.auth,
    ) as response:
        assert response.status == 200, await response.text()
        return dict(await response.json())


async def upload_video(
    http: aiohttp.ClientSession,
    gateway_url: str,
    account: Account,
    data: bytes,
    *,
    file_name: str = "clip.mp4",
    content_type: str = "video/mp4",
) -> str:
    """Request instructions, POST the file to storage; returns the video's hash_id."""
    instructions = await request_upload(http, gateway_url, account, file_name, content_type)
    stored = await upload_to_storage(http, instructions, data, content_type=content_type)
    assert stored.status in {200, 201, 204}, await stored.text()
    return str(instructions["signatures"]["key"]).removeprefix("incoming/")


async def send_upload_part(
    http: aiohttp.ClientSession,
    base_url: str,
    headers: dict[str, str],
    hash_id: str,
    number: int,
    data: bytes,
) -> str:
    """PUT part `number` of a resumable upload to the presigned URL the API gives;
    returns the part's ETag."""
    async with http.get(
        f"{base_url}/video/upload/multipart/{hash_id}/parts/{number}", headers=headers
    ) as response:
        assert response.status == 200, await response.text()
        url = (await response.json())["url"]
    async with http.put(url, data=data) as stored:
        assert stored.status == 200, await stored.text()
        return stored.headers["ETag"]


async def my_videos(
    http: aiohttp.ClientSession, gateway_url: str, account: Account
) -> dict[str, Any]:
    async with http.get(f"{gateway_url}/video/my/", headers=account.auth) as response:
        assert response.status == 200
        return dict(await response.json())


async def wait_until_done(
    http: aiohttp.ClientSession, gateway_url: str, account: Account, hash_id: str
) -> tuple[str, dict[str, Any]]:
    """Poll `/video/my/` until the video is listed or failed: ("listed"|"failed", record)."""

    async def done() -> tuple[str, dict[str, Any]] | None:
        mine = await my_videos(http, gateway_url, account)
        for video in mine["videos"]:
            if video["hash_id"] == hash_id:
                return "listed", video
        for video in mine["unprocessed_videos"]:
            if video["hash_id"] == hash_id and "failure_reason" in video:
                return "failed", video
        return None

    return await eventually(done, within=60)


async def events_handled(
    http: aiohttp.ClientSession, service_url: str, queue: str, outcome: str = "acked"
) -> int:
    """How many messages a service's consumer of `queue` finished with `outcome`."""
    async with http.get(f"{service_url}/metrics") as response:
        text = await response.text()
    total = 0.0
    for line in text.splitlines():
        labels = (f'queue="{queue}"', f'outcome="{outcome}"')
        if line.startswith("events_handled_total{") and all(label in line for label in labels):
            total += float(line.rsplit(" ", 1)[1])
    return int(total)
