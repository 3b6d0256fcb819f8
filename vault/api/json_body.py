"""Every JSON request body is parsed strictly, once, before the framework sees it.

The framework's own parse (`json.loads`) accepts lone surrogates, duplicate keys, NaN and
integers of any length, and reports some failures as a 500 or as an unlabelled 400. Here the
body goes through `vault.protocol.encoding.parse_json`, the parser the client uses for records,
and any failure is the one `invalid_encoding` problem; what passes is handed on unchanged.
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from vault import errors
from vault.api import problems
from vault.protocol.encoding import EncodingError, parse_json

# Methods whose requests carry no body the application reads.
_BODILESS = frozenset({"GET", "HEAD", "OPTIONS", "DELETE"})


class StrictJsonMiddleware:
    """Refuse a request body that is not strict JSON with 400 `invalid_encoding`.

    Bodies are bounded before this runs (BodyLimitMiddleware, outside it), and upload parts,
    which are raw bytes, are passed by `skip(path)`.
    """

    def __init__(self, app: ASGIApp, skip: Callable[[str], object]) -> None:
        self.app = app
        self.skip = skip

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope.get("method") in _BODILESS
            or self.skip(scope.get("path", ""))
        ):
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        while True:
            message = await receive()
            if message["type"] != "http.request":
                # The client left before its body was complete: nothing to answer.
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        if body:
            try:
                parse_json(body)
            except EncodingError as exc:
                await problems.problem(
                    400, errors.InvalidEncoding.code, errors.InvalidEncoding.title,
                    f"the body is not strict JSON: {exc}",
                )(scope, receive, send)
                return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)
