"""The revocation scan: does the audit log hold a membership change of a case the client has not
verified? (SPEC.md, "Audit leaf format 2 and the revocation scan".)

Before it encrypts under a case key generation, a client reads every leaf of [start, size) as a
skeleton, checks the run against a fresh signed checkpoint (compact range, vault.protocol.merkle)
and lists each leaf tagged with its case whose membership entry hash is not one it verified. An
empty list means: no membership change of the case, and so no key generation, lies beyond the
head it uses, up to that checkpoint. Anything that prevents that conclusion (a version-1 leaf, a
malformed skeleton, a gap, a run that does not match the checkpoint) raises ScanInconclusive,
and the client refuses to encrypt.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass

from vault.protocol import merkle
from vault.protocol.logentry import LeafError, LegacyLeaf, case_tag, parse_skeleton


class ScanInconclusive(Exception):
    """The scan cannot show that no unseen membership change exists; the client must refuse."""

    def __init__(self, problem: str, index: int | None = None) -> None:
        super().__init__(problem if index is None else f"leaf {index}: {problem}")
        self.index = index


@dataclass(frozen=True)
class MembershipSighting:
    index: int
    entry_hash: str


@dataclass(frozen=True)
class ScanResult:
    """What a scan of leaves [start, end) found for one case.

    `unseen` lists the case's membership events whose entry the client has not verified: the
    client must fetch and replay the membership log until each is in it, or refuse. `frontier`
    is the compact range at `end` once the run was checked against a checkpoint (else None); a
    client keeps it to start its next scan at `end` without asking the server for a frontier.
    """

    case_id: str
    start: int
    end: int
    seen: tuple[MembershipSighting, ...]
    unseen: tuple[MembershipSighting, ...]
    frontier: tuple[bytes, ...] | None = None

    @property
    def clear(self) -> bool:
        return not self.unseen


def scan_for_membership(
    case_id: str,
    leaves: Iterable[tuple[int, bytes]],
    known_entry_hashes: AbstractSet[str],
    *,
    start: int,
) -> ScanResult:
    """Sort the case's membership events in a contiguous run of leaves into seen and unseen.

    `leaves` are (index, leaf bytes) for indexes start, start+1, ... in order. This checks the
    skeletons only; whether the run is the log's is RangeScan's job.
    """
    tag = case_tag(case_id)
    seen: list[MembershipSighting] = []
    unseen: list[MembershipSighting] = []
    end = start
    for index, leaf in leaves:
        if index != end:
            raise ScanInconclusive(f"expected leaf {end} next", index)
        try:
            skeleton = parse_skeleton(leaf)
        except LegacyLeaf as exc:
            raise ScanInconclusive("a version-1 leaf has no case tag to scan", index) from exc
        except LeafError as exc:
            raise ScanInconclusive(f"malformed skeleton ({exc})", index) from exc
        # parse_skeleton sets case_tag and membership together or not at all.
        if skeleton.case_tag == tag and skeleton.membership is not None:
            sighting = MembershipSighting(index, skeleton.membership)
            (seen if skeleton.membership in known_entry_hashes else unseen).append(sighting)
        end += 1
    return ScanResult(case_id, start, end, tuple(seen), tuple(unseen))


class RangeScan:
    """A scan fed page by page, concluded only against a signed checkpoint.

    Start it with the frontier at `start` (from the server, or kept from an earlier scan), feed
    the pages of leaves in order, and call finish() with a verified checkpoint's size and root.
    No result exists before the run has been matched to that root, so a caller cannot act on
    leaves the server chose.
    """

    def __init__(
        self,
        case_id: str,
        *,
        start: int,
        left_frontier: Sequence[bytes],
        known_entry_hashes: AbstractSet[str],
    ) -> None:
        self._case_id = case_id
        self._start = start
        self._end = start
        self._frontier = list(left_frontier)
        self._known = frozenset(known_entry_hashes)
        self._seen: list[MembershipSighting] = []
        self._unseen: list[MembershipSighting] = []

    def feed(self, leaves: Sequence[bytes]) -> None:
        """The next page: the leaves [end, end + len(leaves))."""
        page = scan_for_membership(
            self._case_id, enumerate(leaves, self._end), self._known, start=self._end
        )
        try:
            self._frontier = merkle.extend_frontier(
                self._frontier, self._end, [merkle.leaf_hash(leaf) for leaf in leaves]
            )
        except ValueError as exc:
            raise ScanInconclusive("the frontier does not fit the start of the range") from exc
        self._seen += page.seen
        self._unseen += page.unseen
        self._end = page.end

    def finish(self, checkpoint_size: int, checkpoint_root: bytes) -> ScanResult:
        """The result, if the leaves fed are exactly [start, size) of the checkpointed tree."""
        if self._end != checkpoint_size:
            raise ScanInconclusive(
                f"the range ends at {self._end}, the checkpoint at {checkpoint_size}"
            )
        if not merkle.verify_range(self._frontier, checkpoint_size, [], checkpoint_size,
                                   checkpoint_root):
            raise ScanInconclusive("the range does not match the signed checkpoint")
        return ScanResult(
            self._case_id,
            self._start,
            self._end,
            tuple(self._seen),
            tuple(self._unseen),
            tuple(self._frontier),
        )


def scan_checkpointed_range(
    case_id: str,
    *,
    start: int,
    left_frontier: Sequence[bytes],
    leaves: Sequence[bytes],
    checkpoint_size: int,
    checkpoint_root: bytes,
    known_entry_hashes: AbstractSet[str],
) -> ScanResult:
    """One-page RangeScan: leaves [start, checkpoint_size) checked against the checkpoint."""
    scan = RangeScan(
        case_id, start=start, left_frontier=left_frontier, known_entry_hashes=known_entry_hashes
    )
    scan.feed(leaves)
    return scan.finish(checkpoint_size, checkpoint_root)
