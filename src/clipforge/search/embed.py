"""``clipforge embed``: a data source → sharded embeddings + Parquet metadata, clip-retrieval style.

reader → mapper → writer: :mod:`.reader` cuts the source into fixed shards and tags rows, the
data loader decodes and batches them (bad records skipped and listed), :class:`EmbeddingMapper`
runs the model (``torch.no_grad``, eval mode), :func:`.shards.write_shard` writes each finished
shard atomically. A restarted run keeps every shard whose files all exist and recomputes the rest;
``embed_config.json`` guards against resuming with a different model, data or shard size.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from ..data.loader import LoaderConfig, build_loader
from ..data.sources import open_source
from ..data.sources.base import MapSource, StreamSource
from ..loading import load, resolve_model_dir
from ..models import MODELS
from .deps import require
from .lexicon import SparseEncoder, load_lexicon_heads
from .reader import RowTag, TaggedShard, iter_shards
from .shards import (
    CONFIG_FILE,
    INFO_FILE,
    KINDS,
    ShardData,
    atomic_write_text,
    merge_skipped,
    shard_done,
    shard_indices,
    shard_path,
    write_shard,
)

MODALITIES = ("image", "text", "both")


@dataclass
class EmbedConfig:
    model: str  # run dir, checkpoint, model dir or registered name
    data: str  # data spec, e.g. "builtin:emoji?split=all"
    out: Path
    modality: str = "both"  # "image" | "text" | "both"
    float16: bool = False  # store shards as float16 (half the disk, ~1e-3 error)
    batch_size: int = 64
    workers: int = 2
    shard_size: int = 10_000  # records per shard (before skipping bad ones)
    thumbnails: bool = True  # write images/ thumbnails for records without an image file
    device: str = "cpu"

    def __post_init__(self):
        self.out = Path(self.out)
        if self.modality not in MODALITIES:
            raise ValueError(f"modality must be one of {MODALITIES}, got {self.modality!r}")
        if self.shard_size < 1 or self.batch_size < 1:
            raise ValueError("shard_size and batch_size must be positive")


@dataclass
class EmbedResult:
    out: Path
    count: int  # vectors written, all shards
    skipped: int  # bad records, all shards
    computed_shards: list[int] = field(default_factory=list)
    reused_shards: list[int] = field(default_factory=list)


class EmbeddingMapper:
    """Batch → normalised embeddings (and lexical vectors when a sparse encoder is given)."""

    def __init__(
        self, model, modality: str, sparse_encoder: SparseEncoder | None, device: str = "cpu"
    ):
        self.model, self.modality, self.sparse_encoder = model, modality, sparse_encoder
        self.device = device

    @torch.no_grad()
    def __call__(self, images: torch.Tensor, text: torch.Tensor) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        sparse = self.sparse_encoder
        tokens = sparse is not None
        if self.modality in ("image", "both"):
            result = self.model.encode_image(
                images.to(self.device), normalize=True, return_tokens=tokens
            )
            embeds = result[0] if tokens else result
            out["image"] = embeds.float().cpu().numpy()
            if sparse is not None:
                out["sparse_image"] = sparse.encode_image_sparse(result[1]).float().cpu().numpy()
        if self.modality in ("text", "both"):
            result = self.model.encode_text(
                text.to(self.device), normalize=True, return_tokens=tokens
            )
            embeds = result[0] if tokens else result
            out["text"] = embeds.float().cpu().numpy()
            if sparse is not None:
                out["sparse_text"] = (
                    sparse.encode_text_sparse(result[1], result[2]).float().cpu().numpy()
                )
        return out


def shard_kinds(modality: str, sparse: bool) -> list[str]:
    dense = ["image", "text"] if modality == "both" else [modality]
    return [*dense, *(f"sparse_{kind}" for kind in dense if sparse), "skipped", "metadata"]


def _check_resume(out: Path, settings: dict) -> None:
    path = out / CONFIG_FILE
    if path.exists():
        previous = json.loads(path.read_text())
        changed = {k: (previous.get(k), v) for k, v in settings.items() if previous.get(k) != v}
        if changed:
            raise ValueError(
                f"{out}: holds embeddings made with other settings {changed} "
                "(old, new); use a new --out directory or delete this one"
            )
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(settings, indent=2))
    for stale in out.glob("*/.tmp-*"):  # left by a run killed mid-write
        stale.unlink()


def embed(
    config: EmbedConfig,
    source: MapSource | StreamSource | None = None,
    sparse_encoder: SparseEncoder | None = None,
    progress: bool = True,
) -> EmbedResult:
    """Embed ``config.data`` (or ``source``) into ``config.out``; resumable, see module doc."""
    model, preprocess, tokenizer = load(config.model, device=config.device)
    if tokenizer is None:
        raise ValueError(f"{config.model}: the model has no tokenizer files (tokenizer.json)")
    model_ref = config.model
    if not (config.model in MODELS and not Path(config.model).exists()):
        model_ref = str(resolve_model_dir(config.model).resolve())
        if sparse_encoder is None:
            sparse_encoder = load_lexicon_heads(model_ref, model)
    if source is None:
        # streams are read once, in order: shard i must be the same records on every run
        source = open_source(config.data, shuffle_buffer=0, resampled=False)
    sparse = sparse_encoder is not None
    settings = {
        "model": model_ref,
        "data": config.data,
        "modality": config.modality,
        "shard_size": config.shard_size,
        "float16": config.float16,
        "sparse": sparse,
    }
    _check_resume(config.out, settings)
    kinds = shard_kinds(config.modality, sparse)
    mapper = EmbeddingMapper(model, config.modality, sparse_encoder, config.device)
    loader_config = LoaderConfig(
        batch_size=config.batch_size,
        workers=config.workers,
        shuffle=False,
        drop_last=False,
        caption_choice="first",
    )
    total = len(source) if isinstance(source, MapSource) else None
    done = {i for i in shard_indices(config.out) if shard_done(config.out, i, kinds)}
    result = EmbedResult(config.out, 0, 0)
    bar = tqdm(total=total, desc="embed", unit="rec", disable=not progress)
    for shard in iter_shards(source, config.shard_size, skip=done):
        if shard.index in done:
            result.reused_shards.append(shard.index)
            bar.update(shard.length)
            continue
        tagged = TaggedShard(shard, config.out, config.thumbnails)
        loader = build_loader(tagged, preprocess, tokenizer, loader_config)
        data = _run_shard(loader, mapper, bar)
        write_shard(
            config.out, shard.index, _as_shard(data, config.float16, kinds, model.config.embed_dim)
        )
        result.computed_shards.append(shard.index)
    bar.close()
    return _finish(config, result, model, kinds)


def _run_shard(loader, mapper: EmbeddingMapper, bar) -> dict:
    rows: dict[str, list] = {"tags": [], "captions": [], "skipped": []}
    for batch in loader:
        for key, reason in batch.skipped:
            rows["skipped"].append((RowTag.decode(key).key, reason))
        bar.update(len(batch.keys) + len(batch.skipped))
        if not batch.keys:
            continue
        rows["tags"].extend(RowTag.decode(key) for key in batch.keys)
        rows["captions"].extend(batch.captions)
        for kind, values in mapper(batch.images, batch.text).items():
            rows.setdefault(kind, []).append(values)
    return rows


def _as_shard(rows: dict, float16: bool, kinds: list[str], dim: int) -> ShardData:
    tags = rows["tags"]
    shard = ShardData(
        [t.id for t in tags],
        [t.key for t in tags],
        rows["captions"],
        [t.image_path for t in tags],
        [t.thumbnail for t in tags],
        skipped=rows["skipped"],
    )
    for kind in kinds:
        if kind in ("image", "text"):
            parts = rows.get(kind, [])
            array = np.concatenate(parts) if parts else np.zeros((0, dim), np.float32)
            setattr(shard, kind, array.astype(np.float16 if float16 else np.float32))
        elif kind.startswith("sparse_"):
            sparse = require("scipy.sparse")
            parts = rows.get(kind, [])
            matrix = (
                sparse.csr_matrix(np.concatenate(parts))
                if parts
                else sparse.csr_matrix((0, 0), dtype=np.float32)
            )
            setattr(shard, kind, matrix.astype(np.float32))
    return shard


def _finish(config: EmbedConfig, result: EmbedResult, model, kinds: list[str]) -> EmbedResult:
    import pyarrow.parquet as pq

    indices = sorted(result.computed_shards + result.reused_shards)
    result.count = sum(
        pq.ParquetFile(shard_path(config.out, "metadata", i)).metadata.num_rows for i in indices
    )
    result.skipped = merge_skipped(config.out, indices)
    dims = {kind: model.config.embed_dim for kind in kinds if kind in ("image", "text")}
    for kind in kinds:
        if kind.startswith("sparse_") and indices:
            sparse = require("scipy.sparse")
            dims[kind] = max(
                int(sparse.load_npz(shard_path(config.out, kind, i)).shape[1]) for i in indices
            )
    has_thumbnails = (config.out / "images").is_dir()
    info = {
        "model": json.loads((config.out / CONFIG_FILE).read_text())["model"],
        "data": config.data,
        "modality": config.modality,
        "dims": dims,
        "count": result.count,
        "skipped": result.skipped,
        "shards": indices,
        "shard_size": config.shard_size,
        "float16": config.float16,
        "kinds": [k for k in kinds if k in KINDS and k not in ("skipped", "metadata")],
        "thumbnails_dir": "images" if has_thumbnails else None,
        "embed_config": {
            k: str(v) if isinstance(v, Path) else v for k, v in asdict(config).items()
        },
    }
    atomic_write_text(config.out / INFO_FILE, json.dumps(info, indent=2))
    return result
