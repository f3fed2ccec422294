"""Lexical search over sparse (LexLIP-style) vectors with an inverted index.

Documents are the rows of a sparse matrix ``D`` [N, V] of non-negative term weights. Stored
column-major (CSC), each column is a term's posting list: the documents that contain it and their
weights. A query ``q`` [V] with terms ``T = {t : q_t ≠ 0}`` scores every document by the
dot product

    score(d) = Σ_{t ∈ T} q_t · D[d, t]

reading only the posting lists of the query's terms (``D[:, T] @ q_T``), so the cost grows with
the postings touched, not with N·V. LexLIP's vectors are unit-norm
(:mod:`clipforge.models.lexicon`), so this dot product is the cosine the ``lexlip`` objective
trains (its logits are score / τ). Saved as ``IDX/sparse.npz`` (scipy's ``save_npz``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .deps import require


def top_k(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` best ``(scores, ids)``, best first; ties broken by the lower id."""
    k = min(k, len(scores))
    if k <= 0:
        return np.zeros(0, np.float32), np.zeros(0, np.int64)
    part = np.argpartition(-scores, k - 1)[:k] if k < len(scores) else np.arange(len(scores))
    order = np.lexsort((part, -scores[part]))
    ids = part[order]
    return scores[ids].astype(np.float32), ids.astype(np.int64)


class SparseIndex:
    """An inverted index over the rows of a sparse document matrix [N, V]."""

    def __init__(self, documents):
        sparse = require("scipy.sparse")
        self.postings = sparse.csc_matrix(documents, dtype=np.float32)  # [N, V], column = term
        self.postings.sort_indices()
        self._rows = None

    @property
    def count(self) -> int:
        return self.postings.shape[0]

    @property
    def vocab_size(self) -> int:
        return self.postings.shape[1]

    def _as_terms(self, query) -> tuple[np.ndarray, np.ndarray]:
        sparse = require("scipy.sparse")
        if sparse.issparse(query):
            row = sparse.csr_matrix(query)
            return row.indices.astype(np.int64), row.data.astype(np.float32)
        query = np.asarray(query, dtype=np.float32).ravel()
        if query.shape[0] != self.vocab_size:
            raise ValueError(
                f"sparse query has {query.shape[0]} terms, index has {self.vocab_size}"
            )
        terms = np.flatnonzero(query)
        return terms, query[terms]

    def scores(self, query) -> np.ndarray:
        """Dot product of ``query`` ([V] dense, or a 1×V sparse row) with every document [N]."""
        terms, weights = self._as_terms(query)
        if len(terms) == 0:
            return np.zeros(self.count, np.float32)
        return np.asarray(self.postings[:, terms] @ weights, dtype=np.float32).ravel()

    def search(self, query, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top ``k`` ``(scores, ids)``; documents sharing no term with the query are left out."""
        scores = self.scores(query)
        best_scores, ids = top_k(scores, k)
        keep = best_scores > 0
        return best_scores[keep], ids[keep]

    def document(self, row: int):
        """Row ``row`` as a 1×V CSR matrix (for "more like this")."""
        if self._rows is None:
            self._rows = self.postings.tocsr()
        return self._rows[row]

    def save(self, path: str | Path) -> None:
        require("scipy.sparse").save_npz(str(path), self.postings)

    @classmethod
    def load(cls, path: str | Path) -> SparseIndex:
        return cls(require("scipy.sparse").load_npz(str(path)))
