"""Event actions are written once, in vault/protocol/events.py: a grep for an action then finds
its definition, and every use goes through the name. A string shaped like an action anywhere
else in the code (also inside an f-string) fails here."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
# The packages whose code must use the names. Adding "client" here extends the rule to it.
SCANNED = ("vault", "client")
DEFINITION = ROOT / "vault" / "protocol" / "events.py"
ACTION_SHAPE = re.compile(r"^(account|case|file|audit):[a-z_]+:[a-z_]+$")


def _string_constants(tree: ast.AST) -> list[tuple[int, str]]:
    """Every string constant with its line, f-string literal parts included."""
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
    ]


def literal_actions(source: str, name: str) -> list[str]:
    tree = ast.parse(source, filename=name)
    found = [f"{name}:{line}: {text!r}"
             for line, text in _string_constants(tree) if ACTION_SHAPE.match(text)]
    # An f-string that builds an action from parts ("case:member:{x}") has no whole literal
    # of the action shape; its literal parts joined around the holes give it away.
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            shape = "".join(
                part.value if isinstance(part, ast.Constant) else "x" for part in node.values
            )
            if ACTION_SHAPE.match(shape):
                found.append(f"{name}:{node.lineno}: f-string {shape!r}")
    return found


def test_no_event_action_is_written_outside_the_protocol_module():
    offenders = []
    for package in SCANNED:
        files = sorted((ROOT / package).rglob("*.py"))
        assert files, f"no Python files under {package}"
        for path in files:
            if path != DEFINITION:
                source = path.read_text(encoding="utf-8")
                offenders.extend(literal_actions(source, str(path.relative_to(ROOT))))
    assert not offenders, "use vault.protocol.events names:\n" + "\n".join(offenders)


def test_the_scan_sees_literals_and_fstring_built_actions():
    # The rule is only worth something if it catches both ways of writing an action (the two
    # the server used before the names existed), and not a prefix or a plain word.
    sample = (
        'record(action="file:version:uploaded")\n'
        'action = f"case:member:{kind}"\n'
        'prefix = "account:login"\n'
        'text = "file:version"\n'
    )
    assert literal_actions(sample, "sample.py") == [
        "sample.py:1: 'file:version:uploaded'",
        "sample.py:2: f-string 'case:member:x'",
    ]
