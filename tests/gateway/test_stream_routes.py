"""Long-lived streams are exempt from the gateway's upstream read timeout; nothing else is."""

from __future__ import annotations

from services.gateway.routes import _limits
from services.gateway.routing import match
from services.gateway.settings import GatewaySettings


def test_only_the_event_stream_has_no_read_timeout() -> None:
    settings = GatewaySettings(
        gateway_upstream_timeout_seconds=7, gateway_connect_timeout_seconds=3
    )
    events = match("/api/v1/users/events")
    assert events is not None
    assert events.stream
    stream = _limits(settings, events).timeout
    assert stream.sock_read is None
    assert stream.sock_connect == 3
    for path in ("/api/v1/users/requests", "/api/v1/users/events/x", "/video/my/"):
        route = match(path)
        assert route is not None
        assert not route.stream
        assert _limits(settings, route).timeout.sock_read == 7
