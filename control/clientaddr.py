"""Which client a request comes from: its address as the logs name it, and its key as the
rate limiters count it.

Behind a reverse proxy every request arrives from the proxy; ``server.trusted_proxies`` names
the proxies (addresses or CIDR networks) whose ``X-Forwarded-For`` is believed. The client is
then the rightmost address in that header that is not itself a trusted proxy (RFC 7239
section 7.4: each proxy appends what it saw, so only the entries the trusted proxies wrote
can be relied on; whatever the client put on the left is ignored). A request from anyone else
is keyed by its own address, whatever headers it carries.

An IPv6 client counts as its /64: one subscriber line gets a whole /64 (RFC 6177) and can
hop between its addresses at will. IPv4-mapped IPv6 addresses count as the IPv4 address.
"""

from __future__ import annotations

import ipaddress

from aiohttp import web

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
IPV6_PREFIX = 64


def _address(text: str) -> Address | None:
    text = text.strip()
    if text.startswith("[") and "]" in text:  # "[2001:db8::1]:443"
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:  # "192.0.2.1:443"
        text = text.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def key_of(address: Address) -> str:
    """The rate-limit key: the IPv4 address, or the IPv6 address's /64."""
    if isinstance(address, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((address, IPV6_PREFIX), strict=False))
    return str(address)


def _trusted(address: Address | None, proxies: tuple[Network, ...]) -> bool:
    return address is not None and any(address in net for net in proxies)


def _client(request: web.Request, trusted_proxies: tuple[Network, ...]) -> Address | None:
    remote = _address(request.remote or "")
    if remote is None:
        return None
    if trusted_proxies and _trusted(remote, trusted_proxies):
        hops = [
            part
            for header in request.headers.getall("X-Forwarded-For", [])
            for part in header.split(",")
        ]
        for hop in reversed(hops):
            address = _address(hop)
            if address is None:
                break  # a garbled entry: nothing left of it can be trusted
            if not _trusted(address, trusted_proxies):
                return address
    return remote


def client_address(request: web.Request, trusted_proxies: tuple[Network, ...]) -> str:
    """The address of the client behind ``request`` (see the module's docstring; the peer's
    own text when it is no IP address, e.g. a Unix socket's); pass
    ``settings.server.proxy_networks``."""
    address = _client(request, trusted_proxies)
    return str(address) if address is not None else request.remote or "unknown"


def client_key(request: web.Request, trusted_proxies: tuple[Network, ...]) -> str:
    """The rate-limit key of the client behind ``request``: its client_address, an IPv6
    one as its /64."""
    address = _client(request, trusted_proxies)
    return key_of(address) if address is not None else request.remote or "unknown"
