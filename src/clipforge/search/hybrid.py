"""Hybrid ranking: dense (embedding) and sparse (lexical) scores fused after min-max normalisation.

Dense cosine similarities and lexical dot products live on different scales, so each is first
mapped to [0, 1] over the candidate set (the union of both top lists), then mixed:

    norm(s)_i = (s_i − min_c s_c) / (max_c s_c − min_c s_c)      (0 for all i when max = min)
    hybrid_i  = w · norm(dense)_i + (1 − w) · norm(sparse)_i

Every candidate gets both scores computed exactly (the sparse side scores all documents anyway;
the dense side reconstructs the few vectors missing from its top list), so a document found by
only one side still gets a fair score from the other. ``w`` = 1 is dense only, 0 sparse only.
"""

from __future__ import annotations

import numpy as np


def min_max(scores: np.ndarray) -> np.ndarray:
    scores = np.asarray(scores, dtype=np.float64)
    if scores.size == 0:
        return scores
    low, high = scores.min(), scores.max()
    if high - low <= 1e-12:
        return np.zeros_like(scores)
    return (scores - low) / (high - low)


def fuse(
    ids: np.ndarray, dense_scores: np.ndarray, sparse_scores: np.ndarray, weight: float, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Rank candidates ``ids`` by ``w·norm(dense) + (1−w)·norm(sparse)``; top ``k`` (scores, ids).

    Ties are broken by the lower id, so the order is deterministic.
    """
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"hybrid weight must be in [0, 1], got {weight}")
    ids = np.asarray(ids, dtype=np.int64)
    combined = weight * min_max(dense_scores) + (1.0 - weight) * min_max(sparse_scores)
    order = np.lexsort((ids, -combined))[:k]
    return combined[order].astype(np.float32), ids[order]
