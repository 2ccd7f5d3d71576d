"""The webhook SSRF guard, with real resolution of literal addresses and `localhost`."""

from __future__ import annotations

import pytest

from services.catalog.webhooks.address_guard import AddressGuard, UnsafeAddress, url_host

REFUSED = [
    "http://127.0.0.1/hook",
    "http://localhost:8080/hook",
    "http://10.1.2.3/",
    "http://172.16.0.1/",
    "http://192.168.1.1/",
    "http://169.254.169.254/latest/meta-data/",
    "http://[fd00:ec2::254]/",
    "http://[::1]/",
    "http://[::ffff:127.0.0.1]/",
    "http://0.0.0.0/",
    "http://[::]/",
    "http://224.0.0.1/",
    "http://[ff02::1]/",
    "http://[fe80::1]/",
    "http://100.64.0.1/",
]


@pytest.mark.parametrize("url", REFUSED)
async def test_internal_addresses_are_refused(url: str) -> None:
    with pytest.raises(UnsafeAddress):
        await AddressGuard(allow_private=False).check_url(url)


@pytest.mark.parametrize("url", ["http://93.184.215.14/", "https://[2606:4700::1111]:8443/x"])
async def test_public_addresses_pass(url: str) -> None:
    await AddressGuard(allow_private=False).check_url(url)


@pytest.mark.parametrize("url", ["ftp://93.184.215.14/", "file:///etc/passwd", "gopher://x/"])
async def test_only_http_and_https(url: str) -> None:
    for allow_private in (False, True):
        with pytest.raises(UnsafeAddress, match="http and https"):
            await AddressGuard(allow_private=allow_private).check_url(url)


async def test_development_allows_local_receivers() -> None:
    guard = AddressGuard(allow_private=True)
    await guard.check_url("http://127.0.0.1:9/hook")
    await guard.check_url("http://localhost/hook")


async def test_every_resolved_address_is_checked() -> None:
    """`localhost` resolves to loopback only; the checked addresses are what a delivery
    connects to."""
    addresses = await AddressGuard(allow_private=True).resolve("localhost", 80)
    assert addresses
    assert all(address.is_loopback for address in addresses)
    with pytest.raises(UnsafeAddress, match="internal address"):
        await AddressGuard(allow_private=False).resolve("localhost", 80)


def test_url_host_defaults_the_port() -> None:
    assert url_host("https://example.org/x") == ("example.org", 443)
    assert url_host("http://example.org:8080") == ("example.org", 8080)
    with pytest.raises(UnsafeAddress):
        url_host("http://example.org:99999/")
