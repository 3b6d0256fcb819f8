"""T25: hostile values in the path, the query, a header or the JSON body of a request.

Each input below once gave a 500 (or crashed a parser on the client): an integer past what
SQLite or PostgreSQL store, thousands of digits (Python's int() refuses them with a bare
ValueError), a lone surrogate escape that decodes to text with no UTF-8 form, duplicate keys,
NaN, deep nesting, an id or name with a trailing newline. Every one must now be a 4xx
problem+json, sent through a real uvicorn to a server on the test database, and the server
must still answer normally afterwards.
"""

from __future__ import annotations

import base64
import json
import string

import httpx
import pytest
from attack_kit import bearer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vault.auth.credentials import USERNAME_RE
from vault.protocol.encoding import EncodingError, canonical_json, parse_canonical, parse_json
from vault.protocol.ids import is_valid_id, new_id
from vault.protocol.records import _hex64

HUGE = "9" * 5000  # past Python's 4300-digit int() limit
JSON = {"content-type": "application/json"}


def _problem_4xx(response: httpx.Response, code: str | None = None) -> dict:
    assert 400 <= response.status_code < 500, (response.status_code, response.text[:300])
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == response.status_code
    if code is not None:
        assert body["code"] == code, body
    return body


@pytest.fixture
def world(shared_world, live_server):
    alice, _bob, case_id, file_id, _other = shared_world
    with httpx.Client(base_url=live_server, timeout=30, headers=bearer(alice)) as http:
        yield http, case_id, file_id
        # Whatever came before, the server still serves the file.
        ok = http.get(f"/v1/cases/{case_id}/files/{file_id}/versions/1/blob")
        assert ok.status_code == 200


@pytest.mark.parametrize("version", [str(2**63), str(2**64), str(2**31), HUGE, "-1", "0"])
def test_T25_version_in_path_out_of_range(world, version):
    http, case_id, file_id = world
    response = http.get(f"/v1/cases/{case_id}/files/{file_id}/versions/{version}/blob")
    _problem_4xx(response, "invalid_request")


@pytest.mark.parametrize("number", [str(2**63), HUGE, "-1"])
def test_T25_part_number_out_of_range(world, number):
    http, case_id, _ = world
    response = http.put(
        f"/v1/cases/{case_id}/uploads/{new_id()}/parts/{number}",
        content=b"x",
        headers={"X-Part-SHA256": "0" * 64},
    )
    _problem_4xx(response, "invalid_request")


@pytest.mark.parametrize(
    "query",
    [f"limit={2**63}", f"limit={HUGE}", "limit=-1", f"after={'0' * 32}:{HUGE}"],
)
def test_T25_listing_query_out_of_range(world, query):
    http, case_id, _ = world
    _problem_4xx(http.get(f"/v1/cases/{case_id}/files?{query}"))


@pytest.mark.parametrize("query", [f"index={2**63}&size=1", f"index=0&size={HUGE}"])
def test_T25_log_query_out_of_range(world, query):
    http, _, _ = world
    _problem_4xx(http.get(f"/v1/log/proof/inclusion?{query}"))


def test_T25_range_header_of_thousands_of_digits(world):
    http, case_id, file_id = world
    url = f"/v1/cases/{case_id}/files/{file_id}/versions/1/blob"
    for value in (f"bytes={HUGE}-", f"bytes=0-{HUGE}", f"bytes=-{HUGE}"):
        _problem_4xx(http.get(url, headers={"Range": value}), "range_not_satisfiable")


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        # Past the JSON integer range: refused by the strict parse (400).
        ({"version": 2**63}, "invalid_encoding"),
        ({"version": -(2**63) - 1}, "invalid_encoding"),
        ({"part_size": 2**64}, "invalid_encoding"),
        # In that range but past the column or the field's meaning: a 422 naming the field.
        ({"version": 2**31}, "invalid_request"),
        ({"version": 0}, "invalid_request"),
        ({"total_size": 2**63 - 1}, "file_too_large"),
        ({"total_size": 0}, "invalid_request"),
        ({"part_size": -1}, "invalid_request"),
    ],
)
def test_T25_upload_integers_out_of_range(world, fields, code):
    http, case_id, _ = world
    start = {"file_id": new_id(), "version": 1, "total_size": 10, "part_size": 10, **fields}
    _problem_4xx(http.post(f"/v1/cases/{case_id}/uploads", json=start), code)


def _raw_bodies(case_id: str) -> list[tuple[str, bytes]]:
    upload = f'{{"file_id":"{new_id()}","version":{HUGE},"total_size":10,"part_size":10}}'.encode()
    return [
        (f"/v1/cases/{case_id}/uploads", upload),
        ("/v1/auth/login", b'{"username":"alice\\ud800","auth_key":"AA","totp":"123456"}'),
        ("/v1/accounts/prelogin", b'{"username":"\\udfff"}'),
        ("/v1/accounts/prelogin", b'{"\\ud800":"alice","username":"alice"}'),
        ("/v1/accounts/prelogin", b'{"username":"alice","username":"bob"}'),
        ("/v1/accounts/prelogin", b'{"username":NaN}'),
        ("/v1/accounts/prelogin", b'{"username":' + HUGE.encode() + b"}"),
        ("/v1/accounts/prelogin", b'{"username":"\xff\xfe"}'),
        ("/v1/accounts/prelogin", b"[" * 100_000 + b"]" * 100_000),
        ("/v1/accounts/prelogin", b'{"username":"alice"'),
        ("/v1/cases", b'{"case_id":"%s","encrypted_info":"\\ud834","entry":{},"grant":{}}'
         % new_id().encode()),
    ]


def test_T25_json_bodies_that_are_not_strict_json(world):
    http, case_id, _ = world
    for path, body in _raw_bodies(case_id):
        response = http.post(path, content=body, headers=JSON)
        _problem_4xx(response, "invalid_encoding")


def test_T25_surrogate_inside_a_signed_record(world):
    # A membership entry whose signed body holds a lone surrogate: the server's canonical
    # parse refuses it as a client error, never a 500.
    http, case_id, _ = world
    body = b'{"action":"add","case_id":"%s","subject":"\\ud800"}' % case_id.encode()
    b64 = base64.urlsafe_b64encode(body).rstrip(b"=").decode()
    entry = {"entry": {"body": b64, "sig": "A" * 86}, "grants": []}
    _problem_4xx(http.post(f"/v1/cases/{case_id}/membership", json=entry))


@pytest.mark.parametrize(
    "path",
    [
        "/v1/users/alice%0A/identity",
        "/v1/users/alice%0D%0A/identity",
        "/v1/users/alice%00/identity",
    ],
)
def test_T25_trailing_newline_names_nobody(world, path):
    http, _, _ = world
    _problem_4xx(http.get(path), "not_found")


def test_T25_name_with_trailing_newline_cannot_register(world, live_server, registration):
    # USERNAME_RE once passed "carol\n" (re.match and $): a second spelling of a name.
    http, _, _ = world
    body, _user = registration("carol")
    body["username"] = "carol\n"
    _problem_4xx(httpx.post(f"{live_server}/v1/accounts/register", json=body), "invalid_request")
    _problem_4xx(http.get("/v1/users/carol%0A/identity"), "not_found")


# ------------------------------------------------------------------ the parsers themselves


_SUFFIXES = ["\n", "\r\n", "\x00", " "]


@given(st.sampled_from(_SUFFIXES))
def test_T25_validators_are_full_matches(suffix):
    valid_id, valid_hash, valid_name = new_id(), "ab" * 32, "alice"
    assert is_valid_id(valid_id) and _hex64(valid_hash) and USERNAME_RE.fullmatch(valid_name)
    assert not is_valid_id(valid_id + suffix)
    assert not _hex64(valid_hash + suffix)
    assert USERNAME_RE.fullmatch(valid_name + suffix) is None


_SURROGATES = st.integers(0xD800, 0xDFFF).map(lambda c: f"\\u{c:04x}")


@given(prefix=st.text(string.ascii_letters, max_size=5), escape=_SURROGATES)
def test_T25_lone_surrogates_refused_by_the_shared_parser(prefix, escape):
    # The client parses every record with parse_canonical: a lone surrogate is EncodingError,
    # never a UnicodeEncodeError escaping from the re-encoding.
    record = f'{{"a":"{prefix}{escape}"}}'.encode()
    with pytest.raises(EncodingError):
        parse_canonical(record)
    with pytest.raises(EncodingError):
        parse_json(record)
    key = f'{{"{prefix}{escape}":1}}'.encode()
    with pytest.raises(EncodingError):
        parse_canonical(key)


@given(st.integers(min_value=-(10**4000), max_value=10**4000))
@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
def test_T25_integers_in_range_or_encoding_error(value):
    data = json.dumps({"n": value}, separators=(",", ":")).encode()
    if -(2**63) <= value < 2**63:
        assert parse_canonical(data) == {"n": value}
        assert canonical_json({"n": value}) == data
    else:
        with pytest.raises(EncodingError):
            parse_canonical(data)


def test_T25_huge_integer_text_is_encoding_error():
    with pytest.raises(EncodingError):
        parse_json(b'{"n":' + HUGE.encode() + b"}")
    with pytest.raises(EncodingError):
        parse_json(b'{"n":-' + HUGE.encode() + b"}")
