"""Merkle tree: known answers, a cross-check against RFC 6962's recursive definitions, and
property tests that every honest proof verifies and every tampered one fails."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vault.protocol import merkle

# The test vectors of the certificate-transparency reference implementation (RFC 6962).
CT_LEAVES = [
    b"",
    b"\x00",
    b"\x10",
    b"\x20\x21",
    b"\x30\x31",
    b"\x40\x41\x42\x43",
    b"\x50\x51\x52\x53\x54\x55\x56\x57",
    bytes(range(0x60, 0x70)),
]
CT_ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
CT_INCLUSION_0_OF_8 = [
    "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
    "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
]


# --- RFC 6962 section 2.1, written as literally as possible -------------------------------


def _k(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def rfc_mth(d: list[bytes]) -> bytes:
    if not d:
        return hashlib.sha256(b"").digest()
    if len(d) == 1:
        return hashlib.sha256(b"\x00" + d[0]).digest()
    k = _k(len(d))
    return hashlib.sha256(b"\x01" + rfc_mth(d[:k]) + rfc_mth(d[k:])).digest()


def rfc_path(m: int, d: list[bytes]) -> list[bytes]:
    if len(d) == 1:
        return []
    k = _k(len(d))
    if m < k:
        return rfc_path(m, d[:k]) + [rfc_mth(d[k:])]
    return rfc_path(m - k, d[k:]) + [rfc_mth(d[:k])]


def rfc_subproof(m: int, d: list[bytes], b: bool) -> list[bytes]:
    if m == len(d):
        return [] if b else [rfc_mth(d)]
    k = _k(len(d))
    if m <= k:
        return rfc_subproof(m, d[:k], b) + [rfc_mth(d[k:])]
    return rfc_subproof(m - k, d[k:], False) + [rfc_mth(d[:k])]


def rfc_proof(m: int, d: list[bytes]) -> list[bytes]:
    return rfc_subproof(m, d, True)


# --- a subtree oracle over a plain list, like the server's stored nodes --------------------


def oracle(entries: list[bytes]):
    calls = []

    def subtree(level: int, index: int) -> bytes:
        calls.append((level, index))
        width = 1 << level
        assert (index + 1) * width <= len(entries), "asked for a subtree beyond the tree"
        return rfc_mth(entries[index * width : (index + 1) * width])

    subtree.calls = calls  # type: ignore[attr-defined]
    return subtree


def entries_of(n: int) -> list[bytes]:
    return [b"entry-%d" % i for i in range(n)]


def test_known_answer_roots():
    assert merkle.root_of_entries([]).hex() == (
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    )
    for n in range(1, len(CT_LEAVES) + 1):
        assert merkle.root_of_entries(CT_LEAVES[:n]).hex() == CT_ROOTS[n - 1]
        assert merkle.root_from_subtrees(oracle(CT_LEAVES[:n]), n).hex() == CT_ROOTS[n - 1]


def test_known_answer_inclusion_proof():
    proof = merkle.inclusion_proof(oracle(CT_LEAVES), 0, 8)
    assert [p.hex() for p in proof] == CT_INCLUSION_0_OF_8
    root = bytes.fromhex(CT_ROOTS[7])
    assert merkle.verify_inclusion(merkle.leaf_hash(CT_LEAVES[0]), 0, 8, proof, root)


def test_reference_recursion_agrees_with_known_answers():
    for n in range(1, len(CT_LEAVES) + 1):
        assert rfc_mth(CT_LEAVES[:n]).hex() == CT_ROOTS[n - 1]


@pytest.mark.parametrize("n", range(1, 34))
def test_proofs_match_rfc_definitions_for_small_trees(n):
    d = entries_of(n)
    sub = oracle(d)
    root = rfc_mth(d)
    assert merkle.root_from_subtrees(sub, n) == root
    assert merkle.root_of_entries(d) == root
    for m in range(n):
        proof = merkle.inclusion_proof(sub, m, n)
        assert proof == rfc_path(m, d)
        assert merkle.verify_inclusion(merkle.leaf_hash(d[m]), m, n, proof, root)
    for m in range(1, n + 1):
        proof = merkle.consistency_proof(sub, m, n)
        expected = [] if m == n else rfc_proof(m, d)
        assert proof == expected
        assert merkle.verify_consistency(m, n, rfc_mth(d[:m]), root, proof)


def test_frontier_appends_build_the_same_tree_and_store_every_perfect_node():
    frontier: list[bytes] = []
    stored: dict[tuple[int, int], bytes] = {}
    d = entries_of(37)
    for i, e in enumerate(d):
        lh = merkle.leaf_hash(e)
        stored[(0, i)] = lh
        frontier, completed = merkle.append_to_frontier(frontier, i, lh)
        for level, index, h in completed:
            stored[(level, index)] = h
        assert merkle.root_from_frontier(frontier) == rfc_mth(d[: i + 1])
    # Every perfect subtree inside 37 leaves is stored and correct.
    for level in range(6):
        for index in range(37 >> level):
            width = 1 << level
            assert stored[(level, index)] == rfc_mth(d[index * width : (index + 1) * width])
    assert len(stored) == sum(37 >> level for level in range(6))


def test_frontier_of_wrong_length_is_refused():
    with pytest.raises(ValueError):
        merkle.append_to_frontier([], 3, merkle.leaf_hash(b"x"))


def test_proof_generation_uses_logarithmic_lookups():
    n = 1_000_003
    sub = oracle_counting_only()
    merkle.inclusion_proof(sub, 123_456, n)
    assert len(sub.calls) <= 2 * n.bit_length()
    sub = oracle_counting_only()
    merkle.consistency_proof(sub, 500_001, n)
    assert len(sub.calls) <= 2 * n.bit_length()


def oracle_counting_only():
    calls = []

    def subtree(level: int, index: int) -> bytes:
        calls.append((level, index))
        return hashlib.sha256(b"%d/%d" % (level, index)).digest()

    subtree.calls = calls  # type: ignore[attr-defined]
    return subtree


def test_bad_proof_requests_are_refused():
    sub = oracle(entries_of(4))
    for index, size in [(4, 4), (-1, 4), (0, 0)]:
        with pytest.raises(merkle.ProofRequestError):
            merkle.inclusion_proof(sub, index, size)
    with pytest.raises(merkle.ProofRequestError):
        merkle.consistency_proof(sub, 5, 4)
    with pytest.raises(merkle.ProofRequestError):
        merkle.consistency_proof(sub, -1, 4)


def test_trivial_consistency_cases():
    d = entries_of(5)
    root = rfc_mth(d)
    assert merkle.verify_consistency(5, 5, root, root, [])
    assert not merkle.verify_consistency(5, 5, root, rfc_mth(d[:4]), [])
    assert not merkle.verify_consistency(5, 5, root, root, [root])
    assert merkle.verify_consistency(0, 5, merkle.EMPTY_ROOT, root, [])
    assert not merkle.verify_consistency(0, 5, root, root, [])
    assert not merkle.verify_consistency(2, 5, rfc_mth(d[:2]), root, [])
    assert not merkle.verify_consistency(5, 2, root, rfc_mth(d[:2]), [])


def test_verifiers_reject_malformed_inputs_without_raising():
    d = entries_of(3)
    root = rfc_mth(d)
    proof = rfc_path(1, d)
    lh = merkle.leaf_hash(d[1])
    assert not merkle.verify_inclusion(lh[:31], 1, 3, proof, root)
    assert not merkle.verify_inclusion(lh, 1, 3, [p + b"\x00" for p in proof], root)
    assert not merkle.verify_inclusion(lh, 1, 3, ["x" * 32], root)  # type: ignore[list-item]
    assert not merkle.verify_inclusion(lh, 1, 3, [proof[0]] * 65, root)
    assert not merkle.verify_inclusion(lh, -1, 3, proof, root)
    assert not merkle.verify_inclusion(lh, 1, 3, proof, root[:-1])


# --- properties over random sizes ------------------------------------------------------------


def _path_shape(m: int, n: int) -> list[bool]:
    """Left/right pattern of RFC 6962 PATH(m, D[0:n]); True where the sibling is on the right."""
    shape = []
    start, end = 0, n
    while end - start > 1:
        k = _k(end - start)
        shape.append(m < start + k)
        start, end = (start, start + k) if m < start + k else (start + k, end)
    return shape


@st.composite
def tree_and_index(draw):
    n = draw(st.integers(min_value=1, max_value=300))
    m = draw(st.integers(min_value=0, max_value=n - 1))
    return n, m


def _flip(values: list[bytes], which: int, bit: int) -> list[bytes]:
    out = list(values)
    b = bytearray(out[which])
    b[bit // 8] ^= 1 << (bit % 8)
    out[which] = bytes(b)
    return out


@settings(max_examples=150, deadline=None)
@given(tree_and_index(), st.data())
def test_inclusion_proofs_verify_and_tampering_fails(nm, data):
    n, m = nm
    d = entries_of(n)
    sub = oracle(d)
    root = merkle.root_from_subtrees(sub, n)
    proof = merkle.inclusion_proof(sub, m, n)
    lh = merkle.leaf_hash(d[m])
    assert merkle.verify_inclusion(lh, m, n, proof, root)

    bit = data.draw(st.integers(0, 255))
    assert not merkle.verify_inclusion(_flip([lh], 0, bit)[0], m, n, proof, root)
    assert not merkle.verify_inclusion(lh, m, n, proof, _flip([root], 0, bit)[0])
    if proof:
        which = data.draw(st.integers(0, len(proof) - 1))
        assert not merkle.verify_inclusion(lh, m, n, _flip(proof, which, bit), root)
        assert not merkle.verify_inclusion(lh, m, n, proof[:-1], root)
    assert not merkle.verify_inclusion(lh, m, n, [*proof, root], root)
    other_index = data.draw(st.integers(0, n).filter(lambda x: x != m))
    assert not merkle.verify_inclusion(lh, other_index, n, proof, root)
    # The signed checkpoint binds the size to the root; a proof alone cannot tell apart sizes
    # whose path to leaf m has the same shape (RFC 9162 2.1.3.2), so any size with a different
    # shape must fail.
    other_size = data.draw(st.integers(m + 1, 2 * n + 2).filter(lambda x: x != n))
    if _path_shape(m, other_size) != _path_shape(m, n):
        assert not merkle.verify_inclusion(lh, m, other_size, proof, root)
    if n > 1:
        other_root = merkle.root_of_entries(d[: n - 1])
        assert not merkle.verify_inclusion(lh, m, n, proof, other_root)


def _consistency_shape(m: int, n: int) -> list[bool]:
    """Decisions of RFC 6962 SUBPROOF(m, D[0:n], true), and whether it ends on a whole tree."""
    shape = []
    start, end, whole = 0, n, True
    while m != end - start:
        k = _k(end - start)
        shape.append(m <= k)
        if m <= k:
            end = start + k
        else:
            start, m, whole = start + k, m - k, False
    return [*shape, whole]


@st.composite
def two_sizes(draw):
    second = draw(st.integers(min_value=2, max_value=300))
    first = draw(st.integers(min_value=1, max_value=second - 1))
    return first, second


@settings(max_examples=150, deadline=None)
@given(two_sizes(), st.data())
def test_consistency_proofs_verify_and_tampering_fails(sizes, data):
    first, second = sizes
    d = entries_of(second)
    sub = oracle(d)
    r1 = merkle.root_from_subtrees(sub, first)
    r2 = merkle.root_from_subtrees(sub, second)
    proof = merkle.consistency_proof(sub, first, second)
    assert merkle.verify_consistency(first, second, r1, r2, proof)

    bit = data.draw(st.integers(0, 255))
    assert not merkle.verify_consistency(first, second, _flip([r1], 0, bit)[0], r2, proof)
    assert not merkle.verify_consistency(first, second, r1, _flip([r2], 0, bit)[0], proof)
    which = data.draw(st.integers(0, len(proof) - 1))
    assert not merkle.verify_consistency(first, second, r1, r2, _flip(proof, which, bit))
    assert not merkle.verify_consistency(first, second, r1, r2, proof[:-1])
    assert not merkle.verify_consistency(first, second, r1, r2, [*proof, r1])
    # As with inclusion, the checkpoint binds the size; a size whose proof has another shape
    # must fail.
    other_second = data.draw(st.integers(first, 2 * second).filter(lambda x: x != second))
    if _consistency_shape(first, other_second) != _consistency_shape(first, second):
        assert not merkle.verify_consistency(first, other_second, r1, r2, proof)
    # A forked history: same first tree, a different second tree.
    forked = d[:first] + [b"forged-%d" % i for i in range(second - first)]
    assert not merkle.verify_consistency(first, second, r1, rfc_mth(forked), proof)
    # A rewritten past: a different first tree claimed to be extended.
    rewritten = [b"rewritten"] + d[1:first]
    assert not merkle.verify_consistency(first, second, rfc_mth(rewritten), r2, proof)
