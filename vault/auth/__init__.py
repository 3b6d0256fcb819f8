"""Authentication building blocks: server keys, auth-key hashing, TOTP, tokens, rate limits."""
