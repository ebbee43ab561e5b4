"""RFC 6962 Merkle trees (Certificate Transparency hashing).

leaf hash = SHA-256(0x00 || leaf), node hash = SHA-256(0x01 || left || right), the tree split at the
largest power of two below n. Building level by level and promoting an odd last node unchanged gives the
same root, which is what `root` does: a flat loop over bytes, fast for millions of leaves.
"""

from __future__ import annotations

import hashlib

EMPTY_ROOT = hashlib.sha256(b"").digest()


def leaf_hash(leaf: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + leaf).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def leaf_hashes(leaves: list[bytes]) -> list[bytes]:
    """The leaf hashes of `leaves`, the tree's lowest level (`root_of_leaf_hashes` finishes the tree)."""
    return [leaf_hash(x) for x in leaves]


def _levels(leaves: list[bytes]) -> list[list[bytes]]:
    return _levels_above(leaf_hashes(leaves))


def _levels_above(level: list[bytes]) -> list[list[bytes]]:
    levels = [level]
    sha = hashlib.sha256
    while len(level) > 1:
        nxt = [sha(b"\x01" + level[i] + level[i + 1]).digest() for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])
        levels.append(nxt)
        level = nxt
    return levels


def root(leaves: list[bytes]) -> bytes:
    if not leaves:
        return EMPTY_ROOT
    return _levels(leaves)[-1][0]


def root_of_leaf_hashes(hashes: list[bytes]) -> bytes:
    """The root of the tree whose leaves hash to `hashes` (the leaves hashed a part at a time)."""
    if not hashes:
        return EMPTY_ROOT
    return _levels_above(hashes)[-1][0]


class Tree:
    """All levels kept, for serving many inclusion proofs from one tree."""

    def __init__(self, leaves: list[bytes]):
        self.size = len(leaves)
        self._levels = _levels(leaves) if leaves else [[]]

    @property
    def root(self) -> bytes:
        return self._levels[-1][0] if self.size else EMPTY_ROOT

    def proof(self, index: int) -> list[bytes]:
        if not 0 <= index < self.size:
            raise IndexError(f"leaf {index} not in a tree of {self.size}")
        path = []
        for level in self._levels[:-1]:
            sibling = index ^ 1
            if sibling < len(level):
                path.append(level[sibling])
            index //= 2
        return path


def inclusion_proof(leaves: list[bytes], index: int) -> list[bytes]:
    return Tree(leaves).proof(index)


def verify_inclusion(root_hash: bytes, leaf: bytes, index: int, size: int, proof: list[bytes]) -> bool:
    """RFC 9162 section 2.1.3.2 verification of an inclusion proof."""
    if not 0 <= index < size:
        return False
    fn, sn = index, size - 1
    r = leaf_hash(leaf)
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn & 1 == 0 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root_hash
