"""Folder paths inside a case: every refused class has a named example, and whatever is
accepted stays inside the directory it is written into (the uploader and the server both choose
these bytes; the client joins them under a local folder)."""

from __future__ import annotations

import os
import re
import unicodedata
from pathlib import Path, PurePosixPath, PureWindowsPath

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vault.protocol.paths import (
    MAX_DEPTH,
    MAX_PATH_BYTES,
    MAX_SEGMENT_BYTES,
    PathError,
    collision_key,
    is_inside,
    join_folder,
    normalize_case_path,
    split_path,
)

REFUSED = {
    "empty": ("", "not empty"),
    "absolute": ("/etc/passwd", "absolute"),
    "drive_letter": ("C:x", "drive"),
    "dotdot": ("Evidence/../../home/.ssh/id_ed25519", "'..'"),
    "dotdot_alone": ("..", "'..'"),
    "dot": ("./statement.pdf", "'.'"),
    "leading_slash_dot": ("a/./b", "'.'"),
    "trailing_slash": ("Evidence/", "empty segment"),
    "double_slash": ("Evidence//photo.jpg", "empty segment"),
    "backslash": ("Evidence\\..\\x", "backslash"),
    "nul": ("a\x00b", "control"),
    "newline": ("a\nb", "control"),
    "escape": ("a\x1b[31mb", "control"),
    "del": ("a\x7fb", "control"),
    "c1": ("a\x85b", "control"),
    "bidi_override": ("invoice_\u202egpj.exe", "U+202E"),
    "bidi_isolate": ("a\u2066b", "U+2066"),
    "zero_width": ("pass\u200bword.txt", "U+200B"),
    "line_separator": ("a\u2028b", "U+2028"),
    "reserved_con": ("CON", "reserved on Windows"),
    "reserved_nul_ext": ("Evidence/nul.txt", "reserved on Windows"),
    "reserved_com_lower": ("com1.log", "reserved on Windows"),
    "reserved_lpt9": ("a/LPT9", "reserved on Windows"),
    "reserved_aux_tar": ("aux.tar.gz", "reserved on Windows"),
    "reserved_superscript": ("COM\u00b9", "reserved on Windows"),
    "reserved_space_before_ext": ("nul .txt", "reserved on Windows"),
    "reserved_conin": ("CONIN$", "reserved on Windows"),
    "trailing_dot": ("notes.", "dot or a space"),
    "trailing_space": ("Evidence /a", "dot or a space"),
    "windows_colon": ("Evidence/ab:c", "Windows"),
    "windows_star": ("a*.pdf", "Windows"),
    "segment_too_long": ("x" * (MAX_SEGMENT_BYTES + 1), "at most 255 bytes"),
    "segment_too_long_utf8": ("é" * 128, "at most 255 bytes"),
    "path_too_long": ("/".join(["a" * 200] * 21), f"at most {MAX_PATH_BYTES} bytes"),
    "too_deep": ("/".join(["a"] * (MAX_DEPTH + 1)), f"at most {MAX_DEPTH} segments"),
}


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_refused_class_has_a_named_example(name):
    text, rule = REFUSED[name]
    with pytest.raises(PathError, match=re.escape(rule)):
        normalize_case_path(text)


def test_non_text_is_refused():
    with pytest.raises(PathError):
        normalize_case_path(b"a")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "text",
    [
        "statement.pdf",
        "Evidence/photos/IMG_0001.jpg",
        "Pleadings/2026-11-30 motion (draft 2).docx",
        "Correspondence/Schöffengericht/Brief an Mandantin.pdf",
        "الأدلة/صورة.jpg",
        "证据/照片.png",
        ".hidden",
        "CONSOLE.txt",
        "x" * MAX_SEGMENT_BYTES,
        "/".join(["a"] * MAX_DEPTH),
    ],
)
def test_ordinary_paths_are_accepted_unchanged(text):
    assert normalize_case_path(text) == text


def test_nfc_normalisation_makes_one_name_of_two_spellings():
    decomposed = "Cafe\u0301/menu.pdf"
    composed = "Caf\u00e9/menu.pdf"
    assert normalize_case_path(decomposed) == composed == normalize_case_path(composed)


def test_segment_bound_is_measured_after_nfc():
    # 127 decomposed e + U+0301 are 381 bytes before NFC and 254 after: it fits.
    assert normalize_case_path("e\u0301" * 127) == "\u00e9" * 127


def test_split_and_join():
    assert split_path("Evidence/photos/a.jpg") == ("Evidence/photos", "a.jpg")
    assert split_path("a.jpg") == ("", "a.jpg")
    assert join_folder("", "a.jpg") == "a.jpg"
    assert join_folder("Evidence/photos", "a.jpg") == "Evidence/photos/a.jpg"
    with pytest.raises(PathError, match="one segment"):
        join_folder("Evidence", "photos/a.jpg")
    with pytest.raises(PathError, match="'..'"):
        join_folder("Evidence", "..")
    with pytest.raises(PathError, match="absolute"):
        join_folder("/Evidence", "a.jpg")


def test_collision_key_finds_names_one_case_insensitive_disk_merges():
    assert collision_key("Evidence/Photo.JPG") == collision_key("evidence/photo.jpg")
    assert collision_key("Straße.pdf") == collision_key("STRASSE.pdf")
    assert collision_key("Cafe\u0301.txt") == collision_key("CAFÉ.txt")
    assert collision_key("a/b.pdf") != collision_key("a/c.pdf")


def test_is_inside_matches_whole_segments():
    assert is_inside("", "a.jpg")
    assert is_inside("Evidence", "Evidence/a.jpg")
    assert is_inside("Evidence", "Evidence/photos/a.jpg")
    assert not is_inside("Evidence", "Evidence2/a.jpg")  # a prefix, not a folder
    assert not is_inside("Evidence", "Evidence")  # the file named like the folder
    assert not is_inside("Evidence/photos", "Evidence/a.jpg")
    with pytest.raises(PathError):
        is_inside("../", "a")


_ALPHABET = st.sampled_from(
    list("ab./\\: ") + ["..", "CON", "nul", "\u0301", "é", "\u202e", "\x00", "\n", "日", "~"]
)
_PATHS = st.one_of(
    st.lists(_ALPHABET, max_size=30).map("".join),
    st.text(max_size=60),
)


def _accepted(text: str) -> str | None:
    try:
        return normalize_case_path(text)
    except PathError:
        return None


@settings(max_examples=3000, deadline=None)
@given(_PATHS)
def test_accepted_paths_stay_inside_the_target_on_posix_and_windows(text):
    path = _accepted(text)
    if path is None:
        return
    assert normalize_case_path(path) == path  # idempotent
    assert unicodedata.is_normalized("NFC", path)
    base = Path(os.sep, "srv", "out")
    joined = Path(os.path.normpath(base / path))
    assert joined.is_relative_to(base) and joined != base
    win = PureWindowsPath("C:\\out") / path
    assert win.drive == "C:" and win.parts[:2] == ("C:\\", "out") and ".." not in win.parts
    posix = PurePosixPath("/out") / path
    assert ".." not in posix.parts and posix.parts[:2] == ("/", "out")
    folder, name = split_path(path)
    assert join_folder(folder, name) == path and is_inside(folder, path)


@settings(max_examples=500, deadline=None)
@given(st.lists(st.sampled_from(["Evidence", "photos", "é", "a b", ".x"]), min_size=1, max_size=6))
def test_generated_trees_round_trip(segments):
    path = normalize_case_path("/".join(segments))
    assert split_path(path) == ("/".join(segments[:-1]), segments[-1])
