"""CaseVault client: the only side that ever holds content keys."""
