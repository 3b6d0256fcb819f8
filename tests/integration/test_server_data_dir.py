"""The server's data folder is private to the server's user, whatever umask it was started with."""

from __future__ import annotations

import os
import stat
import subprocess
import sys


def test_data_folder_database_and_keys_are_private(tmp_path):
    data = tmp_path / "data"
    # A permissive umask, as a careless service unit would give it.
    proc = subprocess.run(
        [sys.executable, "-c", "import os, sys; os.umask(0o022); from vault.cli import main; "
         "sys.exit(main(['invite', '--data-dir', sys.argv[1]]))", str(data)],
        capture_output=True, text=True, timeout=120,
        env={**os.environ, "CASEVAULT_TEST_INSECURE_KDF": "1"},
    )
    assert proc.returncode == 0, proc.stderr
    created = [data, *data.rglob("*")]
    assert any(p.name.endswith(".db") for p in created), created
    for path in created:
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode & 0o077 == 0, f"{path} is readable by others: {oct(mode)}"
