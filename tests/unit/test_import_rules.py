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


# ---------------------------------------------------------------- the client's layers

# Each client module's layer; a module may import its own layer and those below, never above.
# The faces (the CLI, the Vault facade) drive the operations; the operations receive a Session;
# the Session is built over the API, the keystore, the log verifier, the pin store and crypto.
_BASE = 0
_SESSION = 1
_OPERATIONS = 2
_FACADE = 3
_CLI = 4
_CLIENT_LAYERS = {
    "client.errors": _BASE,
    "client.api": _BASE,
    "client.transport": _BASE,
    "client.transfers": _BASE,
    "client.keystore": _BASE,
    "client.auditlog": _BASE,
    "client.logrows": _BASE,
    "client.trust": _BASE,
    "client.crypto": _BASE,
    "client.session": _SESSION,
    "client.accounts": _OPERATIONS,
    "client.cases": _OPERATIONS,
    "client.case_audit": _OPERATIONS,
    "client.holds": _OPERATIONS,
    "client.custody": _OPERATIONS,
    "client.legal": _OPERATIONS,
    "client.colleagues": _OPERATIONS,
    "client.revocation": _OPERATIONS,
    "client.files": _OPERATIONS,
    "client.vault": _FACADE,
    "client.cli": _CLI,
}


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _layer(module: str) -> int | None:
    for prefix, layer in _CLIENT_LAYERS.items():
        if module == prefix or module.startswith(prefix + "."):
            return layer
    return None


def _client_imports(path: Path) -> set[str]:
    """Client modules `path` imports, at any depth of the file (inside functions and under
    `if TYPE_CHECKING:` too), with `from client import x` read as client.x."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names if a.name.split(".")[0] == "client")
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = ".".join(_module_name(path).split(".")[: -node.level or None])
                if path.name == "__init__.py":
                    base = ".".join(_module_name(path).split(".")[: 1 - node.level or None])
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            if module.split(".")[0] != "client":
                continue
            names.add(module)
            # `from client import crypto` / `from client.files import paging` name modules.
            for alias in node.names:
                candidate = f"{module}.{alias.name}"
                if _module_path(candidate) is not None:
                    names.add(candidate)
    return names


def _module_path(module: str) -> Path | None:
    base = ROOT.joinpath(*module.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def _client_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in _py_files("client"):
        graph[_module_name(path)] = {
            name for name in _client_imports(path) if _module_path(name) is not None
        }
    return graph


def test_every_client_module_has_a_layer():
    for module in _client_graph():
        if module == "client":
            continue
        assert _layer(module) is not None, f"{module} has no layer in _CLIENT_LAYERS"


def test_client_layers_point_one_way():
    """cli -> facade -> operations -> session -> (api, keystore, log, pins, crypto)."""
    for module, imported in _client_graph().items():
        own = _layer(module)
        if own is None:
            continue
        for name in imported:
            theirs = _layer(name)
            if theirs is None:
                continue
            assert theirs <= own, f"{module} (layer {own}) imports {name} (layer {theirs})"


def test_operations_never_import_a_face():
    for module, imported in _client_graph().items():
        if _layer(module) != _OPERATIONS:
            continue
        for name in imported:
            assert not name.startswith(("client.cli", "client.vault")), f"{module} imports {name}"


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of `graph` as a list of modules, or None."""
    state: dict[str, int] = {}  # 1 on the current path, 2 done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            # A package's __init__ importing its own submodule is how packages re-export;
            # the submodule importing the package back would still be caught below.
            if nxt.startswith(node + "."):
                continue
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_no_import_cycles_in_the_client_counting_type_checking_imports():
    cycle = _cycle(_client_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_cycle_check_sees_cycles_hidden_behind_type_checking(tmp_path):
    """The check itself: the cycle the client once had (vault <-> cases, the back edge under
    `if TYPE_CHECKING:`) is found."""
    graph = {"client.vault": {"client.cases"}, "client.cases": {"client.api"},
             "client.api": set()}
    assert _cycle(graph) is None
    src = tmp_path / "cases.py"
    src.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                   "    from client.vault import Vault\n", encoding="utf-8")
    tree = ast.parse(src.read_text(encoding="utf-8"))
    hidden = {n.module for n in ast.walk(tree)
              if isinstance(n, ast.ImportFrom) and n.module.startswith("client")}
    graph["client.cases"] |= hidden
    cycle = _cycle(graph)
    assert cycle is not None and set(cycle) == {"client.vault", "client.cases"}
