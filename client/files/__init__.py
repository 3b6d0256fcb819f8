"""Files of a case: upload (resumable, in parts), download (verified, resumable), the verified
listing with its paging checks and rollback memory, and deletion under a signed tombstone."""
