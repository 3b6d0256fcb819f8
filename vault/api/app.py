"""The application factory: everything the app needs comes from `settings`."""

from __future__ import annotations

import importlib
import pkgutil
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from vault.api import problems, routes
from vault.api.deps import Clock
from vault.auth.credentials import AuthEnv
from vault.auth.keys import ServerKeys
from vault.auth.passwords import SecretHasher
from vault.config import Settings
from vault.db.base import utcnow
from vault.db.engine import make_engine, make_sessionmaker
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
    app.state.auth_env = AuthEnv(
        settings=settings,
        keys=app.state.server_keys,
        hasher=app.state.hasher,
        sessionmaker=app.state.sessionmaker,
    )

    problems.install(app)
    app.add_middleware(RequestIdMiddleware)
    for router in _routers():
        app.include_router(router)
    return app
