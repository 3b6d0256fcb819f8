"""Client cryptography of format cv1: the only code that touches content keys.

Public API (everything else is private):

Errors
    IntegrityError            every verification failure (signature, AEAD, hash, chain,
                              authority); message "<what> failed verification", no oracle
    WeakKdfParameters         subclass of IntegrityError: KDF parameters below the floor
    InvalidRecoveryCode       ValueError: a mistyped recovery code

Passphrase and account keys (kdf)
    KdfParams(salt, ops, mem) / new_kdf_params() / check_kdf_params(ops, mem)
    derive_account_keys(passphrase, params) -> AccountKeys(auth_key, kek)
    generate_recovery_code() -> (code_text, secret); parse_recovery_code(text) -> secret
    recovery_keys(secret) -> RecoveryKeys(recovery_key, recovery_auth_key)

Identity (keys)
    Identity.generate(user_id, username, now=None); .public_record() -> signed identity record;
    .record() -> IdentityRecord; .sign(label, body) -> signed envelope; .user_id, .username
    wrap_identity(identity, key, purpose) / unwrap_identity(blob, key, user_id, purpose)
    PURPOSE_KEK, PURPOSE_RECOVERY

Local state (localstate)
    LocalStateKey.of(identity): .name(text) -> keyed file name; .seal(purpose, name, data) /
    .open(purpose, name, sealed) for what CASEVAULT_HOME keeps about work in progress

Case keys, grants, links, metadata, file keys (seal)
    new_case_key(); seal_grant(case_key=, case_id=, generation=, member=IdentityRecord,
    granter=Identity, now=None) -> signed grant
    open_grant(signed, identity=, state=MembershipState, identities=, generation=None) -> key
    make_key_link(new_key=, old_key=, case_id=, new_generation=) / open_key_link(link, ...)
    CaseMetadata(name, description); encrypt_case_metadata(meta, case_key=, case_id=,
    generation=) / decrypt_case_metadata(blob, ...)
    new_file_key(); wrap_file_key(file_key, case_key=, case_id=, file_id=, version=,
    generation=) / unwrap_file_key(wrapped, ...)
    FileMetadata(name, size, sha256, media_type, client_time, note);
    encrypt_file_metadata(meta, file_key=, case_id=, file_id=, version=) /
    decrypt_file_metadata(blob, ...)

File content (stream)
    encrypt_stream(src, dst, file_key, case_id=, file_id=, version=) -> StreamResult
    decrypt_to_path(src, dest, file_key, case_id=, file_id=, version=, plaintext_size=,
    expected_sha256=, expected_blob_sha256=None, overwrite=False) -> StreamResult
    decrypt_stream(...) (dst must be scratch: the end is authenticated last)
    StreamResult(plaintext_size, plaintext_sha256, blob_size, blob_sha256)
    padme_length(n), blob_size_for(plaintext_size)

Records (signing, hashing, replay) live in vault.protocol.records and
vault.protocol.membership; open_grant and verify_download_manifest map their RecordError
into IntegrityError.
    verify_download_manifest(signed, state=, identities=, case_id=, file_id=, version=)
"""

from __future__ import annotations

from client.crypto.errors import IntegrityError, InvalidRecoveryCode, WeakKdfParameters
from client.crypto.kdf import (
    AccountKeys,
    KdfParams,
    RecoveryKeys,
    check_kdf_params,
    derive_account_keys,
    generate_recovery_code,
    new_kdf_params,
    parse_recovery_code,
    recovery_keys,
)
from client.crypto.keys import (
    PURPOSE_KEK,
    PURPOSE_RECOVERY,
    Identity,
    unwrap_identity,
    wrap_identity,
)
from client.crypto.localstate import LocalStateKey
from client.crypto.seal import (
    CaseMetadata,
    FileMetadata,
    decrypt_case_metadata,
    decrypt_file_metadata,
    encrypt_case_metadata,
    encrypt_file_metadata,
    make_key_link,
    new_case_key,
    new_file_key,
    open_grant,
    open_key_link,
    seal_grant,
    unwrap_file_key,
    verify_download_manifest,
    wrap_file_key,
)
from client.crypto.stream import (
    StreamResult,
    blob_size_for,
    decrypt_stream,
    decrypt_to_path,
    encrypt_stream,
    padme_length,
)

__all__ = [
    "PURPOSE_KEK",
    "PURPOSE_RECOVERY",
    "AccountKeys",
    "CaseMetadata",
    "FileMetadata",
    "Identity",
    "IntegrityError",
    "InvalidRecoveryCode",
    "KdfParams",
    "LocalStateKey",
    "RecoveryKeys",
    "StreamResult",
    "WeakKdfParameters",
    "blob_size_for",
    "check_kdf_params",
    "decrypt_case_metadata",
    "decrypt_file_metadata",
    "decrypt_stream",
    "decrypt_to_path",
    "derive_account_keys",
    "encrypt_case_metadata",
    "encrypt_file_metadata",
    "encrypt_stream",
    "generate_recovery_code",
    "make_key_link",
    "new_case_key",
    "new_file_key",
    "new_kdf_params",
    "open_grant",
    "open_key_link",
    "padme_length",
    "parse_recovery_code",
    "recovery_keys",
    "seal_grant",
    "unwrap_file_key",
    "unwrap_identity",
    "verify_download_manifest",
    "wrap_file_key",
    "wrap_identity",
]
