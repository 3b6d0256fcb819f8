"""CaseVault server: stores ciphertext and signed records, never plaintext or content keys."""
