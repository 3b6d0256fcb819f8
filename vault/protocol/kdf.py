"""Argon2id parameter limits of the client's master key derivation, shared by the server that
stores them and the client that refuses what lies outside them."""

from __future__ import annotations

MIB = 1024 * 1024

# libsodium's INTERACTIVE: the floor in production. A server that offers less is attempting a
# downgrade and the client refuses (THREAT_MODEL T4).
FLOOR_OPS = 2
FLOOR_MEM = 64 * MIB
# libsodium's MODERATE: what a new account uses, and what a fake pre-login answer imitates.
DEFAULT_OPS = 3
DEFAULT_MEM = 256 * MIB
# Ceilings keep a hostile server from making a client burn minutes or gigabytes, and keep the
# server from storing values no client would accept.
MAX_OPS = 16
MAX_MEM = 2048 * MIB
# Only under the client's test switch and the server's test setting: a cheap KDF for the suite.
TEST_FLOOR_OPS = 1
TEST_FLOOR_MEM = 8 * MIB
