"""Source addresses as the server records them: a canonical IP address, or "unknown".

The source address keys the per-address rate limits and is written into audit events. Behind a
trusted proxy it comes from an X-Forwarded-For header, text the proxy was handed by its client,
so it is parsed, never copied (THREAT_MODEL T28).
"""

from __future__ import annotations

import ipaddress

UNKNOWN = "unknown"


def source_address(host: str | None) -> str:
    """`host` as a canonical IP address string, or UNKNOWN if it is not one."""
    if not host:
        return UNKNOWN
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return UNKNOWN
    if isinstance(address, ipaddress.IPv6Address):
        # One client, one key: ::ffff:192.0.2.1 is the IPv4 client 192.0.2.1 on a dual-stack
        # socket. A scope id ("fe80::1%eth0") is free text after the "%", so it is dropped.
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        address = ipaddress.IPv6Address(address.packed)
    return str(address)
