"""Image features of a labelled data set, encoded once per (model, data spec) and kept on disk.

A linear probe fits dozens of classifiers on the same frozen features, and is rerun with other
seeds, shot counts or splits; CLIP_benchmark keeps them under ``--feature_root``. Here the
cache lives in ``$CLIPFORGE_CACHE/features`` (default ``~/.cache/clipforge/features``) as one
``.pt`` file per entry::

    features/<model fingerprint>/<data spec, made a file name>-<hash of the key>.pt

The model fingerprint is a hash of its weights (every tensor of the state dict), its image
preprocessing and the encoding dtype, so a retrained or converted model never reads another's
features, whatever its path. The data side is the spec string: a data set changed on disk under
the same spec is not noticed (delete the folder, or pass another ``--cache-dir``). Entries are
written atomically and checked against their full key when read.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..common.files import atomic_write
from ..data.sources.base import MapSource, StreamSource
from ..data.transforms import ImageTransform
from .embedding import EncodeConfig, encode_images

FORMAT_VERSION = 1


def default_cache_dir() -> Path:
    """``$CLIPFORGE_CACHE/features``: the same root as the built-in data sets' caches."""
    root = os.environ.get("CLIPFORGE_CACHE") or Path.home() / ".cache" / "clipforge"
    return Path(root) / "features"


@dataclass
class LabelledFeatures:
    """A data set's decodable, labelled images as features [N, D] and labels [N]."""

    features: torch.Tensor  # float32, L2-normalised (CLIP_benchmark's ``normalize=True``)
    labels: torch.Tensor  # long, indices into the source's class names
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (key, reason)
    from_cache: bool = False


def model_fingerprint(
    model: torch.nn.Module, preprocess: ImageTransform, encode: EncodeConfig
) -> str:
    """sha256 over parameter names, shapes, dtypes and bytes, the preprocess config and the
    autocast dtype (16 hex digits); about a second per GB of weights."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        value = tensor.detach().cpu().contiguous().reshape(-1)
        digest.update(f"{name}:{tuple(tensor.shape)}:{value.dtype};".encode())
        digest.update(value.view(torch.uint8).numpy().tobytes() if value.numel() else b"")
    digest.update(repr(getattr(preprocess, "preprocess", preprocess)).encode())
    digest.update(repr(encode.autocast_dtype).encode())
    return digest.hexdigest()[:16]


def entry_path(cache_dir: Path, fingerprint: str, spec: str) -> Path:
    readable = re.sub(r"[^A-Za-z0-9._=-]+", "_", spec).strip("_")[:80] or "data"
    key_hash = hashlib.sha256(f"{fingerprint}\n{spec}".encode()).hexdigest()[:12]
    return cache_dir / fingerprint / f"{readable}-{key_hash}.pt"


def encode_labelled(
    model, preprocess: ImageTransform, source: MapSource | StreamSource, encode: EncodeConfig
) -> LabelledFeatures:
    """Encode ``source``; records without a label are skipped like undecodable ones."""
    encoded = encode_images(model, preprocess, source, encode)
    rows = [row for row, label in enumerate(encoded.labels) if label is not None]
    skipped = encoded.skipped + [
        (encoded.keys[row], "no label") for row, label in enumerate(encoded.labels) if label is None
    ]
    labels = torch.tensor([encoded.labels[row] for row in rows], dtype=torch.long)
    return LabelledFeatures(encoded.embeds[rows], labels, skipped)


def cached_features(
    model,
    preprocess: ImageTransform,
    source: MapSource | StreamSource,
    spec: str | None,
    encode: EncodeConfig,
    cache_dir: Path | None,
    fingerprint: str | None = None,
) -> LabelledFeatures:
    """The features of ``source`` (named by ``spec``), from the cache when there; encoded and
    stored otherwise. ``cache_dir`` or ``spec`` None: always encoded, nothing stored."""
    if cache_dir is None or spec is None:
        return encode_labelled(model, preprocess, source, encode)
    fingerprint = fingerprint or model_fingerprint(model, preprocess, encode)
    path = entry_path(Path(cache_dir), fingerprint, spec)
    key = {"version": FORMAT_VERSION, "model": fingerprint, "data": spec}
    if path.is_file():
        stored = torch.load(path, map_location="cpu", weights_only=True)
        if stored.get("key") == key:
            return LabelledFeatures(
                stored["features"],
                stored["labels"],
                [tuple(pair) for pair in stored["skipped"]],
                from_cache=True,
            )
    fresh = encode_labelled(model, preprocess, source, encode)
    entry = {
        "key": key,
        "features": fresh.features,
        "labels": fresh.labels,
        "skipped": [list(pair) for pair in fresh.skipped],
    }
    atomic_write(path, lambda tmp: torch.save(entry, tmp))
    return fresh
