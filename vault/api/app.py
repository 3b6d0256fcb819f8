"""The application factory: everything the app needs comes from `settings`."""

from __future__ import annotations

import importlib
import pkgutil
import re
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from vault.api import openapi, problems, routes
from vault.api.deps import Clock
from vault.api.json_body import StrictJsonMiddleware
from vault.auth.credentials import AuthEnv
from vault.auth.keys import ServerKeys
from vault.auth.passwords import SecretHasher
from vault.config import Settings
from vault.db.base import utcnow
from vault.db.engine import make_engine, make_sessionmaker
from vault.services.auditlog import LogSigner
from vault.storage import BlobStore, FilesystemBlobStore


class RequestIdMiddleware:
    """Give every request an id (scope state + X-Request-ID header) to match logs and 500s."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = secrets.token_hex(8)
        scope.setdefault("state", {})["request_id"] = rid

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", rid.encode())]
            await send(message)

        await self.app(scope, receive, send_with_id)


# Every JSON request body is far below this; without it a body is read whole into memory
# before validation, so anyone could make the server hold gigabytes (THREAT_MODEL T24).
MAX_JSON_BODY = 2 * 1024 * 1024
# Upload parts stream to the blob store and are bounded by their own declared size.
_STREAMED_BODY = re.compile(r"^/v1/cases/[^/]+/uploads/[^/]+/parts/[^/]+$")


class _BodyTooLarge(Exception):
    pass


class BodyLimitMiddleware:
    """Refuse request bodies over MAX_JSON_BODY with 413, by header and while streaming."""

    def __init__(self, app: ASGIApp, limit: int = MAX_JSON_BODY) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or _STREAMED_BODY.fullmatch(scope.get("path", "")):
            await self.app(scope, receive, send)
            return
        too_large = problems.problem(
            413, "payload_too_large", "The request body is too large",
            f"a request body is at most {self.limit} bytes",
        )
        declared = dict(scope.get("headers") or []).get(b"content-length", b"")
        # The length first: int() of thousands of digits raises instead of answering.
        if declared.isdigit() and (len(declared) > 18 or int(declared) > self.limit):
            await too_large(scope, receive, send)
            return
        received = 0
        exceeded = replaced = False

        async def counting_receive() -> Message:
            nonlocal received, exceeded
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    exceeded = True
                    raise _BodyTooLarge()
            return message

        async def limited_send(message: Message) -> None:
            nonlocal replaced
            # The framework turns a failed body read into its own 400; answer 413 instead.
            if exceeded:
                if not replaced:
                    replaced = True
                    await too_large(scope, receive, send)
                return
            await send(message)

        try:
            await self.app(scope, counting_receive, limited_send)
        except _BodyTooLarge:
            if not replaced:
                replaced = True
                await too_large(scope, receive, send)


def _routers() -> list[APIRouter]:
    """Every `router` defined by a module of vault.api.routes, in module-name order, so each
    feature adds its routes without editing this factory."""
    found = []
    for info in sorted(pkgutil.iter_modules(routes.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{routes.__name__}.{info.name}")
        router = getattr(module, "router", None)
        if isinstance(router, APIRouter):
            found.append(router)
    return found


def create_app(
    settings: Settings, *, clock: Clock | None = None, blob_store: BlobStore | None = None
) -> FastAPI:
    """Build the app. The database must already be migrated (`vault.db.migrate`)."""
    engine = make_engine(settings.resolved_database_url())

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        engine.dispose()

    app = FastAPI(title="CaseVault", version="1", lifespan=lifespan)
    app.state.settings = settings
    app.state.engine = engine
    app.state.sessionmaker = make_sessionmaker(engine)
    app.state.clock = clock or utcnow
    app.state.server_keys = ServerKeys.from_file(settings.resolved_server_key_file())
    app.state.hasher = SecretHasher(insecure_test_parameters=settings.test_insecure_kdf)
    app.state.blob_store = blob_store or FilesystemBlobStore(settings.resolved_blob_dir())
    # Loaded, or created (0600, race-safe) on the first start; an unusable key file stops the
    # server here rather than at its first checkpoint.
    app.state.log_signer = LogSigner.from_data_dir(settings.data_dir)
    app.state.auth_env = AuthEnv(
        settings=settings,
        keys=app.state.server_keys,
        hasher=app.state.hasher,
        sessionmaker=app.state.sessionmaker,
    )

    problems.install(app)
    openapi.install(app)
    # Innermost first: the strict parse reads a body only after its size was bounded.
    app.add_middleware(StrictJsonMiddleware, skip=_STREAMED_BODY.fullmatch)
    app.add_middleware(BodyLimitMiddleware)
    app.add_middleware(RequestIdMiddleware)
    for router in _routers():
        app.include_router(router)
    return app
