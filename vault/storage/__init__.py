"""Blob storage behind one small protocol (filesystem now, object stores later)."""

from vault.storage.base import (
    BlobEntry,
    BlobInfo,
    BlobNotFound,
    BlobStore,
    BlobStoreError,
    BlobWriter,
    InvalidBlobKey,
    InvalidRange,
)
from vault.storage.filesystem import FilesystemBlobStore
from vault.storage.memory import MemoryBlobStore

__all__ = [
    "BlobEntry",
    "BlobInfo",
    "BlobNotFound",
    "BlobStore",
    "BlobStoreError",
    "BlobWriter",
    "FilesystemBlobStore",
    "InvalidBlobKey",
    "InvalidRange",
    "MemoryBlobStore",
]
