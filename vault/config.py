"""Server settings: one object, read from CASEVAULT_* environment variables, passed explicitly.

Nothing here is created at import time; `Settings()` is built by the CLI or by tests and handed
to `create_app(settings)`.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from vault.protocol import kdf

MIB = 1024 * 1024

# The client KDF limits are wire names, defined once in vault.protocol.kdf.



class Settings(BaseSettings):
    """Every knob of the server. Env prefix CASEVAULT_ (e.g. CASEVAULT_DATABASE_URL)."""

    model_config = SettingsConfigDict(env_prefix="CASEVAULT_", extra="ignore")

    data_dir: Path = Path("casevault-data")
    # None means the embedded SQLite file data_dir/casevault.db.
    database_url: str | None = None
    # None means data_dir/server.key. Kept outside the database on purpose.
    server_key_file: Path | None = None

    invite_only: bool = False

    # Sessions (seconds).
    session_absolute_lifetime: int = Field(default=12 * 3600, gt=0)
    session_idle_timeout: int = Field(default=30 * 60, gt=0)
    recovery_token_lifetime: int = Field(default=10 * 60, gt=0)
    # Registrations never confirmed with a TOTP code may be taken over after this long.
    pending_account_lifetime: int = Field(default=3600, gt=0)

    # Rate limits: attempts per fixed window, per account name and per source address.
    rate_limit_window: int = Field(default=15 * 60, gt=0)
    rate_limit_account_attempts: int = Field(default=10, gt=0)
    rate_limit_address_attempts: int = Field(default=100, gt=0)
    rate_limit_register_attempts: int = Field(default=20, gt=0)
    # Seconds of one aggregation window (T30): refused attempts and listings are logged as the
    # first of each window plus one leaf with the window's count, not one leaf per request.
    event_aggregation_window: int = Field(default=15 * 60, gt=0, le=24 * 3600)

    # Blobs (None means data_dir/blobs) and transfer limits (bytes); quota is per uploader.
    blob_dir: Path | None = None
    max_part_size: int = Field(default=16 * MIB, gt=0)
    max_file_size: int = Field(default=8 * 1024 * MIB, gt=0)
    user_quota: int = Field(default=100 * 1024 * MIB, gt=0)
    # Garbage collection (seconds): abandoned upload sessions, unreferenced blobs.
    upload_session_max_age: int = Field(default=24 * 3600, gt=0)
    orphan_blob_min_age: int = Field(default=3600, gt=0)

    # Reverse proxies whose X-Forwarded-For is believed: addresses or networks, a comma list in
    # CASEVAULT_TRUSTED_PROXIES (or `serve --trusted-proxy`). Empty: forwarded headers are
    # ignored, so the source address (rate limits, audit) is always the TCP peer (T28).
    trusted_proxies: Annotated[list[str], NoDecode] = []

    # Transport bounds of `serve` (T29). Header bytes count the request line and every header.
    max_header_bytes: int = Field(default=64 * 1024, ge=1024)
    max_header_count: int = Field(default=100, ge=8)
    # Seconds: to receive a request's complete headers, and between two pieces of its body.
    header_timeout: float = Field(default=10.0, gt=0)
    body_timeout: float = Field(default=30.0, gt=0)
    # Open connections at once; the next one is answered 503 and closed.
    max_connections: int = Field(default=512, gt=0)

    # TEST ONLY (env CASEVAULT_TEST_INSECURE_KDF=1): accept client KDF parameters down to
    # ops=1, mem=8 MiB and hash auth keys with cheap argon2 settings. Never enable in production.
    test_insecure_kdf: bool = False

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _proxy_networks(cls, value: object) -> list[str]:
        # Each entry is an address or a network; never "*", never a host name (a name would be
        # compared as a string and trusting everyone would hand the source address to clients).
        entries = [value] if isinstance(value, str) else list(value or [])
        networks = []
        for item in (part.strip() for entry in entries for part in str(entry).split(",")):
            if not item:
                continue
            try:
                networks.append(str(ipaddress.ip_network(item, strict=True)))
            except ValueError:
                message = f"trusted proxy {item!r} is not an IP address or network"
                raise ValueError(message) from None
        return networks

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'casevault.db').resolve()}"

    def resolved_blob_dir(self) -> Path:
        return self.blob_dir or (self.data_dir / "blobs")

    def resolved_server_key_file(self) -> Path:
        return self.server_key_file or (self.data_dir / "server.key")

    def kdf_floor(self) -> tuple[int, int]:
        """(min ops, min mem bytes) for client KDF parameters the server will store."""
        if self.test_insecure_kdf:
            return kdf.TEST_FLOOR_OPS, kdf.TEST_FLOOR_MEM
        return kdf.FLOOR_OPS, kdf.FLOOR_MEM

    def kdf_default(self) -> tuple[int, int]:
        """Parameters shown for unknown names; they match what real accounts use."""
        if self.test_insecure_kdf:
            return kdf.TEST_FLOOR_OPS, kdf.TEST_FLOOR_MEM
        return kdf.DEFAULT_OPS, kdf.DEFAULT_MEM
