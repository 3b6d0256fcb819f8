"""Court bundles (DESIGN.md section 8): `export` writes a BagIt bag of decrypted files with the
evidence that binds them to their signers and to the audit log; `verify-bundle` checks one
offline, with no server and no account."""
