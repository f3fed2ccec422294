"""An opened index directory: dense, sparse and hybrid search with metadata.

``Searcher.open(IDX)`` loads the FAISS index, the metadata and (if present) the inverted index,
and the model that made the vectors (``index_info.json["model"]``, or ``model=`` to override), so
text and image queries can be embedded. Search calls are thread-safe: FAISS searches run in
parallel, the model forward holds a lock (:class:`.query.QueryEncoder`).

Every kind of query (text, image, item, composed; dense, sparse, hybrid) is checked in one place
(``_check``) and runs through :meth:`Searcher.search`, or :meth:`Searcher.submit` for async
callers such as the server; a server's texts all share one micro-batcher (:mod:`.batching`).

Result ids are row numbers of the index (0 … N−1); ``item(id)`` gives a row's metadata.
"""

from __future__ import annotations

import json
from concurrent.futures import Future
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..common.vectors import l2_normalize
from .build import INDEX_INFO, METADATA
from .deps import require
from .hybrid import fuse
from .index import set_search_params
from .query import Query, QueryEncoder, compose
from .sparse import SparseIndex, top_k

if TYPE_CHECKING:
    from concurrent.futures import ThreadPoolExecutor

    from .batching import MicroBatcher

MODES = ("dense", "sparse", "hybrid")


@dataclass
class Hit:
    id: int
    score: float
    key: str
    caption: str
    image_rel: str  # path under the index's image root ("" if none)

    def to_dict(self) -> dict:
        return asdict(self)


class Searcher:
    def __init__(
        self,
        dense_index,
        metadata: pa.Table,
        info: dict,
        sparse_index: SparseIndex | None = None,
        encoder: QueryEncoder | None = None,
    ):
        if metadata.num_rows != dense_index.ntotal:
            raise ValueError(
                f"metadata has {metadata.num_rows} rows but the index {dense_index.ntotal} vectors"
            )
        self.dense_index, self.info = dense_index, info
        self.sparse_index, self.encoder = sparse_index, encoder
        self._keys = metadata.column("key").combine_chunks()
        self._captions = metadata.column("caption").combine_chunks()
        names = metadata.column_names
        self._image_rel = (
            metadata.column("image_rel").combine_chunks()
            if "image_rel" in names
            else pa.array([""] * metadata.num_rows)
        )
        self._extra = [n for n in names if n not in ("key", "caption", "image_rel")]
        self._metadata = metadata
        # the one MicroBatcher, once enable_batching() ran: (text, k) → hits, or the vector at k=0
        self._text_searches: MicroBatcher[tuple[str, int], Any] | None = None
        self._workers: ThreadPoolExecutor | None = None  # its thread pool for other queries
        if info.get("search_params"):
            set_search_params(dense_index, info["search_params"])
        if "IVF" in info.get("index_type", ""):
            require("faiss").extract_index_ivf(dense_index).make_direct_map()

    @classmethod
    def open(
        cls, index_dir: str | Path, model: str | None = None, load_model: bool = True
    ) -> Searcher:
        faiss = require("faiss")
        index_dir = Path(index_dir)
        info_path = index_dir / INDEX_INFO
        if not info_path.is_file():
            raise FileNotFoundError(
                f"{index_dir}: not an index directory (no {INDEX_INFO}; "
                "run `clipforge index` first)"
            )
        info = json.loads(info_path.read_text())
        dense_index = faiss.read_index(str(index_dir / info["index_file"]))
        metadata = pq.read_table(index_dir / METADATA)
        sparse_index = None
        if info.get("sparse"):
            sparse_index = SparseIndex.load(index_dir / info["sparse"]["file"])
        encoder = None
        model_ref = model or info.get("model")
        if load_model and model_ref:
            encoder = load_query_encoder(model_ref, info)
        return cls(dense_index, metadata, info, sparse_index, encoder)

    # -- facts ------------------------------------------------------------------------------

    @property
    def count(self) -> int:
        return self.dense_index.ntotal

    @property
    def dim(self) -> int:
        return self.dense_index.d

    def modes(self) -> list[str]:
        lexical = self.sparse_index is not None and (
            self.encoder is None or self.encoder.sparse_encoder is not None
        )
        return list(MODES) if lexical else ["dense"]

    def item(self, item_id: int) -> dict:
        self._check_id(item_id)
        row = {name: self._metadata.column(name)[item_id].as_py() for name in self._extra}
        if "id" in row:
            row["record_id"] = row.pop("id")  # position in the source, not the index row
        return {
            **row,
            "id": int(item_id),
            "key": self._keys[item_id].as_py(),
            "caption": self._captions[item_id].as_py(),
            "image_rel": self._image_rel[item_id].as_py(),
        }

    def column(self, name: str) -> pa.Array:
        """A metadata column as one Arrow array (``image_rel`` is always there, maybe empty)."""
        if name == "image_rel":
            return self._image_rel
        return (
            self._metadata.column(name).combine_chunks()
            if name in self._metadata.column_names
            else pa.array([""] * self.count)
        )

    def vector(self, item_id: int) -> np.ndarray:
        """The indexed vector of ``item_id`` [D] (PQ indexes give their approximation)."""
        self._check_id(item_id)
        return self.dense_index.reconstruct(int(item_id))

    def _check_id(self, item_id: int) -> None:
        if not 0 <= int(item_id) < self.count:
            raise KeyError(f"no item {item_id}; ids run from 0 to {self.count - 1}")

    def hits(self, scores, ids) -> list[Hit]:
        ids = [int(i) for i in ids if i >= 0]
        keys, captions = self._keys.take(ids).to_pylist(), self._captions.take(ids).to_pylist()
        rel = self._image_rel.take(ids).to_pylist()
        return [
            Hit(i, float(s), k, c, r) for i, s, k, c, r in zip(ids, scores, keys, captions, rel)
        ]

    # -- search -----------------------------------------------------------------------------

    def search_vectors(self, vectors: np.ndarray, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """Batched dense search: ``vectors`` [Q, D] → scores [Q, k], ids [Q, k] (−1 = none)."""
        vectors = np.atleast_2d(vectors)
        if vectors.shape[1] != self.dim:
            raise ValueError(
                f"query vectors have dimension {vectors.shape[1]}, the index {self.dim}"
            )
        return self.dense_index.search(l2_normalize(vectors), min(k, self.count))

    def search_vector(self, vector: np.ndarray, k: int = 10) -> list[Hit]:
        scores, ids = self.search_vectors(vector, k)
        return self.hits(scores[0], ids[0])

    def search_sparse_vector(self, sparse_query, k: int = 10) -> list[Hit]:
        return self.hits(*self._need_sparse().search(sparse_query, k))

    def search_hybrid(
        self,
        dense_query: np.ndarray,
        sparse_query,
        k: int = 10,
        weight: float = 0.5,
        candidates: int = 100,
    ) -> list[Hit]:
        """Fused ranking (see :mod:`.hybrid`) over the union of both top-``candidates`` lists."""
        sparse_index = self._need_sparse()
        pool = max(k, candidates)
        _, dense_ids = self.search_vectors(dense_query, pool)
        all_sparse = sparse_index.scores(sparse_query)
        best, sparse_ids = top_k(all_sparse, pool)
        sparse_ids = sparse_ids[best > 0]
        ids = np.union1d(dense_ids[0][dense_ids[0] >= 0], sparse_ids)
        stored = np.stack([self.dense_index.reconstruct(int(i)) for i in ids])
        dense_scores = l2_normalize(stored) @ l2_normalize(np.asarray(dense_query).ravel())
        return self.hits(*fuse(ids, dense_scores, all_sparse[ids], weight, k))

    def search_texts(self, requests: list[tuple[str, int]]) -> list:
        """Many ``(text, k)`` at once, one forward and one FAISS call: each gives its dense hits,
        or its normalised embedding [D] when ``k`` is 0 (the text part of a composed query)."""
        vectors = l2_normalize(self._need_encoder().texts([text for text, _ in requests]))
        wanted = [row for row, (_, k) in enumerate(requests) if k > 0]
        results: list = list(vectors)
        if wanted:
            scores, ids = self.search_vectors(vectors[wanted], max(requests[r][1] for r in wanted))
            for row, row_scores, row_ids in zip(wanted, scores, ids):
                k = requests[row][1]
                results[row] = self.hits(row_scores[:k], row_ids[:k])
        return results

    def enable_batching(self, max_batch: int = 32, workers: int = 4) -> None:
        """For servers: every text a query needs goes through ONE :class:`.batching.MicroBatcher`
        (concurrent plain text searches share a forward and a FAISS call; composed queries'
        text parts share the forward), and :meth:`submit` runs other queries on ``workers``
        threads."""
        if self._text_searches is not None:
            return
        from .batching import MicroBatcher, started_pool

        self._workers = started_pool(workers, "search")
        if self.encoder is not None:
            self._text_searches = MicroBatcher(self.search_texts, max_batch, name="text-search")

    def submit_text_search(self, text: str, k: int = 10) -> Future:
        """A future of the dense hits for ``text``, batched with concurrent callers (after
        :meth:`enable_batching`)."""
        if self._text_searches is None:
            raise RuntimeError("submit_text_search needs enable_batching() first")
        return self._text_searches.submit((text, k))

    def submit(
        self, query: Query, k: int = 10, mode: str = "dense", hybrid_weight: float = 0.5
    ) -> Future:
        """A future of :meth:`search`'s hits, for async callers (after :meth:`enable_batching`):
        plain text searches join the text batch, every other query runs on a worker thread.
        Bad queries raise here, before anything is queued."""
        if self._workers is None:
            raise RuntimeError("submit needs enable_batching() first")
        self._check(query, mode)
        if (text := self._plain_text(query, mode)) is not None:
            return self.submit_text_search(text, k)
        return self._workers.submit(self._search_checked, query, k, mode, hybrid_weight)

    def search(
        self, query: Query, k: int = 10, mode: str = "dense", hybrid_weight: float = 0.5
    ) -> list[Hit]:
        """Embed ``query`` with the index's model and search in ``mode``."""
        self._check(query, mode)
        return self._search_checked(query, k, mode, hybrid_weight)

    def _plain_text(self, query: Query, mode: str) -> str | None:
        """The query's text when it is a plain dense text search that joins the text batch."""
        if (
            self._text_searches is not None
            and mode == "dense"
            and query.image is None
            and query.item_id is None
        ):
            return query.text
        return None

    def _check(self, query: Query, mode: str) -> None:
        """Every reason a query cannot run (the one validation path of every kind of query)."""
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        if query.item_id is not None:
            self._check_id(query.item_id)
        if mode != "dense" and mode not in self.modes():
            raise ValueError("this index has no sparse (lexical) vectors; use mode dense")
        if query.text is not None or query.image is not None:
            self._need_encoder()

    def _need_encoder(self) -> QueryEncoder:
        if self.encoder is None:
            raise ValueError(
                "no model loaded to embed the query (index_info.json names none; pass --model)"
            )
        return self.encoder

    def _need_sparse(self) -> SparseIndex:
        if self.sparse_index is None:
            raise ValueError("this index has no sparse (lexical) vectors; use mode dense")
        return self.sparse_index

    def _search_checked(self, query: Query, k: int, mode: str, hybrid_weight: float) -> list[Hit]:
        if (text := self._plain_text(query, mode)) is not None:
            return self.submit_text_search(text, k).result()
        if mode == "dense":
            return self.search_vector(self._dense_query(query), k)
        if mode == "sparse":
            return self.search_sparse_vector(self._sparse_query(query), k)
        dense = self._dense_query(query)
        return self.search_hybrid(dense, self._sparse_query(query), k, hybrid_weight)

    def _text_vector(self, text: str) -> np.ndarray:
        """Normalised embedding [D] of ``text``, through the text batch when serving."""
        if self._text_searches is not None:
            return self._text_searches((text, 0))
        return l2_normalize(self._need_encoder().texts([text])[0])

    def _dense_query(self, query: Query) -> np.ndarray:
        """The query's dense vector [D]: text, image or item alone, or composed (:mod:`.query`)."""
        if query.item_id is not None:
            base = self.vector(query.item_id)
        elif query.image is not None:
            base = self._need_encoder().image(query.image)
        else:
            assert query.text is not None  # Query.__post_init__: text, image or item
            return self._text_vector(query.text)
        if query.text is None:
            return l2_normalize(base)
        neutral = self._text_vector(query.neutral_text) if query.text_delta else None
        return compose(base, self._text_vector(query.text), query.text_weight, neutral)

    def _sparse_query(self, query: Query):
        """Lexical query: the item's or image's vector + λ × the text's (a bag-of-words union)."""
        parts: list[np.ndarray] = []
        if query.item_id is not None:
            parts.append(self._need_sparse().document(query.item_id).toarray().ravel())
        elif query.image is not None:
            parts.append(_lexical(self._need_encoder().image_sparse(query.image)))
        if query.text is not None:
            text_vector = _lexical(self._need_encoder().text_sparse(query.text))
            parts.append(text_vector * (query.text_weight if parts else 1.0))
        return np.sum(parts, axis=0)


def _lexical(vector: np.ndarray | None) -> np.ndarray:
    """A query's lexical vector; None (a model without lexicon heads) is refused by ``_check``
    through :meth:`Searcher.modes` before any query gets here."""
    if vector is None:
        raise ValueError("the model has no lexicon heads for sparse queries; use mode dense")
    return vector


def load_query_encoder(model_ref: str, info: dict) -> QueryEncoder:
    from ..loading import load, resolve_model_dir
    from ..models import MODELS
    from .lexicon import load_lexicon_heads

    if not Path(model_ref).exists() and model_ref not in MODELS:
        raise FileNotFoundError(
            f"{model_ref}: the model this index was built with is not there "
            "(pass --model to use another)"
        )
    model, preprocess, tokenizer = load(model_ref)
    if model.config.embed_dim != info["dim"]:
        raise ValueError(
            f"{model_ref}: model embeds in {model.config.embed_dim} dimensions, the "
            f"index holds {info['dim']}"
        )
    heads = None
    if info.get("sparse") and Path(model_ref).exists():
        heads = load_lexicon_heads(resolve_model_dir(model_ref), model)
    return QueryEncoder(model, preprocess, tokenizer, heads)
