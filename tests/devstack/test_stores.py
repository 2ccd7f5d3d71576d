"""The embedded stores, started the way the test suite starts them (ephemeral)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import aio_pika
import pytest
from minio.error import S3Error
from pymongo import AsyncMongoClient, MongoClient

from devstack.errors import PortInUse
from devstack.ports import PortPlan, port_is_free
from devstack.s3_server import S3Credentials, s3_client
from devstack.stores import StoreEndpoints, StoreSettings, start_stores
from tests.devstack.process_checks import processes_mentioning

#: The stores this module starts: whatever the developer's environment says about
#: external stores is ignored, so that SecantusDB and SeaweedFS really start here.
EMBEDDED = StoreSettings()


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StoreEndpoints]:
    with start_stores(tmp_path_factory.mktemp("stores"), settings=EMBEDDED) as endpoints:
        yield endpoints


def test_mongo_answers_a_ping(stores: StoreEndpoints) -> None:
    client: MongoClient[dict[str, object]]
    with MongoClient(stores.mongo_url) as client:
        assert client.admin.command("ping")["ok"] == 1


async def test_mongo_works_with_the_async_client(stores: StoreEndpoints) -> None:
    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(stores.mongo_url)
    try:
        collection = client["devstack_test"]["things"]
        await collection.insert_one({"_id": "a", "n": 1})
        assert await collection.find_one({"_id": "a"}) == {"_id": "a", "n": 1}
    finally:
        await client.close()


def test_s3_bucket_create_put_get(stores: StoreEndpoints) -> None:
    client = s3_client(
        stores.s3_endpoint, S3Credentials(stores.s3_access_key, stores.s3_secret_key)
    )

    client.make_bucket("devstack-test")
    client.put_object("devstack-test", "hello.txt", io.BytesIO(b"hello"), 5)
    response = client.get_object("devstack-test", "hello.txt")
    try:
        assert response.read() == b"hello"
    finally:
        response.close()
        response.release_conn()


def test_s3_refuses_wrong_keys(stores: StoreEndpoints) -> None:
    client = s3_client(stores.s3_endpoint, S3Credentials(stores.s3_access_key, "wrong-secret"))

    with pytest.raises(S3Error, match=r"SignatureDoesNotMatch|AccessDenied|InvalidAccessKeyId"):
        client.list_buckets()


async def test_amqp_connects(stores: StoreEndpoints) -> None:
    connection = await aio_pika.connect(stores.amqp_url, timeout=5)
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(exclusive=True)
        assert queue.name


def test_service_env_has_every_store_setting(stores: StoreEndpoints) -> None:
    assert stores.service_env() == {
        "KINO_MONGO_URL": stores.mongo_url,
        "KINO_AMQP_URL": stores.amqp_url,
        "KINO_S3_ENDPOINT": stores.s3_endpoint,
        "KINO_S3_ACCESS_KEY": "kinodev",
        "KINO_S3_SECRET_KEY": "kino-dev-s3-secret",
    }
    assert stores.s3_endpoint.startswith("http://127.0.0.1:")


def test_stopping_frees_every_port_and_process(run_dir: Path) -> None:
    ports = PortPlan.dynamic()
    # The admin HTTP port is reserved but not bound while the admin UI is off.
    needs = [n for n in ports.mongo_needs() + ports.seaweed_needs() if n.port != ports.s3_admin]

    with start_stores(run_dir, ports, settings=EMBEDDED):
        assert not any(port_is_free(need.port) for need in needs)
        assert processes_mentioning(f"--port {ports.mongo}", f"-s3.port={ports.s3}")

    assert all(port_is_free(need.port) for need in needs)
    assert processes_mentioning(f"--port {ports.mongo}", f"-s3.port={ports.s3}") == []
    assert list(Path("/tmp").glob(f"seaweedfs-*-{ports.s3}.sock")) == []


def test_a_store_port_in_use_stops_before_starting_anything(run_dir: Path, held_port: int) -> None:
    ports = replace(PortPlan.dynamic(exclude=[held_port]), s3_filer=held_port)

    with (
        pytest.raises(PortInUse, match=f"port {held_port} needed by SeaweedFS filer"),
        start_stores(run_dir, ports, settings=EMBEDDED),
    ):
        pass

    assert processes_mentioning(f"--port {ports.mongo}") == []
    assert not (run_dir / "logs").exists()


def test_external_stores_are_used_not_started(stores: StoreEndpoints, run_dir: Path) -> None:
    external = StoreSettings(
        mongo_url=stores.mongo_url,
        s3_endpoint=stores.s3_endpoint,
        s3_access_key=stores.s3_access_key,
        s3_secret_key=stores.s3_secret_key,
        amqp_url=stores.amqp_url,
    )

    with start_stores(run_dir, settings=external) as again:
        assert again.service_env() == stores.service_env()
        assert not (run_dir / "logs").exists()
