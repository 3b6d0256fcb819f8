"""Merkle tree hashing and proofs of RFC 6962 / RFC 9162 (section 2.1), SHA-256.

Leaves hash as SHA-256(0x00 || entry) and interior nodes as SHA-256(0x01 || left || right), so a
leaf can never be passed off as a node (second-preimage resistance of the tree shape).

Proof *generation* works from a callable `subtree(level, index)` that returns the hash of the
perfect subtree covering leaves [index * 2**level, (index + 1) * 2**level). A server answers it
from stored nodes, so a proof costs O(log n) look-ups and never touches all leaves. Subtrees on
the ragged right edge of a tree are not perfect; they are combined from perfect ones here.

Proof *verification* follows the RFC 9162 algorithms (2.1.3.2 inclusion, 2.1.4.2 consistency)
step by step. Every verifier returns a bool and never raises on hostile input of the right types.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

HASH_SIZE = 32
MAX_TREE_SIZE = 1 << 62

SubtreeHash = Callable[[int, int], bytes]

_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"


class ProofRequestError(ValueError):
    """A proof was asked for indices or sizes that do not describe one."""


def leaf_hash(entry: bytes) -> bytes:
    return hashlib.sha256(_LEAF_PREFIX + entry).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(_NODE_PREFIX + left + right).digest()


EMPTY_ROOT = hashlib.sha256(b"").digest()


def _largest_power_of_two_below(n: int) -> int:
    """The k of RFC 6962: the largest power of two strictly smaller than n (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def _range_hash(subtree: SubtreeHash, start: int, end: int) -> bytes:
    """MTH(D[start:end]) for a range that is a node of some tree (start aligned to its width).

    Such a range splits into a perfect left part and a shorter right part that is again a node,
    so the walk is O(log n) perfect-subtree look-ups combined from the right.
    """
    n = end - start
    if n & (n - 1) == 0:
        level = n.bit_length() - 1
        return subtree(level, start >> level)
    k = _largest_power_of_two_below(n)
    level = k.bit_length() - 1
    return node_hash(subtree(level, start >> level), _range_hash(subtree, start + k, end))


def root_from_subtrees(subtree: SubtreeHash, size: int) -> bytes:
    """Root hash of the first `size` leaves."""
    _check_size(size)
    if size == 0:
        return EMPTY_ROOT
    return _range_hash(subtree, 0, size)


def root_of_entries(entries: Sequence[bytes]) -> bytes:
    """Root hash of a list of entries (small trees, tests and offline checks)."""
    hashes = [leaf_hash(e) for e in entries]
    if not hashes:
        return EMPTY_ROOT
    return _root_of_leaf_hashes(hashes)


def _root_of_leaf_hashes(hashes: list[bytes]) -> bytes:
    # Bottom-up pairing; an odd node at the end of a level is promoted unchanged, which gives
    # exactly the RFC 6962 shape (left subtrees are the largest powers of two).
    level = hashes
    while len(level) > 1:
        nxt = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    return level[0]


def append_to_frontier(
    frontier: Sequence[bytes], size: int, new_leaf_hash: bytes
) -> tuple[list[bytes], list[tuple[int, int, bytes]]]:
    """Add one leaf to the compact range of a tree of `size` leaves.

    The frontier holds the roots of the perfect subtrees along the right edge, largest first
    (one per set bit of `size`). Returns the new frontier and the (level, index, hash) of every
    perfect subtree of level >= 1 that the new leaf completes, for the caller to store.
    """
    if len(frontier) != bin(size).count("1"):
        raise ValueError("frontier does not match the tree size")
    stack = list(frontier)
    completed: list[tuple[int, int, bytes]] = []
    node, s, index, level = new_leaf_hash, size, size, 0
    while s & 1:
        node = node_hash(stack.pop(), node)
        s, index, level = s >> 1, index >> 1, level + 1
        completed.append((level, index, node))
    stack.append(node)
    return stack, completed


def root_from_frontier(frontier: list[bytes]) -> bytes:
    """Root of a tree from its compact range (largest subtree first)."""
    if not frontier:
        return EMPTY_ROOT
    node = frontier[-1]
    for left in reversed(frontier[:-1]):
        node = node_hash(left, node)
    return node


def _check_size(size: int) -> None:
    if not isinstance(size, int) or isinstance(size, bool) or not 0 <= size <= MAX_TREE_SIZE:
        raise ProofRequestError("tree size out of range")


def inclusion_proof(subtree: SubtreeHash, index: int, size: int) -> list[bytes]:
    """PATH(index, D[0:size]) of RFC 6962 section 2.1.1."""
    _check_size(size)
    if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < size:
        raise ProofRequestError("leaf index must be below the tree size")
    proof: list[bytes] = []
    start, end, m = 0, size, index
    # Walk down from the root; each step records the sibling subtree, collected bottom-up.
    while end - start > 1:
        k = _largest_power_of_two_below(end - start)
        if m < k:
            proof.append(_range_hash(subtree, start + k, end))
            end = start + k
        else:
            proof.append(_range_hash(subtree, start, start + k))
            start, m = start + k, m - k
    proof.reverse()
    return proof


def consistency_proof(subtree: SubtreeHash, first: int, second: int) -> list[bytes]:
    """PROOF(first, D[0:second]) of RFC 6962 section 2.1.2 (empty when first is 0 or second)."""
    _check_size(first)
    _check_size(second)
    if first > second:
        raise ProofRequestError("the first size must not exceed the second")
    if first == 0 or first == second:
        return []
    proof: list[bytes] = []
    start, end, m, whole = 0, second, first, True
    while m != end - start:
        k = _largest_power_of_two_below(end - start)
        if m <= k:
            proof.append(_range_hash(subtree, start + k, end))
            end = start + k
        else:
            proof.append(_range_hash(subtree, start, start + k))
            start, m, whole = start + k, m - k, False
    if not whole:
        proof.append(_range_hash(subtree, start, end))
    proof.reverse()
    return proof


def _valid_hashes(values: Sequence[bytes]) -> bool:
    return all(isinstance(v, bytes) and len(v) == HASH_SIZE for v in values)


def verify_inclusion(
    entry_hash: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> bool:
    """RFC 9162 section 2.1.3.2: does `entry_hash` (a leaf hash) sit at `index` under `root`?"""
    if not _valid_hashes([entry_hash, root, *proof]) or len(proof) > 64:
        return False
    if not (isinstance(index, int) and isinstance(size, int)) or not 0 <= index < size:
        return False
    fn, sn = index, size - 1
    r = entry_hash
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def verify_consistency(
    first: int, second: int, first_root: bytes, second_root: bytes, proof: Sequence[bytes]
) -> bool:
    """RFC 9162 section 2.1.4.2: is the tree of `second` leaves an extension of `first`?"""
    if not _valid_hashes([first_root, second_root, *proof]) or len(proof) > 128:
        return False
    if not (isinstance(first, int) and isinstance(second, int)) or not 0 <= first <= second:
        return False
    if first == second:
        return not proof and first_root == second_root
    if first == 0:
        # Every tree extends the empty one; there is nothing to prove.
        return not proof and first_root == EMPTY_ROOT
    if not proof:
        return False
    path = list(proof)
    if first & (first - 1) == 0:
        path.insert(0, first_root)
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return sn == 0 and fr == first_root and sr == second_root


# --- compact ranges: a run of leaves checked against a root ---------------------------------
#
# A reader who wants every leaf of [start, size) (the revocation scan) needs no proof per leaf:
# the frontier at `start` (the perfect subtrees covering [0, start), one per set bit of start)
# plus the leaf hashes of [start, size) determine the root of size `size`. If that root is a
# signed checkpoint's, no leaf of the range can have been changed, dropped, reordered or added
# without a SHA-256 collision, and the frontier cannot claim a different prefix either.


def frontier_from_subtrees(subtree: SubtreeHash, size: int) -> list[bytes]:
    """The frontier at `size` (largest subtree first), from stored perfect subtrees.

    This is the server's half of a range request: one look-up per set bit of `size`.
    """
    _check_size(size)
    frontier: list[bytes] = []
    offset = 0
    for level in range(size.bit_length() - 1, -1, -1):
        if size >> level & 1:
            frontier.append(subtree(level, offset >> level))
            offset += 1 << level
    return frontier


def extend_frontier(
    frontier: Sequence[bytes], start: int, leaf_hashes: Sequence[bytes]
) -> list[bytes]:
    """The frontier at `start + len(leaf_hashes)` from the frontier at `start`.

    Raises ValueError unless the frontier has one hash per set bit of `start` and every hash
    is 32 bytes. A reader that pages through a range keeps this result and never needs the
    server's frontier again.
    """
    _check_size(start)
    if not _valid_hashes(list(frontier)) or not _valid_hashes(list(leaf_hashes)):
        raise ValueError("hashes must be 32-byte values")
    if start + len(leaf_hashes) > MAX_TREE_SIZE:
        raise ValueError("tree size out of range")
    stack = list(frontier)
    size = start
    for leaf in leaf_hashes:
        stack, _ = append_to_frontier(stack, size, leaf)
        size += 1
    if len(stack) != bin(size).count("1"):
        # Only reachable with an empty range and a frontier that does not fit `start`.
        raise ValueError("frontier does not match the tree size")
    return stack


def root_from_range(left_frontier: list[bytes], start: int, leaf_hashes: Sequence[bytes]) -> bytes:
    """Root of the tree of `start + len(leaf_hashes)` leaves: [0, start) given by its frontier,
    [start, size) by its leaf hashes. Raises ValueError on a frontier that does not fit."""
    return root_from_frontier(extend_frontier(left_frontier, start, leaf_hashes))


def verify_range(
    left_frontier: Sequence[bytes],
    start: int,
    leaf_hashes: Sequence[bytes],
    size: int,
    root: bytes,
) -> bool:
    """Are `leaf_hashes` exactly the leaves [start, size) of the tree of `size` with `root`?

    Never raises on hostile input of the right types; a wrong count, frontier or leaf is False.
    """
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (start, size)):
        return False
    if not 0 <= start <= size <= MAX_TREE_SIZE or len(leaf_hashes) != size - start:
        return False
    if not _valid_hashes([root]):
        return False
    try:
        return root_from_range(list(left_frontier), start, leaf_hashes) == root
    except (ValueError, TypeError):
        return False
