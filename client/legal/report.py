"""The printable custody report of a court bundle: one self-contained HTML file (no scripts, no
external assets), ending with a certification page modelled on US FRE 902(14) practice, where
a qualified person certifies that the files were identified by their hash values.

The report is a reading aid derived from the bundle's signed records; `verify-bundle` checks
the records themselves. Every value from a record is escaped: a file name is the uploader's
text.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from html import escape
from pathlib import Path
from typing import Any

from client.errors import AuditVerificationError
from client.logrows import RowRejected, read_row
from vault.protocol.checkpoint import Checkpoint
from vault.protocol.membership import MembershipState
from vault.protocol.records import IdentityRecord, parse_manifest

_STYLE = """
body { font-family: Georgia, serif; margin: 2em; color: #000; }
h1, h2, h3 { font-family: Helvetica, Arial, sans-serif; }
table { border-collapse: collapse; width: 100%; margin: 0.5em 0 1.5em; }
th, td { border: 1px solid #555; padding: 4px 6px; text-align: left; vertical-align: top; }
code { font-family: "Courier New", monospace; font-size: 0.85em; word-break: break-all; }
.page { page-break-before: always; }
.blank { display: inline-block; min-width: 22em; border-bottom: 1px solid #000; }
"""


def _iso(ts: Any) -> str:
    if not isinstance(ts, int):
        return ""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _sha512(path: Path) -> str:
    digest = hashlib.sha512()
    with path.open("rb") as fh:
        while chunk := fh.read(1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


def _row(*cells: str, head: bool = False) -> str:
    tag = "th" if head else "td"
    return "<tr>" + "".join(f"<{tag}>{c}</{tag}>" for c in cells) + "</tr>"


def _events(f: dict[str, Any], identities: dict[str, IdentityRecord]) -> list[str]:
    rows = [_row("Log index", "Server time", "Actor", "Event", head=True)]
    for item in f["audit"]:
        try:
            _, record = read_row(item, item["index"])
        except (RowRejected, AuditVerificationError):
            continue
        actor = identities.get(record.get("actor_id") or "")
        detail = record.get("detail") if isinstance(record.get("detail"), dict) else {}
        what = str(record.get("action"))
        if "version" in detail:
            what += f" (version {detail['version']})"
        rows.append(_row(str(item["index"]), escape(_iso(record.get("time"))),
                         escape(actor.username if actor else str(record.get("actor_id"))),
                         escape(what)))
    return rows


def _file_section(f: dict[str, Any], root: Path, identities: dict[str, IdentityRecord],
                  meta: dict[str, Any]) -> str:
    manifest = parse_manifest(f["manifest"])
    uploader = identities.get(manifest.uploader)
    who = (f"{escape(uploader.username)}<br>safety number <code>"
           f"{escape(uploader.safety_number)}</code>") if uploader else escape(manifest.uploader)
    intake = meta.get("intake")
    rows = [
        _row("Bundle path", f"<code>data/{escape(f['path'])}</code>"),
        _row("File id, version", f"<code>{escape(f['file_id'])}</code>, version {f['version']}"),
        _row("Size (bytes)", str(meta["size"])),
        _row("SHA-256", f"<code>{escape(meta['sha256'])}</code>"),
        _row("SHA-512", f"<code>{_sha512(root / 'data' / f['path'])}</code>"),
        _row("Uploaded by (signed the manifest)", who),
        _row("Upload time (uploader's clock, signed)", escape(_iso(manifest.time))),
    ]
    if intake:
        rows += [
            _row("Intake: original name", escape(str(intake.get("original_name")))),
            _row("Intake: taken in at (uploader's claim)", escape(_iso(intake.get("taken_in_at")))),
            _row("Intake: source", escape(str(intake.get("source")))),
            _row("Intake: note", escape(str(intake.get("note")))),
        ]
    return (f"<h3>{escape(f['path'])}</h3><table>{''.join(rows)}</table>"
            f"<p>Audit log events of this file, each proven included in the signed "
            f"checkpoint:</p><table>{''.join(_events(f, identities))}</table>")


def custody_report(*, bundle: dict[str, Any], root: Path, identities: dict[str, IdentityRecord],
                   checkpoint: Checkpoint, vkey: str, case_state: MembershipState,
                   metadata: dict[str, dict[str, Any]]) -> str:
    """The HTML text; `metadata` maps each exported file id to its opened metadata body."""
    files = bundle["files"]
    exporter = bundle["exported_by"]
    members = [_row("Member", "Role", "Safety number", head=True)]
    for user_id, member in sorted(case_state.members.items()):
        record = identities.get(user_id)
        members.append(_row(escape(record.username if record else user_id),
                            escape(member.role),
                            f"<code>{escape(record.safety_number)}</code>" if record else ""))
    listing = [_row("Path in the bundle", "SHA-256", head=True)]
    listing += [_row(f"<code>data/{escape(f['path'])}</code>",
                     f"<code>{escape(metadata[f['file_id']]['sha256'])}</code>") for f in files]
    hold = case_state.hold
    sections = "".join(_file_section(f, root, identities, metadata[f["file_id"]])
                       for f in files)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>Custody report, case {escape(bundle['case_id'])}</title>
<style>{_STYLE}</style></head><body>
<h1>Chain of custody report</h1>
<p>Case <code>{escape(bundle['case_id'])}</code>. Exported by {escape(exporter['username'])}
on {escape(_iso(bundle['exported_at']))} from CaseVault, an end-to-end encrypted case file
store. This report is derived from the signed records in the <code>casevault/</code> folder
of this bundle; <code>casevault verify-bundle</code> (or the steps in the project README)
checks those records offline.</p>
<h2>Files in this bundle</h2><table>{''.join(listing)}</table>
<h2>Case members (signed membership log, {len(case_state.entries)} entries)</h2>
<table>{''.join(members)}</table>
<p>Legal hold: {escape(f"standing since {_iso(hold.time)}: {hold.reason}") if hold else "none"}.</p>
<h2>Audit log</h2>
<p>Every event below is proven included in the log checkpoint of size {checkpoint.size}
(origin <code>{escape(checkpoint.origin)}</code>), signed by the log key
<code>{escape(vkey)}</code>. Compare that key with the one a lawyer's client pinned.</p>
<h2>File details</h2>{sections}
<div class="page">
<h2>Certification of hash identification</h2>
<p>(Modelled on Federal Rule of Evidence 902(14): data copied from an electronic device,
storage medium or file, authenticated by a process of digital identification.)</p>
<p>I, the undersigned, certify that I am qualified by knowledge, skill, experience, training
or education to perform the process described here; that I computed the SHA-256 hash value of
each file listed under "Files in this bundle" and found it equal to the value shown; that each
value equals the SHA-256 that the uploader's Ed25519-signed manifest binds (through the
encrypted metadata record whose hash it signs); and that I verified the signatures, the
uploader's rights in the signed membership log and the audit log inclusion proofs by the steps
published with this software.</p>
<p>Name: <span class="blank">&nbsp;</span></p>
<p>Qualification: <span class="blank">&nbsp;</span></p>
<p>Signature: <span class="blank">&nbsp;</span></p>
<p>Date: <span class="blank">&nbsp;</span></p>
</div>
</body></html>
"""
