"""`bench merkle`: the RFC 6962 tree over N leaves, its proofs, next to raw SHA-256 on the same leaves.

Leaves are `leaf_size` bytes (133 is the size of a real SettledReading leaf). The raw rate is hashlib's
SHA-256 over the same leaves in the tightest Python loop; a tree needs N leaf hashes and N - 1 node hashes
(65-byte inputs), so its lower bound, also measured, is those 2N - 1 raw hashes.
"""

from __future__ import annotations

import hashlib
import random
from typing import Callable

from stromledger import merkle

from .timing import best, rss_mb, stopwatch


def _leaves(n: int, size: int) -> list[bytes]:
    pad = bytes(max(0, size - 8))
    return [pad + i.to_bytes(8, "big") for i in range(n)]


def _laps(fn: Callable[[], object], repeat: int):
    laps = []
    for _ in range(max(1, repeat)):
        with stopwatch() as lap:
            fn()
        laps.append(lap)
    return best(laps)


def run_merkle(leaves: int = 1_000_000, leaf_size: int = 133, proofs: int = 2_000, repeat: int = 3, seed: int = 1,
               progress: Callable[[str], None] = lambda s: None) -> dict:
    n = leaves
    data = _leaves(n, leaf_size)
    sha = hashlib.sha256
    nodes = [bytes(65)] * max(0, n - 1)
    progress(f"raw SHA-256 over {n} leaves")
    raw_leaves = _laps(lambda: [sha(x).digest() for x in data], repeat)
    raw_nodes = _laps(lambda: [sha(x).digest() for x in nodes], repeat)
    progress(f"tree of {n} leaves")
    root_lap = _laps(lambda: merkle.root(data), repeat)
    rss0 = rss_mb()
    with stopwatch() as tree_lap:
        tree = merkle.Tree(data)
    rss1 = rss_mb()
    rng = random.Random(seed)
    idx = [rng.randrange(n) for _ in range(proofs)]
    progress(f"{proofs} proofs")
    with stopwatch() as proof_lap:
        paths = [tree.proof(i) for i in idx]
    root = tree.root
    with stopwatch() as verify_lap:
        ok = all(merkle.verify_inclusion(root, data[i], i, n, p) for i, p in zip(idx, paths))
    if not ok:
        raise RuntimeError("an inclusion proof did not verify")
    lengths = [len(p) for p in paths]
    lower = raw_leaves.wall + raw_nodes.wall
    return {
        "leaves": n,
        "leaf_bytes": leaf_size,
        "repeat": repeat,
        "root_s": root_lap.wall,
        "root_leaves_per_s": n / root_lap.wall,
        "tree_build_s": tree_lap.wall,  # keeps every level, for serving proofs
        # what holding one such Tree costs (a validator caches up to 8 for light requests, leaves besides)
        "tree_levels_mb": (rss1 - rss0) if rss0 is not None and rss1 is not None else None,
        "raw_sha256_leaves_s": raw_leaves.wall,
        "raw_sha256_leaves_per_s": n / raw_leaves.wall,
        "raw_sha256_nodes_s": raw_nodes.wall,
        "tree_lower_bound_s": lower,  # 2N - 1 raw hashes
        "root_vs_lower_bound": lower / root_lap.wall,  # 1.0 = the tree costs no more than its hashes
        "root_vs_raw_leaves": raw_leaves.wall / root_lap.wall,
        "proof_path_len": max(lengths),
        "proof_path_len_min": min(lengths),
        "proof_bytes": 32 * max(lengths),
        "proof_with_leaf_bytes": 32 * max(lengths) + leaf_size,
        "proof_us": proof_lap.wall * 1e6 / proofs,
        "verify_us": verify_lap.wall * 1e6 / proofs,
        "proofs": proofs,
    }
