"""Near-duplicate removal among a query's results (``deduplicate: true`` on ``/knn-service``).

As clip-retrieval's back does it: results whose (reconstructed, L2-normalised) vectors have a
cosine similarity ≥ ``threshold`` (0.94, clip-retrieval's value) are linked, and each connected
group of linked results keeps one member. clip-retrieval keeps an arbitrary member of each group;
here it is always the **best-ranked** one, so a query's top result is never dropped and the
answer does not depend on set iteration order. Groups are transitive (A~B, B~C drops B and C
even when A and C are further apart than the threshold), again as in clip-retrieval.
"""

from __future__ import annotations

import numpy as np

from ..common.vectors import l2_normalize
from .deps import require

THRESHOLD = 0.94


def kept_positions(vectors: np.ndarray, threshold: float = THRESHOLD) -> list[int]:
    """Positions (ascending) of the results to keep, for ``vectors`` [n, D] in rank order."""
    count = len(vectors)
    if count < 2:
        return list(range(count))
    faiss = require("faiss")
    unit = np.ascontiguousarray(l2_normalize(np.asarray(vectors, np.float32)))
    index = faiss.IndexFlatIP(unit.shape[1])
    index.add(unit)
    limits, _, neighbours = index.range_search(unit, threshold)
    parent = list(range(count))

    def root(node: int) -> int:
        while parent[node] != node:
            parent[node] = parent[parent[node]]
            node = parent[node]
        return node

    for position in range(count):
        for other in neighbours[limits[position] : limits[position + 1]]:
            a, b = root(position), root(int(other))
            if a != b:
                parent[max(a, b)] = min(a, b)  # the better-ranked position stays the root
    return [position for position in range(count) if root(position) == position]
