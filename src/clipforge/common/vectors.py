"""L2 normalisation of NumPy embedding arrays (the torch side uses ``F.normalize``)."""

from __future__ import annotations

import numpy as np

EPSILON = 1e-12  # a zero vector stays zero instead of becoming NaN


def l2_normalize(vectors: np.ndarray) -> np.ndarray:
    """Rows (last axis) scaled to unit L2 norm, as contiguous float32 ([D] or [N, D])."""
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    return vectors / np.maximum(np.linalg.norm(vectors, axis=-1, keepdims=True), EPSILON)
