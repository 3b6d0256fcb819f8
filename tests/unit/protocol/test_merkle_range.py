"""Compact-range checks: the leaves [start, size) plus the frontier at `start` give the RFC 6962
root, and any change a lying server could make to the range or the frontier is caught."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vault.protocol import merkle


def entries_of(n: int) -> list[bytes]:
    return [b"leaf-%d" % i for i in range(n)]


def perfect_subtree_oracle(entries: list[bytes]):
    """subtree(level, index) over a plain list, as the server answers it from stored nodes."""

    def subtree(level: int, index: int) -> bytes:
        width = 1 << level
        assert (index + 1) * width <= len(entries), "asked for a subtree beyond the tree"
        return merkle.root_of_entries(entries[index * width : (index + 1) * width])

    return subtree


def split(n: int, start: int) -> tuple[list[bytes], list[bytes], bytes]:
    """(frontier at start, leaf hashes of [start, n), RFC 6962 root of n) for a test tree."""
    entries = entries_of(n)
    frontier = merkle.frontier_from_subtrees(perfect_subtree_oracle(entries), start)
    leaves = [merkle.leaf_hash(e) for e in entries[start:]]
    return frontier, leaves, merkle.root_of_entries(entries)


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 300).flatmap(lambda n: st.tuples(st.just(n), st.integers(0, n))))
def test_range_root_equals_rfc6962_root(n_start):
    n, start = n_start
    frontier, leaves, root = split(n, start)
    assert merkle.root_from_range(frontier, start, leaves) == root
    assert merkle.verify_range(frontier, start, leaves, n, root)


def test_frontier_from_subtrees_equals_the_appended_frontier():
    sub = perfect_subtree_oracle(entries_of(100))
    frontier: list[bytes] = []
    for size in range(100):
        assert merkle.frontier_from_subtrees(sub, size) == frontier
        frontier, _ = merkle.append_to_frontier(frontier, size, merkle.leaf_hash(b"leaf-%d" % size))


def test_empty_range_checks_the_frontier_alone():
    frontier, leaves, root = split(21, 21)
    assert leaves == []
    assert merkle.verify_range(frontier, 21, [], 21, root)
    assert merkle.verify_range([], 0, [], 0, merkle.EMPTY_ROOT)
    # An empty range still needs the frontier to be the tree's.
    assert not merkle.verify_range(frontier[:-1], 21, [], 21, root)


def test_paging_with_the_readers_own_frontier_needs_no_second_frontier():
    frontier, leaves, root = split(77, 10)
    kept = merkle.extend_frontier(frontier, 10, leaves[:30])
    kept = merkle.extend_frontier(kept, 40, leaves[30:])
    assert merkle.root_from_frontier(kept) == root


@pytest.mark.parametrize("n,start", [(1, 0), (2, 1), (13, 5), (64, 32), (100, 37), (100, 99)])
def test_every_tampered_range_fails(n, start):
    frontier, leaves, root = split(n, start)
    other = merkle.leaf_hash(b"forged")
    last = len(leaves) - 1

    changed = list(leaves)
    changed[last // 2] = other
    assert not merkle.verify_range(frontier, start, changed, n, root)

    dropped = leaves[:last] + leaves[last + 1 :]
    assert not merkle.verify_range(frontier, start, dropped, n, root)
    # Dropping a leaf and claiming the smaller size fails too: the root is that of size n.
    assert not merkle.verify_range(frontier, start, dropped, n - 1, root)

    inserted = [other, *leaves]
    assert not merkle.verify_range(frontier, start, inserted, n + 1, root)
    assert not merkle.verify_range(frontier, start, inserted[:-1], n, root)

    if len(leaves) >= 2:
        swapped = [leaves[1], leaves[0], *leaves[2:]]
        assert not merkle.verify_range(frontier, start, swapped, n, root)


@pytest.mark.parametrize("n,start", [(13, 5), (64, 32), (100, 37), (9, 8)])
def test_a_wrong_frontier_fails(n, start):
    frontier, leaves, root = split(n, start)
    forged = list(frontier)
    forged[0] = hashlib.sha256(b"another history").digest()
    assert not merkle.verify_range(forged, start, leaves, n, root)
    # A frontier for another start, with the leaves shifted to match the count, fails.
    shifted = merkle.frontier_from_subtrees(perfect_subtree_oracle(entries_of(n)), start - 1)
    assert not merkle.verify_range(shifted, start - 1, leaves[:-1] + [leaves[-1]] * 2, n, root)
    # Wrong length, wrong sizes, or a leaf passed off as a frontier node: False, never a raise.
    assert not merkle.verify_range(frontier + [frontier[0]], start, leaves, n, root)
    assert not merkle.verify_range([b"short"], start, leaves, n, root)
    assert not merkle.verify_range(frontier, start, leaves, n, root[:31])
    assert not merkle.verify_range(frontier, start, leaves, n, b"\x00" * 32)


def test_frontier_that_does_not_fit_start_is_an_error():
    frontier, leaves, _ = split(12, 6)
    with pytest.raises(ValueError):
        merkle.root_from_range(frontier[:1], 6, leaves)
    with pytest.raises(ValueError):
        merkle.root_from_range(frontier, 6, [b"not a hash"])
    with pytest.raises(merkle.ProofRequestError):
        merkle.frontier_from_subtrees(perfect_subtree_oracle([]), -1)
