"""T25: schemathesis generates requests from the server's own OpenAPI schema, valid and
malformed, sent as a logged-in user who is not a member of the victim's case.

No response may be a 5xx, and no response may carry the victim's case id. Every response must
also be one the document promises: a documented status, its documented content type, a body
matching its documented schema and the headers it marks required (so /openapi.json cannot drift
from the server again). Bounded to a few examples per operation so the whole run stays well
under a minute.
"""

from __future__ import annotations

import secrets
import time

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from vault.protocol.ids import new_id
from vault.protocol.membership import membership_entry_body
from vault.protocol.records import (
    LABEL_GRANT,
    LABEL_MEMBERSHIP,
    ZERO_HASH,
    grant_body,
    sign_record,
    verify_identity_record,
)


def _victim_case(client, victim) -> str:
    """A case of the victim's, created through the API with records she signed."""
    case_id = new_id()
    fp = verify_identity_record(victim.registration["identity"]).fingerprint_hex
    now = int(time.time())
    entry = membership_entry_body(
        case_id=case_id,
        seq=0,
        prev_hash=ZERO_HASH,
        action="create",
        subject=victim.user_id,
        subject_fp=fp,
        role="owner",
        author=victim.user_id,
        time=now,
        generation=0,
    )
    grant = grant_body(
        case_id=case_id,
        generation=0,
        member=victim.user_id,
        member_fp=fp,
        sealed_key=secrets.token_bytes(1200),
        granter=victim.user_id,
        time=now,
    )
    response = client.post(
        "/v1/cases",
        json={
            "case_id": case_id,
            "encrypted_info": "AAAA",
            "entry": sign_record(LABEL_MEMBERSHIP, entry, victim.signing_key),
            "grant": sign_record(LABEL_GRANT, grant, victim.signing_key),
        },
        headers=victim.headers,
    )
    assert response.status_code == 201, response.text
    return case_id


@pytest.fixture
def world(app, client, make_user):
    victim, attacker = make_user("victim"), make_user("attacker")
    return {"victim_case": _victim_case(client, victim), "attacker": attacker}


CONFORMANCE = [
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]


def test_T25_no_server_errors(app, world):
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 25, len(operations)
    attacker, victim_case = world["attacker"], world["victim_case"]
    for operation in operations:

        @settings(
            max_examples=6,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        @given(case=operation.as_strategy())
        def attack(case):
            response = case.call(headers=attacker.headers)
            where = (case.method, case.formatted_path)
            assert response.status_code < 500, (where, response.text[:300])
            assert victim_case not in response.text, where
            if response.status_code >= 400 and response.content:
                # schemathesis keeps every header as a list of values.
                (content_type,) = response.headers["content-type"]
                assert content_type.startswith("application/problem+json"), where
            # Raises with every failed check named; the 5xx case is asserted above.
            case.validate_response(response, checks=CONFORMANCE)

        attack()
