"""T6: a hostile server serves a forged grant, or replays a genuine one somewhere else.

HPKE's sender is anonymous, so anyone can seal *a* key to Bob. The attack: the server seals a
case key it knows to Bob and hopes Bob encrypts new files under it. The defence is the owner's
signature over (case, generation, member, member key) checked against the replayed membership
log, plus the HPKE `info` that binds the same values.
"""

from __future__ import annotations

import pytest
from attack_kit import CaseLog, make_identity, resigned, tampered

from client.crypto.errors import IntegrityError
from client.crypto.keys import Identity, hpke_public_key
from client.crypto.seal import HPKE_SUITE, grant_info, new_case_key, open_grant, seal_grant
from vault.protocol.encoding import b64e
from vault.protocol.records import LABEL_GRANT


def _seal(case: CaseLog, member, granter, *, generation=0, key=None) -> dict:
    return seal_grant(
        case_key=key or case.keys[generation],
        case_id=case.case_id,
        generation=generation,
        member=member.record(),
        granter=granter,
        now=1_700_000_200,
    )


def _open(case: CaseLog, grant: dict, me) -> bytes:
    return open_grant(grant, identity=me, state=case.state(), identities=case.identities)


def test_T6_genuine_grant_opens(case, people):
    assert _open(case, _seal(case, people["bob"], people["alice"]), people["bob"]) == case.keys[0]


def test_T6_grant_signed_by_non_owner_rejected(case, people):
    # Bob (editor) and Mallory (outsider) each seal a key of their choosing to Vera.
    chosen = new_case_key()
    for granter in (people["bob"], people["mallory"]):
        grant = _seal(case, people["vera"], granter, key=chosen)
        with pytest.raises(IntegrityError):
            _open(case, grant, people["vera"])


def test_T6_grant_claiming_owner_but_signed_by_server_rejected(case, people):
    # The server seals its own key to Bob and names Alice as granter, signing with its own key.
    bob = people["bob"]
    genuine = _seal(case, bob, people["alice"])
    info = grant_info(case.case_id, 0, bob.user_id, bob.record().fingerprint_hex)
    sealed = HPKE_SUITE.encrypt(new_case_key(), hpke_public_key(bob.kem_pk), info=info)
    forged = resigned(genuine, LABEL_GRANT, people["mallory"], sealed_key=b64e(sealed))
    with pytest.raises(IntegrityError):
        _open(case, forged, bob)
    # Keeping Alice's signature while swapping the sealed key breaks the signature instead.
    with pytest.raises(IntegrityError):
        _open(case, tampered(genuine, sealed_key=b64e(sealed)), bob)


def test_T6_grant_replayed_to_other_context_rejected(case, people):
    bob_grant = _seal(case, people["bob"], people["alice"])
    # To another member: Vera cannot use Bob's grant (and cannot open it anyway).
    with pytest.raises(IntegrityError):
        _open(case, bob_grant, people["vera"])
    # To another case where Alice is also owner and Bob a member.
    other = CaseLog(people["alice"])
    other.add(people["bob"], "editor")
    with pytest.raises(IntegrityError):
        _open(other, bob_grant, people["bob"])
    # To another generation: after Vera's removal Bob must not accept generation 0 as current.
    case.remove(people["vera"])
    with pytest.raises(IntegrityError):
        open_grant(
            bob_grant,
            identity=people["bob"],
            state=case.state(),
            identities=case.identities,
            generation=1,
        )


def test_T6_grant_for_old_member_key_rejected(case, people):
    # A grant sealed to a key Bob no longer has in the log (the server swapped his record).
    fresh = make_identity("bob")
    impostor = Identity._from_parts(
        people["bob"].user_id,
        "bob",
        fresh.created_at,
        fresh.sign_seed,
        fresh.mlkem_seed,
        fresh.x25519_private,
    )
    grant = _seal(case, impostor, people["alice"])
    with pytest.raises(IntegrityError):
        _open(case, grant, impostor)


def test_T6_sealed_key_bound_to_its_info(case, people):
    # Even an owner-signed grant does not open if the HPKE seal was made for other coordinates:
    # the info is a second, independent binding.
    bob = people["bob"]
    fp = bob.record().fingerprint_hex
    case.remove(people["vera"])
    sealed_for_gen0 = HPKE_SUITE.encrypt(
        case.keys[1], hpke_public_key(bob.kem_pk), info=grant_info(case.case_id, 0, bob.user_id, fp)
    )
    genuine = _seal(case, bob, people["alice"], generation=1)
    signed = resigned(genuine, LABEL_GRANT, people["alice"], sealed_key=b64e(sealed_for_gen0))
    with pytest.raises(IntegrityError):
        _open(case, signed, bob)
