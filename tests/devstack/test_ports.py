"""Port choice and the "port in use" check."""

from __future__ import annotations

import pytest

from devstack.errors import DevstackError, PortInUse
from devstack.ports import (
    WEED_GRPC_OFFSET,
    PortNeed,
    PortPlan,
    ServicePorts,
    check_ports_free,
    free_port,
    port_is_free,
)


def test_free_port_with_grpc_leaves_its_grpc_twin_free() -> None:
    port = free_port(with_grpc=True)

    assert 10000 <= port <= 55000
    assert port + WEED_GRPC_OFFSET <= 65535
    assert port_is_free(port)
    assert port_is_free(port + WEED_GRPC_OFFSET)


def test_dynamic_plans_use_distinct_ports() -> None:
    stores = PortPlan.dynamic()
    services = ServicePorts.dynamic(exclude=[n.port for n in stores.seaweed_needs()])

    ports = [need.port for need in stores.mongo_needs() + stores.seaweed_needs()]
    ports += [stores.amqp_dist, *services.by_name().values()]
    assert len(ports) == len(set(ports))


def test_seaweed_needs_include_every_grpc_port() -> None:
    plan = PortPlan()

    ports = {need.port for need in plan.seaweed_needs()}

    assert ports == {8333, 18333, 9333, 19333, 8888, 18888, 8084, 18084, 23646, 33646}


def test_port_in_use_names_port_component_and_variable(held_port: int) -> None:
    need = PortNeed(held_port, "SeaweedFS S3", "KINO_DEV_PORT_S3")

    with pytest.raises(PortInUse) as raised:
        check_ports_free([need])

    message = raised.value.message
    assert str(held_port) in message
    assert "SeaweedFS S3" in message
    assert "KINO_DEV_PORT_S3" in message
    assert "\n" not in message


def test_grpc_port_beyond_65535_is_refused() -> None:
    plan = PortPlan(s3=60000)

    with pytest.raises(DevstackError, match=r"70000.*out of range.*KINO_DEV_PORT_S3"):
        check_ports_free(plan.seaweed_needs())


def test_ports_come_from_the_environment() -> None:
    environ = {"KINO_DEV_PORT_GATEWAY": "9080", "KINO_DEV_PORT_MONGO": "27018"}

    assert ServicePorts.from_environ(environ) == ServicePorts(gateway=9080)
    assert PortPlan.from_environ(environ) == PortPlan(mongo=27018)


def test_a_port_variable_that_is_not_a_number_is_explained() -> None:
    with pytest.raises(DevstackError, match="KINO_DEV_PORT_AUTH='x' is not a port number"):
        ServicePorts.from_environ({"KINO_DEV_PORT_AUTH": "x"})
