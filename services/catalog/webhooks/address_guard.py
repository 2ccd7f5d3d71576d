"""Server-side request forgery guard of webhook URLs.

A webhook URL is chosen by a user and fetched by catalog, from inside the deployment:
without a guard it could reach the cloud metadata service, the stores, or any internal
port. So in production every address a URL's host resolves to must be public: not
loopback, private, link-local, multicast, unspecified, reserved or a metadata address.

The check runs at creation (a clear 422) and again at every delivery, because DNS may
answer differently later. At delivery the check sits in the connection's resolver
(`GuardedResolver`): aiohttp connects only to the addresses the guard just checked, so
a name cannot be re-pointed between the check and the connection (DNS rebinding).
`allow_private` (development and the tests) lets local receivers through.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

ALLOWED_SCHEMES = frozenset({"http", "https"})
#: Cloud instance metadata services (AWS, GCP, Azure use the IPv4 one; AWS the IPv6 one).
METADATA_ADDRESSES = frozenset(
    {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")}
)


class UnsafeAddress(Exception):
    """A webhook URL that catalog must not call (the message says why)."""


def is_internal(address: IPAddress) -> bool:
    """Whether `address` may reach something inside the deployment, not the internet."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return is_internal(address.ipv4_mapped)
    return (
        address in METADATA_ADDRESSES
        or address.is_loopback
        or address.is_private
        or address.is_link_local
        or address.is_multicast
        or address.is_unspecified
        or address.is_reserved
        or not address.is_global
    )


def url_host(url: str) -> tuple[str, int]:
    """The host and port of an http(s) URL; `UnsafeAddress` for any other URL."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UnsafeAddress("The URL is not valid") from exc
    if parts.scheme not in ALLOWED_SCHEMES:
        raise UnsafeAddress("Only http and https URLs can receive webhooks")
    if not parts.hostname:
        raise UnsafeAddress("The URL has no host")
    return parts.hostname, port or (443 if parts.scheme == "https" else 80)


class AddressGuard:
    """Resolves a host and refuses it unless every address it resolves to is public."""

    def __init__(self, *, allow_private: bool) -> None:
        self.allow_private = allow_private

    async def resolve(
        self, host: str, port: int, family: int = socket.AF_UNSPEC
    ) -> list[IPAddress]:
        """The addresses of `host`, each checked; `UnsafeAddress` if any is internal or
        the name does not resolve."""
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(
                host, port, family=family, type=socket.SOCK_STREAM
            )
        except (socket.gaierror, UnicodeError) as exc:
            raise UnsafeAddress(f"The host {host!r} does not resolve") from exc
        addresses = [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]
        if not addresses:
            raise UnsafeAddress(f"The host {host!r} does not resolve")
        if not self.allow_private:
            refused = [a for a in addresses if is_internal(a)]
            if refused:
                raise UnsafeAddress(
                    f"The host {host!r} resolves to an internal address ({refused[0]})"
                )
        return addresses

    async def check_url(self, url: str) -> None:
        """Refuse a URL catalog must not call (creation time)."""
        host, port = url_host(url)
        if not self.allow_private:
            await self.resolve(host, port)


class GuardedResolver(AbstractResolver):
    """aiohttp's resolver for webhook deliveries: resolves once, checks every address,
    and hands aiohttp only those (which it then connects to)."""

    def __init__(self, guard: AddressGuard) -> None:
        self._guard = guard
        self._fallback = ThreadedResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        if self._guard.allow_private:
            return await self._fallback.resolve(host, port, family)
        addresses = await self._guard.resolve(host, port, family)
        return [
            ResolveResult(
                hostname=host,
                host=str(address),
                port=port,
                family=socket.AF_INET6 if address.version == 6 else socket.AF_INET,
                proto=0,
                flags=socket.AI_NUMERICHOST,
            )
            for address in addresses
        ]

    async def close(self) -> None:
        await self._fallback.close()
