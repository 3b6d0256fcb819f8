"""T15 fuzzing: every parser of the cv1 format fails with its one documented error, nothing else.

A parser that raises KeyError, TypeError or RecursionError on hostile input is a crash a hostile
server can trigger at will and, worse, a second error class an attacker could tell apart.
"""

from __future__ import annotations

import contextlib

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vault.protocol.encoding import EncodingError, b64d, b64e, canonical_json, parse_canonical

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

_json_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.text(max_size=20),
)
_json_value = st.recursive(
    _json_leaf,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
_records = st.dictionaries(st.text(max_size=8), _json_value, max_size=6)
# Characters JSON is made of, so random text often gets deep into the parser.
_JSON_ALPHABET = '{}[]:,0123456789-+.eE"\\ntrufalsu \t\u00e9'


@FUZZ
@given(st.binary(max_size=512))
def test_T15_parse_canonical_random_bytes(data):
    try:
        obj = parse_canonical(data)
    except EncodingError:
        return
    # Anything accepted is the one encoding of what it parsed to.
    assert canonical_json(obj) == data


@FUZZ
@given(_records)
def test_T15_parse_canonical_round_trip(record):
    assert parse_canonical(canonical_json(record)) == record


@FUZZ
@given(_records, st.data())
def test_T15_parse_canonical_mutated_records(record, data):
    encoded = bytearray(canonical_json(record))
    if not encoded:
        return
    position = data.draw(st.integers(min_value=0, max_value=len(encoded) - 1))
    encoded[position] = data.draw(st.integers(min_value=0, max_value=255))
    try:
        obj = parse_canonical(bytes(encoded))
    except EncodingError:
        return
    assert canonical_json(obj) == bytes(encoded)


@FUZZ
@given(st.text(alphabet=_JSON_ALPHABET, max_size=64))
def test_T15_parse_canonical_json_shaped_text(text):
    with contextlib.suppress(EncodingError):
        parse_canonical(text.encode("utf-8"))


@FUZZ
@given(st.integers(min_value=1, max_value=5000))
def test_T15_parse_canonical_deep_nesting(depth):
    for opener, closer in (("[", "]"), ('{"a":', "}")):
        text = '{"k":' + opener * depth + closer * depth + "}"
        with contextlib.suppress(EncodingError):
            parse_canonical(text.encode())


@FUZZ
@given(st.text(max_size=64))
def test_T15_b64d_random_text(text):
    try:
        data = b64d(text)
    except EncodingError:
        return
    assert b64e(data) == text


@FUZZ
@given(st.binary(max_size=256))
def test_T15_b64_round_trip(data):
    assert b64d(b64e(data)) == data
