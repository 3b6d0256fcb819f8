"""The import rules of the design: the protocol is pure, the server never imports the client,
and only client.crypto touches content-key primitives."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
        elif isinstance(node, ast.ImportFrom) and node.level > 0:
            base = ".".join(path.relative_to(ROOT).with_suffix("").parts[: -node.level])
            names.add(f"{base}.{node.module}" if node.module else base)
    return names


def _py_files(package: str) -> list[Path]:
    files = sorted((ROOT / package).rglob("*.py"))
    assert files, f"no Python files under {package}"
    return files


def test_protocol_imports_nothing_else_from_the_project():
    for path in _py_files("vault/protocol"):
        for name in _imports(path):
            top = name.split(".")[0]
            assert top != "client", f"{path} imports {name}"
            if top == "vault":
                assert name.startswith("vault.protocol"), f"{path} imports {name}"
            assert top not in {"fastapi", "sqlalchemy", "starlette"}, f"{path} imports {name}"


def test_server_never_imports_the_client():
    for path in _py_files("vault"):
        for name in _imports(path):
            assert name.split(".")[0] != "client", f"{path} imports {name}"


# Symmetric-content primitives: only client/crypto may use them.
_CONTENT_KEY_MODULES = (
    "cryptography.cobblestone",
    "cryptography.hazmat.primitives.hpke",
    "nacl.secret",
    "nacl.bindings",
    "nacl.pwhash",
)


def test_only_client_crypto_touches_content_keys():
    for package in ("client", "vault"):
        for path in _py_files(package):
            if path.is_relative_to(ROOT / "client" / "crypto"):
                continue
            for name in _imports(path):
                assert not name.startswith(_CONTENT_KEY_MODULES), f"{path} imports {name}"
