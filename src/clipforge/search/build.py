"""``clipforge index``: an embedding directory → a servable index directory.

The embedding directory is ``clipforge embed``'s or a ``clip-retrieval inference`` output
(:mod:`.inference_dir`); either way index id ``i`` is metadata row ``i``.

::

    IDX/image.index        FAISS index of the chosen modality's vectors (see :mod:`.index`)
    IDX/sparse.npz         inverted index of the lexical vectors, when ``embed`` wrote them
    IDX/metadata.parquet   the embedding metadata, row i = vector i, plus ``image_rel``: the
                           image's path under ``image_root`` ("" when it has none there)
    IDX/index_info.json    index type, N, dim, build time, memory, recall@10 and its queries,
                           the model that made the vectors, image_root

Recall queries: for an image index built from a directory that also holds caption embeddings,
1000 sampled caption embeddings — the real query distribution of text→image search and not in
the index. Otherwise 1000 sampled indexed vectors (each finds itself: recall reads a little high).

Image root: thumbnails that ``embed`` exported (``EMB/images``) when most rows have one, else
the deepest folder holding every image file the records name, or ``--image-root``. A root that
would expose the file system (``/``, the home folder or above, a top-level folder) is never
recorded: images spread over several such trees are listed by row instead (``image_files:
"by-row"``), and an explicit one is an error (see :mod:`.images`). ``serve`` sends only files
that rows list.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..common.files import atomic_write, atomic_write_text
from .deps import require
from .images import BY_ROW, check_image_root, common_image_root
from .index import IndexConfig, build_dense_index
from .inference_dir import open_embeddings
from .shards import IMAGES_DIR
from .sparse import SparseIndex

INDEX_INFO, METADATA = "index_info.json", "metadata.parquet"


@dataclass
class BuildConfig:
    embeddings: Path
    out: Path
    modality: str = "image"  # which vectors to index: "image" | "text"
    index: IndexConfig = field(default_factory=IndexConfig)
    image_root: Path | None = None  # override the folder images are served from
    progress: bool = True  # a bar on stderr while vectors are added (--no-progress: off)
    model: str | None = None  # the model that made the vectors (default: the one embed recorded)


def rss_bytes() -> int:
    """Resident memory of this process (Linux /proc; 0 elsewhere)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def choose_image_root(embeddings: Path, metadata: pa.Table) -> tuple[Path | None, list[str]]:
    """(image root, each row's path under it) — see the module doc. Root None with non-empty
    paths means rows are listed by row (``"{row}/{file name}"``)."""
    thumbnails = metadata.column("thumbnail").to_pylist()
    paths = metadata.column("image_path").to_pylist()
    if thumbnails and sum(bool(t) for t in thumbnails) * 2 >= len(thumbnails):
        prefix = IMAGES_DIR + "/"
        return (embeddings / IMAGES_DIR).resolve(), [
            t[len(prefix) :] if t.startswith(prefix) else "" for t in thumbnails
        ]
    return common_image_root(paths)


def given_image_root(root: Path, metadata: pa.Table) -> tuple[Path, list[str]]:
    """``--image-root``: refused when it exposes the file system or misses a listed image."""
    root = check_image_root(root)
    relative = []
    for path in metadata.column("image_path").to_pylist():
        if not (path and Path(path).is_absolute()):
            relative.append("")
            continue
        resolved = Path(path).resolve()
        if not resolved.is_relative_to(root):
            raise ValueError(
                f"--image-root {root} does not hold {path}; give the folder that holds every image"
            )
        relative.append(str(resolved.relative_to(root)))
    return root, relative


def build_index_dir(config: BuildConfig) -> dict:
    """Build every part of ``config.out``; returns the saved ``index_info.json`` content."""
    faiss = require("faiss")
    embeddings = open_embeddings(config.embeddings)  # clipforge's layout or clip-retrieval's
    if config.modality not in ("image", "text"):
        raise ValueError(f"modality must be image or text, got {config.modality!r}")
    model = str(config.model)
    if config.model and Path(config.model).exists():
        model = str(Path(config.model).resolve())  # serve may start from another folder
    elif config.model:
        from ..models import MODELS

        if config.model not in MODELS:
            raise FileNotFoundError(f"--model {config.model}: no such model directory or name")
    out = Path(config.out)
    metadata = embeddings.metadata()
    root: Path | None  # None: images served by row (several trees) or none
    if config.image_root is not None:  # checked before anything is written
        root, relative = given_image_root(Path(config.image_root), metadata)
    else:
        root, relative = choose_image_root(Path(config.embeddings), metadata)
    rss_before = rss_bytes()
    started = time.perf_counter()
    vectors = embeddings.dense(config.modality)
    if len(vectors) == 0:
        raise ValueError(f"{config.embeddings}: no {config.modality} embeddings to index")
    other = "text" if config.modality == "image" else "image"
    queries, query_source = None, f"{config.index.recall_queries} sampled indexed vectors"
    if embeddings.has(other):
        pool = embeddings.dense(other)
        rng = np.random.default_rng(config.index.seed)
        picked = np.sort(
            rng.choice(len(pool), min(len(pool), config.index.recall_queries), replace=False)
        )
        queries, query_source = (
            np.asarray(pool[picked]),
            f"{len(picked)} sampled {other} embeddings (not in the index)",
        )
    index, dense_info = build_dense_index(vectors, config.index, queries, config.progress)
    out.mkdir(parents=True, exist_ok=True)
    index_file = out / f"{config.modality}.index"
    atomic_write(index_file, lambda tmp: faiss.write_index(index, str(tmp)))
    rss_after = rss_bytes()
    del vectors

    metadata = metadata.append_column("image_rel", pa.array(relative, pa.string()))
    pq.write_table(metadata, out / METADATA)

    sparse_info = None
    sparse_kind = f"sparse_{config.modality}"
    if embeddings.has(sparse_kind):
        sparse_index = SparseIndex(embeddings.sparse(sparse_kind))
        sparse_index.save(out / "sparse.npz")
        sparse_info = {
            "file": "sparse.npz",
            "count": sparse_index.count,
            "vocab_size": sparse_index.vocab_size,
            "nonzeros": int(sparse_index.postings.nnz),
        }

    info = {
        "model": model if config.model else embeddings.info.get("model"),
        "embeddings": str(Path(config.embeddings).resolve()),
        "modality": config.modality,
        "index_file": index_file.name,
        "index_type": dense_info.index_key,
        "count": dense_info.count,
        "dim": dense_info.dim,
        "metric": dense_info.metric,
        "build_seconds": round(time.perf_counter() - started, 3),
        "index_bytes": index_file.stat().st_size,
        "estimated_bytes": dense_info.estimated_bytes,
        "rss_delta_bytes": max(0, rss_after - rss_before),
        "memory_budget_bytes": config.index.memory_budget,
        "search_params": dense_info.search_params,
        "recall_at_10": round(dense_info.recall_at_10, 4),
        "recall_queries": query_source,
        "recall_by_param": dense_info.recall_by_param,
        "target_recall": config.index.target_recall,
        "timings": {
            "train_seconds": round(dense_info.train_seconds, 3),
            "add_seconds": round(dense_info.add_seconds, 3),
            "tune_seconds": round(dense_info.tune_seconds, 3),
        },
        "image_root": str(root) if root is not None else None,
        "image_files": "root" if root is not None else (BY_ROW if any(relative) else None),
        "sparse": sparse_info,
        "index_config": asdict(config.index),
    }
    atomic_write_text(out / INDEX_INFO, json.dumps(info, indent=2))
    return info
