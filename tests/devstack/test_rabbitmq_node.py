"""AMQP: an answering broker is used; otherwise a private RabbitMQ node is started."""

from __future__ import annotations

import socket
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import aio_pika
import pytest

from devstack.errors import StoreFailed
from devstack.ports import LOOPBACK, PortPlan, free_port, port_is_free
from devstack.probes import tcp_accepts
from devstack.rabbitmq_node import (
    DEFAULT_AMQP_URL,
    RABBITMQ_USER,
    broker_answers,
    find_rabbitmq,
    reachable_by,
    user_ids,
)
from devstack.stores import AmqpSource, StoreSettings, plan_stores, start_stores
from tests.devstack.process_checks import processes_with_environment

needs_rabbitmq_server = pytest.mark.skipif(
    find_rabbitmq() is None, reason="rabbitmq-server is not installed"
)


@pytest.fixture
def closing_listener() -> Iterator[int]:
    """A port where something accepts connections and hangs up: not an AMQP broker."""
    listener = socket.create_server((LOOPBACK, free_port()))

    def hang_up() -> None:
        while True:
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            connection.close()

    thread = threading.Thread(target=hang_up, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
    listener.close()
    thread.join(timeout=2)


@pytest.mark.skipif(not tcp_accepts("127.0.0.1", 5672), reason="no broker on 127.0.0.1:5672 here")
def test_a_broker_at_the_default_url_is_used() -> None:
    assert broker_answers(DEFAULT_AMQP_URL)

    plan = plan_stores(StoreSettings(), PortPlan(), ephemeral=True)

    assert plan.amqp is AmqpSource.BROKER
    assert (
        plan.amqp_needs_no_ports
        if False
        else all(  # no AMQP port is reserved
            need.component.startswith(("SecantusDB", "SeaweedFS")) for need in plan.port_needs()
        )
    )


def test_nothing_listening_is_not_a_broker() -> None:
    assert broker_answers(f"amqp://guest:guest@127.0.0.1:{free_port()}/") is False


def test_a_listener_that_is_not_amqp_is_reported(closing_listener: int) -> None:
    url = f"amqp://guest:secret-password@127.0.0.1:{closing_listener}/"

    with pytest.raises(
        StoreFailed, match=f"something listens at 127.0.0.1:{closing_listener}"
    ) as raised:
        broker_answers(url)

    assert "secret-password" not in raised.value.message


@needs_rabbitmq_server
def test_a_private_node_starts_where_the_url_points_and_stops(run_dir: Path) -> None:
    port = free_port()
    url = f"amqp://kino:kino-dev-amqp@127.0.0.1:{port}/kino"
    settings = StoreSettings(amqp_url=url)
    node_name = f"kino-{port}@localhost"
    temp_dirs_before = set(Path("/tmp").glob("kino-rabbitmq-*"))

    plan = plan_stores(settings, PortPlan.dynamic(exclude=[port]), ephemeral=True)
    assert plan.amqp is AmqpSource.PRIVATE_NODE

    with start_stores(run_dir, plan.ports, settings=settings) as stores:
        assert stores.amqp_url == url
        assert processes_with_environment("RABBITMQ_NODENAME", node_name)
        # The URL's user, password and vhost are the node's defaults.
        assert broker_answers(url)

    assert port_is_free(port)
    assert port_is_free(plan.ports.amqp_dist)
    assert processes_with_environment("RABBITMQ_NODENAME", node_name) == []
    assert set(Path("/tmp").glob("kino-rabbitmq-*")) == temp_dirs_before


async def test_aio_pika_publishes_through_the_broker() -> None:
    if not tcp_accepts("127.0.0.1", 5672):
        pytest.skip("no broker on 127.0.0.1:5672 here")
    connection = await aio_pika.connect(DEFAULT_AMQP_URL, timeout=5)
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(exclusive=True)
        await channel.default_exchange.publish(aio_pika.Message(b"x"), routing_key=queue.name)
        message = await queue.get(timeout=5)
        assert message.body == b"x"
        await message.ack()


@pytest.mark.skipif(user_ids(RABBITMQ_USER) is None, reason="no rabbitmq user here")
def test_a_directory_under_a_private_one_is_out_of_the_nodes_reach(tmp_path: Path) -> None:
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    private.chmod(0o700)

    assert not reachable_by(private / "rabbitmq", RABBITMQ_USER)
    assert reachable_by(Path(tempfile.gettempdir()) / "rabbitmq", RABBITMQ_USER)
