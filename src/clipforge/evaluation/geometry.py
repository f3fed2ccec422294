"""The geometry of a model's joint embedding space, measured on image-text pairs.

Metrics (embeddings are the L2-normalised outputs of the two towers; texts are every caption of
every captioned image, pairs are (image, each of its captions)):

``modality_gap``
    ‖mean image − mean text‖₂ (Liang et al. 2022), the definition retrieval and ``refine`` use
    (:func:`.metrics.modality_gap`).
``alignment``
    E over positive pairs of ‖f(x) − g(y)‖², Wang & Isola 2020 ("Understanding contrastive
    representation learning through alignment and uniformity"), α = 2. 0 when each caption
    embeds onto its image; 4 when antipodal.
``uniformity_image`` / ``uniformity_text``
    log E over distinct pairs (i < j) of one modality of exp(−t‖u_i − u_j‖²), t = 2 (Wang &
    Isola); −t·4 = −8 for two antipodal points, 0 for a collapsed set, lower = more uniform.
    ``uniformity`` is the mean of the two, the form of their loss ((U(x) + U(y)) / 2). Computed
    on at most ``max_points`` embeddings of each modality (drawn with ``seed``): the cost is
    quadratic.
``effective_rank_image`` / ``effective_rank_text`` / ``effective_rank``
    Roy & Vetterli 2007: exp(H(p)) with p_k = σ_k / Σ σ the normalised singular values of the
    (uncentred) embedding matrix [N, D] — k for k orthonormal vectors, 1 for a collapsed set.
    ``effective_rank`` is that of the images and texts stacked: the dimensions the shared space
    uses.

The optional plot (``--plot PNG``) is a 2-D PCA of images and texts together, see
:mod:`.projection`.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..data.sources.base import MapSource, StreamSource
from ..data.transforms import ImageTransform
from .embedding import EncodeConfig, encode_images, encode_texts
from .metrics import modality_gap
from .retrieval import caption_pairs

TASK = "geometry"


def alignment(
    image_embeds: torch.Tensor, text_embeds: torch.Tensor, text_image_index: torch.Tensor
) -> float:
    """Mean ‖image[text_image_index[m]] − text[m]‖² over the M texts; [N, D], [M, D], [M]."""
    difference = image_embeds.double()[text_image_index.long()] - text_embeds.double()
    return difference.square().sum(dim=1).mean().item()


def uniformity(embeds: torch.Tensor, t: float = 2.0, block_size: int = 1024) -> float:
    """log mean_{i<j} exp(−t‖e_i − e_j‖²) over embeds [N, D] (N ≥ 2), ``block_size`` rows at a
    time with a running log-sum-exp, so memory is O(block × N)."""
    count = embeds.shape[0]
    if count < 2:
        raise ValueError("uniformity needs at least two embeddings of a modality")
    points = embeds.double()
    squared = points.square().sum(dim=1)  # [N]
    columns = torch.arange(count, device=points.device)
    partial = []
    for start in range(0, count - 1, block_size):
        rows = torch.arange(start, min(start + block_size, count), device=points.device)
        distances = squared[rows, None] + squared[None, :] - 2 * points[rows] @ points.T
        exponent = -t * distances.clamp_min(0)  # [b, N]
        exponent[columns[None, :] <= rows[:, None]] = -math.inf  # keep j > i only
        partial.append(torch.logsumexp(exponent.flatten(), dim=0))
    pairs = count * (count - 1) / 2
    return (torch.logsumexp(torch.stack(partial), dim=0) - math.log(pairs)).item()


def effective_rank(embeds: torch.Tensor) -> float:
    """exp(entropy of σ / Σσ), σ the singular values of embeds [N, D] (Roy & Vetterli 2007)."""
    singular = torch.linalg.svdvals(embeds.double())
    if singular.sum() <= 0:
        raise ValueError("the effective rank of an all-zero matrix is undefined")
    weights = singular / singular.sum()
    weights = weights[weights > 0]
    return math.exp(-(weights * weights.log()).sum().item())


def subsample(embeds: torch.Tensor, limit: int | None, seed: int) -> torch.Tensor:
    if limit is None or len(embeds) <= limit:
        return embeds
    generator = torch.Generator().manual_seed(seed)
    return embeds[torch.randperm(len(embeds), generator=generator)[:limit].sort().values]


def geometry_metrics(
    image_embeds: torch.Tensor,
    text_embeds: torch.Tensor,
    text_image_index: torch.Tensor,
    t: float = 2.0,
    max_points: int | None = 10_000,
    seed: int = 0,
) -> dict[str, float]:
    """Every metric of this module; image_embeds [N, D], text_embeds [M, D], index [M]."""
    images = subsample(image_embeds, max_points, seed)
    texts = subsample(text_embeds, max_points, seed)
    uniformity_image, uniformity_text = uniformity(images, t), uniformity(texts, t)
    return {
        "modality_gap": modality_gap(image_embeds, text_embeds),
        "alignment": alignment(image_embeds, text_embeds, text_image_index),
        "uniformity": (uniformity_image + uniformity_text) / 2,
        "uniformity_image": uniformity_image,
        "uniformity_text": uniformity_text,
        "effective_rank": effective_rank(torch.cat([image_embeds, text_embeds])),
        "effective_rank_image": effective_rank(image_embeds),
        "effective_rank_text": effective_rank(text_embeds),
    }


@dataclass
class GeometryConfig:
    t: float = 2.0  # uniformity temperature (Wang & Isola)
    max_points: int | None = 10_000  # per modality, for uniformity; None: all
    seed: int = 0  # the uniformity subsample and the plot's pairs
    plot: Path | None = None  # a PNG of the 2-D projection; None: no plot
    plot_pairs: int = 40  # image-caption pairs joined by a line in the plot
    encode: EncodeConfig = field(default_factory=EncodeConfig)

    def __post_init__(self):
        if self.t <= 0 or (self.max_points is not None and self.max_points < 2):
            raise ValueError(
                f"geometry needs t > 0 and max_points ≥ 2, got {self.t} and {self.max_points}"
            )
        if self.plot is not None:
            self.plot = Path(self.plot)
            if self.plot.suffix.lower() != ".png":
                raise ValueError(f"{self.plot}: --plot writes a PNG; name it *.png")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``clipforge eval geometry`` flags beyond the common ones."""
    parser.add_argument(
        "--plot", metavar="PNG", help="also draw images and texts in 2-D (PCA) into this PNG"
    )


def config_from_args(args: argparse.Namespace, encode: EncodeConfig) -> GeometryConfig:
    return GeometryConfig(plot=Path(args.plot) if args.plot else None, encode=encode)


def geometry(
    model,
    preprocess: ImageTransform,
    tokenizer,
    source: MapSource | StreamSource,
    config: GeometryConfig | None = None,
) -> dict[str, Any]:
    """Embedding-space geometry on ``source``'s image-caption pairs; returns::

    {"task": "geometry", "metrics": {"modality_gap", "alignment", "uniformity", …,
     "effective_rank", …}, "num_samples" (images), "num_texts", "plot" (path or None),
     "skipped": [{key, reason}]}
    """
    config = config or GeometryConfig()
    if tokenizer is None:
        raise ValueError("the model has no tokenizer (no tokenizer.json beside its weights)")
    encoded = encode_images(model, preprocess, source, config.encode)
    kept, texts, text_image_index, uncaptioned = caption_pairs(encoded)
    image_embeds = encoded.embeds[kept]  # [N, D]
    text_embeds = encode_texts(model, tokenizer, texts, config.encode)  # [M, D]
    metrics = geometry_metrics(
        image_embeds, text_embeds, text_image_index, config.t, config.max_points, config.seed
    )
    if config.plot is not None:
        from .projection import plot_projection

        title = f"{getattr(source, 'name', 'data')}: gap {metrics['modality_gap']:.3f}"
        plot_projection(
            image_embeds,
            text_embeds,
            text_image_index,
            config.plot,
            title,
            config.plot_pairs,
            config.seed,
        )
    skipped = encoded.skipped + uncaptioned
    return {
        "task": TASK,
        "metrics": metrics,
        "num_samples": len(kept),
        "num_texts": len(texts),
        "plot": str(config.plot) if config.plot is not None else None,
        "skipped": [{"key": key, "reason": reason} for key, reason in skipped],
    }
