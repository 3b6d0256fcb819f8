"""The intake record: strict shape, bounded clean text, and the checks that tie it to the upload
that carried it (a forged intake naming another person or a later time is refused)."""

from __future__ import annotations

import pytest

from vault.protocol.intake import (
    LABEL_INTAKE,
    MAX_CLOCK_AHEAD_SECONDS,
    MAX_NOTE_CHARS,
    MAX_ORIGINAL_NAME_CHARS,
    MAX_SOURCE_CHARS,
    IntakeError,
    IntakeRecord,
    check_intake_origin,
    clean_original_name,
    parse_intake,
)

ALICE = "a" * 32
MALLORY = "b" * 32


def good() -> dict:
    return {
        "v": LABEL_INTAKE,
        "sha256": "ab" * 32,
        "original_name": "IMG_0001.jpg",
        "original_mtime": 1_700_000_000,
        "taken_in_by": ALICE,
        "taken_in_at": 1_700_000_100,
        "source": "client's phone, handed over 2026-11-30",
        "note": "photographs of the scene",
        "client_version": "casevault 0.2.0",
    }


def test_round_trip():
    rec = parse_intake(good())
    assert rec.to_json() == good()
    assert IntakeRecord(**{k: v for k, v in good().items() if k != "v"}) == rec


def test_unknown_mtime_and_empty_source_and_note_are_allowed():
    rec = parse_intake({**good(), "original_mtime": None, "source": "", "note": ""})
    assert rec.original_mtime is None and rec.source == rec.note == ""


BAD = {
    "extra_key": ({"extra": 1}, "exactly its fields"),
    "other_version": ({"v": "cv2/intake"}, "v is"),
    "sha256_upper": ({"sha256": "AB" * 32}, "sha256"),
    "sha256_short": ({"sha256": "ab" * 31}, "sha256"),
    "name_empty": ({"original_name": ""}, "original_name"),
    "name_newline": ({"original_name": "a\nb"}, "original_name"),
    "name_bidi": ({"original_name": "invoice\u202efdp.exe"}, "original_name"),
    "name_not_nfc": ({"original_name": "Cafe\u0301"}, "original_name"),
    "name_too_long": ({"original_name": "x" * (MAX_ORIGINAL_NAME_CHARS + 1)}, "original_name"),
    "mtime_float": ({"original_mtime": 1.5}, "original_mtime"),
    "mtime_negative": ({"original_mtime": -1}, "original_mtime"),
    "mtime_bool": ({"original_mtime": True}, "original_mtime"),
    "user_not_id": ({"taken_in_by": "alice"}, "taken_in_by"),
    "time_string": ({"taken_in_at": "2026-11-30"}, "taken_in_at"),
    "time_null": ({"taken_in_at": None}, "taken_in_at"),
    "source_escape": ({"source": "\x1b[2Jcourt"}, "source"),
    "source_too_long": ({"source": "s" * (MAX_SOURCE_CHARS + 1)}, "source"),
    "note_line_separator": ({"note": "a\u2028Certified by the court"}, "note"),
    "note_too_long": ({"note": "n" * (MAX_NOTE_CHARS + 1)}, "note"),
    "note_not_text": ({"note": ["a"]}, "note"),
    "client_version_empty": ({"client_version": ""}, "client_version"),
    "client_version_unicode": ({"client_version": "casevault\u00a00.2"}, "client_version"),
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_malformed_records_are_refused(name):
    change, rule = BAD[name]
    with pytest.raises(IntakeError, match=rule):
        parse_intake({**good(), **change})


def test_missing_key_and_non_object_are_refused():
    body = good()
    del body["note"]
    with pytest.raises(IntakeError, match="exactly its fields"):
        parse_intake(body)
    with pytest.raises(IntakeError):
        parse_intake([good()])


def test_constructor_refuses_what_the_parser_refuses():
    with pytest.raises(IntakeError, match="note"):
        IntakeRecord("ab" * 32, "a.pdf", None, ALICE, 1, note="\x07")


def test_clean_original_name_keeps_a_trace_of_refused_characters():
    assert clean_original_name("scan\n01.pdf") == "scan\ufffd01.pdf"
    assert clean_original_name("a\udcff.jpg") == "a\ufffd.jpg"  # undecodable byte on Linux
    assert clean_original_name("\u202e") == "\ufffd"
    assert clean_original_name("") == "\ufffd"
    long = clean_original_name("x" * 1000)
    assert len(long) == MAX_ORIGINAL_NAME_CHARS
    parse_intake({**good(), "original_name": clean_original_name("Cafe\u0301\x00.txt")})


def test_origin_check_accepts_the_uploader_and_a_time_before_the_leaf():
    rec = parse_intake(good())
    check_intake_origin(rec, uploader=ALICE, logged_at=rec.taken_in_at + 5)
    # a client clock slightly ahead of the server's is tolerated
    check_intake_origin(rec, uploader=ALICE, logged_at=rec.taken_in_at - MAX_CLOCK_AHEAD_SECONDS)


def test_forged_intake_naming_another_person_is_refused():
    # Mallory uploads and writes an intake claiming that Alice took the file in.
    rec = parse_intake(good())
    with pytest.raises(IntakeError, match="someone other than the uploader"):
        check_intake_origin(rec, uploader=MALLORY, logged_at=rec.taken_in_at)


def test_intake_time_after_the_log_recorded_the_upload_is_refused():
    # A backdated upload is possible (the client clock is a claim); a post-dated one is not.
    rec = parse_intake(good())
    with pytest.raises(IntakeError, match="later than the audit log"):
        check_intake_origin(
            rec, uploader=ALICE, logged_at=rec.taken_in_at - MAX_CLOCK_AHEAD_SECONDS - 1
        )
