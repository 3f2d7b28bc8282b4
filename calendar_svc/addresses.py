"""Which addresses calendar-svc may connect to on a config's say-so: public ones only.

A webhook URL, an ntfy server and a followed source come from config, yet each
is a server-side request forgery hole if it may point at loopback, the LAN or
a cloud metadata endpoint. Unless the operator sets ``allow_private = true``,
every address a host resolves to must be public, and IPv6 forms that carry an
IPv4 address inside them are judged by that IPv4 address: mapped
(``::ffff:0:0/96``), compatible (``::/96``), NAT64 (``64:ff9b::/96``), 6to4
(``2002::/16``) and Teredo (``2001::/32``, both its server and client). The
local-use NAT64 prefix ``64:ff9b:1::/48`` (RFC 8215) is never public: where its
IPv4 address sits depends on the network's own choice of prefix length.

``public_addresses`` returns the checked addresses so the caller connects to
exactly those (not to a second lookup of the name: DNS rebinding). Plain
functions: the notifiers and the source fetcher each turn ``AddressError``
into their own error.
"""

from __future__ import annotations

import ipaddress
import socket

from calendar_svc.errors import NonPublicAddressError, UnresolvedHostError

Address = ipaddress.IPv4Address | ipaddress.IPv6Address

# Cloud metadata endpoints not already covered by "not a global address".
_METADATA = {ipaddress.ip_address("100.100.100.200"), ipaddress.ip_address("fd00:ec2::254")}
_COMPATIBLE = ipaddress.ip_network("::/96")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")


def embedded_ipv4(address: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address] | None:
    """The IPv4 addresses an IPv6 address carries (None when it carries none)."""
    if address.ipv4_mapped is not None:
        return [address.ipv4_mapped]
    if address in _COMPATIBLE or address in _NAT64:
        return [ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)]
    if address.sixtofour is not None:
        return [address.sixtofour]
    if address.teredo is not None:
        return list(address.teredo)
    return None


def is_public(address: Address) -> bool:
    """False for loopback, private, link-local, shared, reserved, multicast and metadata
    addresses, and for IPv6 addresses that embed any such IPv4 address."""
    if address in _METADATA or address.is_multicast:
        return False
    if isinstance(address, ipaddress.IPv6Address):
        if address in _NAT64_LOCAL:
            return False
        embedded = embedded_ipv4(address)
        if embedded is not None:
            if not all(is_public(inner) for inner in embedded):
                return False
            # Teredo is a tunnel to a host behind NAT, never a server's address.
            return address.teredo is None or address.is_global
    return address.is_global


def check_literal(host: str) -> None:
    """Refuse ``host`` when it is an address literal that is not public (a name passes:
    what it resolves to is checked on each connection, since that can change)."""
    try:
        address = ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        return
    if not is_public(address):
        raise NonPublicAddressError(
            f"{address} is not a public address; set allow_private = true if this is intended"
        )


def public_addresses(host: str, port: int, *, where: str) -> list[str]:
    """Every address ``host`` resolves to, in the resolver's order, each checked public.

    ``host`` is the ASCII (IDNA 2008) form that Host and TLS SNI carry: a Unicode
    name would be encoded by the resolver with IDNA 2003, which maps some names
    elsewhere (faß -> fass). ``where`` (the URL's origin) starts every message.
    Raises ``UnresolvedHostError`` or ``NonPublicAddressError``.
    """
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise UnresolvedHostError(f"{where}: cannot resolve host: {exc}") from None
    addresses: list[str] = []
    for info in infos:
        text = str(info[4][0]).split("%", 1)[0]
        address = ipaddress.ip_address(text)
        if not is_public(address):
            raise NonPublicAddressError(
                f"{where} resolves to the non-public address {address}; "
                "set allow_private = true if this is intended"
            )
        if text not in addresses:
            addresses.append(text)
    return addresses
