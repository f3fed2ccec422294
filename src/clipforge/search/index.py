"""The dense index: which FAISS index for how many vectors in how much memory (like autofaiss).

All vectors are L2-normalised and compared by inner product (= cosine similarity).

Choice (:func:`choose_index_key`), for ``N`` vectors of dimension ``D`` and a memory budget:

- ``Flat``             exact search, when ``N ≤ flat_max_count`` (50k) and ``4·N·D`` bytes fit;
- ``IVF{nlist},Flat``  inverted lists over k-means cells, ``nlist ≈ 4·√N`` (capped at N/39 so
                       every centroid gets the 39 training points FAISS asks for), when the raw
                       vectors (+ 8-byte ids) fit;
- ``IVF{nlist},PQ{m}np`` product-quantised codes of ``m`` bytes, the largest ``m`` dividing ``D``
                       (≤ D/2) that fits the budget, when raw vectors do not (``np``: no
                       polysemous training — 30× slower to train, only used for Hamming filters).

HNSW is not picked automatically (its build takes tens of minutes for 1M vectors on a few
cores), but any FAISS factory string can be forced with ``index_key``, e.g. ``"HNSW32,Flat"``.

IVF and PQ are trained on a random sample (``train_per_list`` vectors per list). The search
parameter (``nprobe``; ``efSearch`` for HNSW) is then tuned: the smallest value whose
recall@10 against exact search reaches ``target_recall`` on held-out queries, or, if none does
(PQ's quantisation error caps recall), the smallest within 0.005 of the best seen.
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass, field

import numpy as np
from tqdm.auto import tqdm

from ..common.vectors import l2_normalize as normalized
from .deps import require

_UNITS = {"": 1, "B": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3, "TB": 1024**4}


def parse_bytes(text: str | int) -> int:
    """``"2GB"`` → 2147483648 (binary units; ``"512MB"``, ``"1.5G"`` and plain numbers work)."""
    if isinstance(text, int):
        return text
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([KMGT]?)(I?B)?\s*", str(text).upper())
    if not match:
        raise ValueError(f"cannot read memory size {text!r}; write e.g. 2GB or 512MB")
    unit = match.group(2) + ("B" if match.group(2) else "")
    return int(float(match.group(1)) * _UNITS[unit])


@dataclass
class IndexConfig:
    memory_budget: int = 2 * 1024**3  # bytes the index may take in memory
    index_key: str | None = None  # force a FAISS factory string, e.g. "HNSW32,Flat"
    flat_max_count: int = 50_000  # exact search up to this many vectors
    target_recall: float = 0.95  # recall@10 the search parameter is tuned for
    recall_queries: int = 1000
    train_per_list: int = 32  # k-means training vectors per inverted list
    k: int = 10
    seed: int = 0


@dataclass
class DenseIndexInfo:
    index_key: str
    count: int
    dim: int
    metric: str = "inner_product"
    estimated_bytes: int = 0
    train_seconds: float = 0.0
    add_seconds: float = 0.0
    tune_seconds: float = 0.0
    search_params: dict = field(default_factory=dict)
    recall_at_10: float = 1.0
    recall_by_param: dict = field(default_factory=dict)
    recall_queries: int = 0


def inverted_lists(count: int) -> int:
    return max(1, min(round(4 * math.sqrt(count)), count // 39))


def pq_bytes(dim: int, per_vector: float) -> int | None:
    """Largest code size ``m`` (bytes) dividing ``dim``, ≤ dim/2, ≤ ``per_vector``; else None."""
    fitting = [m for m in range(1, dim // 2 + 1) if dim % m == 0 and m <= per_vector]
    return max(fitting) if fitting else None


def estimate_bytes(index_key: str, count: int, dim: int) -> int:
    """Memory of an index built from ``index_key`` (vectors, codes, ids, centroids, links)."""
    nlist = int(ivf.group(1)) if (ivf := re.search(r"IVF(\d+)", index_key)) else 0
    centroids = nlist * dim * 4
    if index_key == "Flat":
        return count * dim * 4
    if match := re.search(r"PQ(\d+)", index_key):
        return count * (int(match.group(1)) + 8) + centroids + 256 * dim * 4
    if match := re.match(r"HNSW(\d+)", index_key):
        return count * (dim * 4 + 2 * int(match.group(1)) * 4 + 8)
    return count * (dim * 4 + 8) + centroids


def choose_index_key(count: int, dim: int, config: IndexConfig) -> str:
    if config.index_key:
        return config.index_key
    budget = config.memory_budget
    if count <= config.flat_max_count and estimate_bytes("Flat", count, dim) <= budget:
        return "Flat"
    nlist = inverted_lists(count)
    ivf_flat = f"IVF{nlist},Flat"
    if estimate_bytes(ivf_flat, count, dim) <= budget:
        return ivf_flat
    per_vector = (budget - nlist * dim * 4 - 256 * dim * 4) / max(count, 1) - 8
    m = pq_bytes(dim, per_vector)
    if m is None:
        raise ValueError(
            f"memory budget {budget} bytes is too small for {count} vectors of "
            f"dimension {dim} (even 1-byte PQ codes need "
            f"{estimate_bytes(f'IVF{nlist},PQ1', count, dim)} bytes)"
        )
    return f"IVF{nlist},PQ{m}np"  # np: skip polysemous training (slow, unused here)


FACTORY_EXAMPLES = "e.g. Flat, IVF256,Flat, IVF256,PQ16np, HNSW32,Flat"
# 5040 = 2⁴·3²·5·7 is divisible by every usual PQ/OPQ/PCA size, so a key that fails on it is wrong
# whatever the data's dimension
_ANY_DIM = 5040


def make_index(index_key: str, dim: int):
    """An empty FAISS index from a factory string, or ValueError naming the string."""
    faiss = require("faiss")
    try:
        return faiss.index_factory(dim, index_key, faiss.METRIC_INNER_PRODUCT)
    except RuntimeError:
        raise ValueError(
            f"index key {index_key!r} is not a FAISS factory string for "
            f"{dim}-dimensional vectors ({FACTORY_EXAMPLES})"
        ) from None


def check_index_key(index_key: str) -> str:
    """``index_key`` if FAISS can parse it (checked before any data is read), else ValueError."""
    try:
        make_index(index_key, _ANY_DIM)
    except ValueError:
        raise ValueError(
            f"index key {index_key!r} is not a FAISS factory string ({FACTORY_EXAMPLES})"
        ) from None
    return index_key


def exact_neighbours(vectors: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """Ids [Q, k] of the true top-k by inner product (brute force, no copy of ``vectors``)."""
    faiss = require("faiss")
    _, ids = faiss.knn(queries, vectors, k, metric=faiss.METRIC_INNER_PRODUCT)
    return ids


def recall_at_k(found: np.ndarray, truth: np.ndarray) -> float:
    """Mean over queries of |found ∩ truth| / k, both [Q, k] id arrays."""
    k = truth.shape[1]
    hits = [len(set(f[f >= 0].tolist()) & set(t.tolist())) for f, t in zip(found, truth)]
    return float(np.mean(hits) / k) if hits else 1.0


def _parameter_name(index_key: str) -> str | None:
    if "IVF" in index_key:
        return "nprobe"
    if index_key.startswith("HNSW"):
        return "efSearch"
    return None


def set_search_params(index, params: dict) -> None:
    faiss = require("faiss")
    space = faiss.ParameterSpace()
    for name, value in params.items():
        space.set_index_parameter(index, name, value)


def build_dense_index(
    vectors: np.ndarray,
    config: IndexConfig,
    queries: np.ndarray | None = None,
    progress: bool = False,
):
    """Build, train, fill and tune an index over ``vectors`` [N, D] → ``(index, DenseIndexInfo)``.

    ``queries`` [Q, D] measure recall; without them ``recall_queries`` indexed vectors are
    sampled (each then finds itself, so recall reads slightly high). ``progress``: a tqdm bar
    on stderr over the vectors added (``clipforge index``; off with ``--no-progress``).
    """
    require("faiss")  # fail with the install hint before any work
    vectors = normalized(vectors)
    count, dim = vectors.shape
    key = choose_index_key(count, dim, config)
    info = DenseIndexInfo(key, count, dim, estimated_bytes=estimate_bytes(key, count, dim))
    rng = np.random.default_rng(config.seed)
    index = make_index(key, dim)
    started = time.perf_counter()
    if not index.is_trained:
        nlist = inverted_lists(count) if "IVF" in key else 1
        size = min(count, max(config.train_per_list * nlist, 256 * 39))
        sample = vectors[np.sort(rng.choice(count, size, replace=False))]
        index.train(sample)
    info.train_seconds = time.perf_counter() - started
    started = time.perf_counter()
    with tqdm(total=count, desc=f"index {key}", unit="vec", disable=not progress) as bar:
        for start in range(0, count, 65_536):
            index.add(vectors[start : start + 65_536])
            bar.update(len(vectors[start : start + 65_536]))
    info.add_seconds = time.perf_counter() - started
    started = time.perf_counter()
    if queries is None:
        picked = rng.choice(count, min(config.recall_queries, count), replace=False)
        queries = vectors[np.sort(picked)]
    queries = normalized(queries)[: config.recall_queries]
    info.recall_queries = len(queries)
    k = min(config.k, count)
    if len(queries) and k:
        truth = exact_neighbours(vectors, queries, k)
        info.search_params, info.recall_at_10, info.recall_by_param = _tune(
            index, key, queries, truth, config.target_recall
        )
    info.tune_seconds = time.perf_counter() - started
    return index, info


def _tune(index, key: str, queries: np.ndarray, truth: np.ndarray, target: float):
    name = _parameter_name(key)
    k = truth.shape[1]
    if name is None:
        return {}, recall_at_k(index.search(queries, k)[1], truth), {}
    if name == "nprobe":
        limit = require("faiss").extract_index_ivf(index).nlist
        values = [v for v in (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024) if v < limit] + [limit]
    else:
        values = [16, 32, 64, 128, 256, 512]
    tried: dict[int, float] = {}
    for value in values:
        set_search_params(index, {name: value})
        tried[value] = recall_at_k(index.search(queries, k)[1], truth)
        if tried[value] >= target:
            break
    best = max(tried.values())
    chosen = next(v for v, r in tried.items() if r >= min(target, best - 0.005))
    set_search_params(index, {name: chosen})
    return {name: chosen}, tried[chosen], {str(v): r for v, r in tried.items()}
