"""How `casevault-server serve` serves the app: the one uvicorn configuration.

The CLI and the transport tests both build it here, so the tests attack the configuration that
runs, not a copy of it.
- Forwarded headers (T28): uvicorn believes X-Forwarded-For from any loopback peer by default;
  here they are ignored unless the operator names the proxies (Settings.trusted_proxies), and
  then only the rightmost address no named proxy added is taken. Whatever the peer turns out
  to be, it reaches the app as a canonical IP address or not at all.
- Transport bounds (T29): header size and count, header and body timeouts and the connection
  cap, in vault.http_bounds, on httptools and uvloop.
"""

from __future__ import annotations

import uvicorn
from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from vault.addresses import UNKNOWN, source_address
from vault.config import Settings
from vault.http_bounds import BoundedHttpToolsProtocol, TransportLimits


class CanonicalPeerMiddleware:
    """Replace the ASGI client with its canonical IP address, or drop it if it is not one.

    Runs after the proxy middleware, so the access log, the rate limits and the audit log all
    see the same checked value and never a forwarded string.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        client = scope.get("client")
        if scope["type"] in ("http", "websocket") and client:
            host = source_address(client[0])
            scope["client"] = None if host == UNKNOWN else (host, client[1])
        await self.app(scope, receive, send)


def transport_limits(settings: Settings) -> TransportLimits:
    return TransportLimits(
        max_header_bytes=settings.max_header_bytes,
        max_header_count=settings.max_header_count,
        header_timeout=settings.header_timeout,
        body_timeout=settings.body_timeout,
        max_connections=settings.max_connections,
    )


def server_config(
    app: ASGIApp, settings: Settings, *, host: str, port: int, log_level: str = "info"
) -> uvicorn.Config:
    """The uvicorn configuration of `serve` for `app` on host:port."""
    served: ASGIApp = CanonicalPeerMiddleware(app)
    if settings.trusted_proxies:
        served = ProxyHeadersMiddleware(served, trusted_hosts=list(settings.trusted_proxies))
    return uvicorn.Config(
        served,
        host=host,
        port=port,
        http=BoundedHttpToolsProtocol.with_limits(transport_limits(settings)),
        loop="uvloop",
        # No WebSocket route exists; nothing should upgrade a connection.
        ws="none",
        # uvicorn's own proxy handling is off (its default trusts every loopback peer, and an
        # unset forwarded_allow_ips would read FORWARDED_ALLOW_IPS from the environment).
        proxy_headers=False,
        forwarded_allow_ips=[],
        # uvicorn answers 503 when connections or running requests reach this number and
        # counts the connection asking, so one more than the cap lets the cap's connections
        # through; it also bounds requests still running for clients that went away.
        limit_concurrency=settings.max_connections + 1,
        log_level=log_level,
        server_header=False,
    )
