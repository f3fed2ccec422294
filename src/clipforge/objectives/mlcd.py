"""MLCD: multi-label cluster discrimination against learned class prototypes.

An, Yang, Dai, Feng, Deng, "Multi-label Cluster Discrimination for Visual Representation
Learning", ECCV 2024; code github.com/deepglint/unicom (the MLCD models; the classifier is
unicom's ``partial_fc.py``: ``PartialFC_V2`` + ``CombinedMarginLoss``).

Clustering step: image embeddings are clustered into k classes (spherical k-means); each sample's
l nearest centres become its labels Ω_p, fixed at clustering time. Discrimination step: a learned
prototype matrix W [k, D] (PartialFC's class centres, initialised at the k-means centres) scores
the normalised embedding x; per step a class subset is sampled as PartialFC does — every positive
class of the (global) batch plus random others up to ⌈r·k⌉ — and the negatives Ω_n of a row are the
sampled classes that are not its labels. The paper's loss (Eq. 5) keeps the two sides apart::

    c_j = clamp(x̂ · Ŵ_j, −1, 1)
    L = log(1 + Σ_{j∈Ω_n} exp(σ·c_j)) + log(1 + Σ_{i∈Ω_p} exp(−σ·(c_i − m)))

with σ the scale and m the additive (CosFace, ``CombinedMarginLoss`` m3) margin on positive classes,
averaged over the batch. Labels are held per sample (by record key) until the next re-clustering,
and saved with the run, so a resumed run trains against the same labels.

Simplified from the paper, which clusters LAION-400M once offline into 10⁶ classes with a frozen
CLIP: here clustering runs online over a memory bank of the last ``bank_size`` (gathered) embeddings
every ``refresh_every`` optimizer steps; a sample first seen between two clusterings is labelled at
first sight by the current centres and keeps that label until the next one. With ``teacher: PATH``
the bank holds a frozen teacher's image embeddings instead (the paper's off-the-shelf features), so
labels never depend on the model being trained. Each re-clustering re-initialises W at the new
centres (the class ids change meaning). Until the bank first holds ``min(bank_size, 4k)``
embeddings the loss is 0.

Defaults: k = 64 (tiny scale; the paper: 10⁶), l = 8 and r = 0.1 (the paper's), σ = 32, m = 0.3,
bank 4096, refresh every 200 steps, 20 k-means iterations. ``apply_to_text`` also applies the loss
to the text embeddings with the image's labels.
"""

from __future__ import annotations

import hashlib

import torch
import torch.nn.functional as F
from torch import nn

from .. import distributed
from ..data.batch import Batch
from ..models.clip import CLIP, ModelOutput
from ..models.config import PreprocessConfig
from .base import Objective
from .kmeans import spherical_kmeans
from .teacher import Teacher, adapt_images, load_teacher

__all__ = ["MultiLabelClusterLoss", "key_ids", "mlcd_loss", "sample_classes", "spherical_kmeans"]


def key_ids(keys: list[str]) -> torch.Tensor:
    """Stable 63-bit ids [B] of record keys (a checkpoint stores tensors, not strings)."""
    return torch.tensor(
        [
            int.from_bytes(hashlib.blake2b(k.encode(), digest_size=8).digest(), "little") >> 1
            for k in keys
        ],
        dtype=torch.long,
    )


def sample_classes(
    labels: torch.Tensor, num_classes: int, num_sample: int, generator: torch.Generator
) -> torch.Tensor:
    """PartialFC's sampling: all classes in ``labels`` plus random others, ``num_sample`` in all
    (or just the positives when they are more), sorted; [S] class ids."""
    positive = torch.unique(labels.cpu())
    if len(positive) >= num_sample:
        return positive
    priority = torch.rand(num_classes, generator=generator)
    priority[positive] = 2.0
    return priority.topk(num_sample).indices.sort().values


def mlcd_loss(
    embeds: torch.Tensor,
    prototypes: torch.Tensor,
    labels: torch.Tensor,
    sampled: torch.Tensor,
    scale: float,
    margin: float,
) -> torch.Tensor:
    """Eq. 5 averaged over rows: embeds [B, D], prototypes [k, D], labels [B, l], sampled [S]."""
    cosine = (F.normalize(embeds, dim=-1) @ F.normalize(prototypes[sampled], dim=-1).T).clamp(-1, 1)
    positive = (sampled[None, :, None] == labels[:, None, :]).any(-1)  # [B, S]
    positive_scores = (-scale * (cosine - margin)).masked_fill(~positive, float("-inf"))
    negative_scores = (scale * cosine).masked_fill(positive, float("-inf"))
    zero = cosine.new_zeros(cosine.shape[0], 1)
    return (
        torch.logsumexp(torch.cat([zero, positive_scores], 1), 1)
        + torch.logsumexp(torch.cat([zero, negative_scores], 1), 1)
    ).mean()


class MultiLabelClusterLoss(Objective):
    name = "mlcd"

    # Buffers made in setup() and the unregistered teacher (declared so the type checker sees
    # tensors, not nn.Module.__getattr__'s Tensor | Module).
    centres: torch.Tensor
    centres_ready: torch.Tensor
    bank: torch.Tensor
    bank_keys: torch.Tensor
    bank_position: torch.Tensor
    bank_filled: torch.Tensor
    steps_done: torch.Tensor
    label_keys: torch.Tensor
    label_table: torch.Tensor
    _teacher: Teacher
    _student_preprocess: PreprocessConfig

    def __init__(
        self,
        num_clusters: int = 64,
        positives: int = 8,
        negative_ratio: float = 0.1,
        scale: float = 32.0,
        margin: float = 0.3,
        bank_size: int = 4096,
        refresh_every: int = 200,
        kmeans_iterations: int = 20,
        apply_to_text: bool = False,
        teacher: str | None = None,
        seed: int = 0,
    ):
        super().__init__()
        if not 1 <= positives < num_clusters:
            raise ValueError(
                f"mlcd needs 1 ≤ positives < num_clusters, got {positives}, {num_clusters}"
            )
        if not 0.0 < negative_ratio <= 1.0:
            raise ValueError(f"mlcd negative_ratio must be in (0, 1], got {negative_ratio}")
        if bank_size < num_clusters:
            raise ValueError(f"mlcd bank_size {bank_size} is smaller than num_clusters")
        self.num_clusters, self.positives = num_clusters, positives
        self.negative_ratio, self.scale, self.margin = negative_ratio, scale, margin
        self.bank_size, self.refresh_every = bank_size, refresh_every
        self.kmeans_iterations, self.apply_to_text = kmeans_iterations, apply_to_text
        self.seed = seed
        self.teacher_path = None if teacher is None else str(teacher)
        self.min_fill = min(bank_size, 4 * num_clusters)
        self.num_sample = max(1, int(negative_ratio * num_clusters))  # PartialFC's count

    def setup(self, model: CLIP) -> None:
        dim = model.config.embed_dim
        if self.teacher_path is not None:
            teacher = load_teacher(self.teacher_path)
            object.__setattr__(self, "_teacher", teacher)
            object.__setattr__(self, "_student_preprocess", model.config.preprocess)
            dim = teacher.model.config.embed_dim
        self.prototypes = nn.Parameter(
            torch.normal(0.0, 0.01, (self.num_clusters, model.config.embed_dim))
        )
        self.register_buffer("centres", torch.zeros(self.num_clusters, dim))
        self.register_buffer("centres_ready", torch.zeros((), dtype=torch.bool))
        self.register_buffer("bank", torch.zeros(self.bank_size, dim))
        self.register_buffer("bank_keys", torch.zeros(self.bank_size, dtype=torch.long))
        self.register_buffer("bank_position", torch.zeros((), dtype=torch.long))
        self.register_buffer("bank_filled", torch.zeros((), dtype=torch.long))
        self.register_buffer("steps_done", torch.zeros((), dtype=torch.long))
        self.register_buffer("label_keys", torch.zeros(0, dtype=torch.long))  # sorted ids
        self.register_buffer("label_table", torch.zeros(0, self.positives, dtype=torch.long))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        for name in ("label_keys", "label_table"):  # held labels grow: take the saved size
            if prefix + name in state_dict and hasattr(self, name):
                setattr(
                    self,
                    name,
                    torch.empty_like(state_dict[prefix + name], device=getattr(self, name).device),
                )
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    # -- clustering and held labels -------------------------------------------------------------

    @torch.no_grad()
    def label_source(self, outputs: ModelOutput, batch: Batch) -> torch.Tensor:
        """Normalised embeddings [B, D'] to cluster and label: the teacher's, or the model's."""
        teacher: Teacher | None = getattr(self, "_teacher", None)
        if teacher is None:
            return F.normalize(outputs.image_embeds.detach().float(), dim=-1)
        device = outputs.image_embeds.device
        teacher.to(device)
        images = adapt_images(
            batch.images, self._student_preprocess, teacher.model.config.preprocess
        )
        return F.normalize(
            teacher.model.encode_image(images.to(device), normalize=True).float(), dim=-1
        )

    @torch.no_grad()
    def remember(self, embeds: torch.Tensor, keys: torch.Tensor) -> None:
        rows = (
            self.bank_position + torch.arange(len(embeds), device=self.bank.device)
        ) % self.bank_size
        self.bank[rows] = embeds[-self.bank_size :].to(self.bank)
        self.bank_keys[rows] = keys[-self.bank_size :].to(self.bank_keys.device)
        self.bank_position.copy_((self.bank_position + len(rows)) % self.bank_size)
        self.bank_filled.copy_(torch.clamp(self.bank_filled + len(rows), max=self.bank_size))

    def nearest(self, embeds: torch.Tensor) -> torch.Tensor:
        """The l nearest k-means centres of each embedding, [B, l]."""
        return (embeds @ self.centres.T.to(embeds)).topk(self.positives, dim=1).indices

    @torch.no_grad()
    def hold(self, keys: torch.Tensor, labels: torch.Tensor) -> None:
        """Adds (key → labels) rows to the held table (the latest row wins for a repeated key)."""
        keys = torch.cat([self.label_keys, keys.to(self.label_keys.device)])
        labels = torch.cat([self.label_table, labels.to(self.label_table.device)])
        order = torch.arange(len(keys), device=keys.device)
        last = torch.full((len(keys),), -1, dtype=torch.long, device=keys.device)
        unique, inverse = torch.unique(keys, sorted=True, return_inverse=True)
        last = last[: len(unique)].scatter_reduce(0, inverse, order, "amax")
        self.label_keys, self.label_table = unique, labels[last]

    def lookup(self, keys: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Held labels [B, l] of ``keys`` and a mask [B] of those that have some."""
        table = self.label_keys.to(keys.device)
        if len(table) == 0:
            none = torch.zeros_like(keys, dtype=torch.bool)
            return keys.new_zeros(len(keys), self.positives), none
        where = torch.searchsorted(table, keys).clamp(max=len(table) - 1)
        found = table[where] == keys
        return self.label_table.to(keys.device)[where], found

    @torch.no_grad()
    def recluster(self, step: int) -> None:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + step)
        filled = int(self.bank_filled)
        points = self.bank[:filled]
        self.centres.copy_(
            spherical_kmeans(points, self.num_clusters, self.kmeans_iterations, generator)
        )
        self.label_keys = self.label_keys[:0]
        self.label_table = self.label_table[:0]
        self.hold(self.bank_keys[:filled], self.nearest(points))
        if self.prototypes.shape[1] == self.centres.shape[1]:
            self.prototypes.data.copy_(self.centres)
        else:  # a teacher of another width: random prototypes
            self.prototypes.data.normal_(0.0, 0.01, generator=generator)
        self.centres_ready.fill_(True)

    def after_step(self, model: CLIP, step: int) -> None:
        self.steps_done.add_(1)
        if not bool(self.centres_ready):
            if int(self.bank_filled) >= self.min_fill:
                self.recluster(step)
        elif self.refresh_every and step % self.refresh_every == 0:
            self.recluster(step)

    # -- loss ---------------------------------------------------------------------------------

    def labels_for(self, source: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        """Held labels of the (gathered) batch; unseen samples are labelled now and held."""
        labels, found = self.lookup(keys)
        if not found.all():
            fresh = self.nearest(source[~found])
            labels[~found] = fresh
            if self.training:
                self.hold(keys[~found], fresh)
        return labels

    def forward(self, outputs: ModelOutput, batch: Batch) -> dict[str, torch.Tensor]:
        if not hasattr(self, "centres"):
            raise RuntimeError("mlcd: setup(model) was not called before the first batch")
        images = outputs.image_embeds.float()
        source = self.label_source(outputs, batch)
        keys = key_ids(batch.keys).to(images.device)
        all_source = distributed.all_gather_features(source, with_grad=False)
        all_keys = distributed.all_gather_features(keys, with_grad=False)
        if self.training:
            self.remember(all_source, all_keys)
        if not bool(self.centres_ready):
            return {"loss": images.sum() * 0.0 + self.prototypes.sum() * 0.0}
        all_labels = self.labels_for(all_source, all_keys)
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + int(self.steps_done))
        sampled = sample_classes(all_labels, self.num_clusters, self.num_sample, generator).to(
            images.device
        )
        start = distributed.rank() * len(images)
        labels = all_labels[start : start + len(images)]
        loss = mlcd_loss(images, self.prototypes, labels, sampled, self.scale, self.margin)
        terms = {"image": loss.detach()}
        if self.apply_to_text:
            text_loss = mlcd_loss(
                outputs.text_embeds.float(),
                self.prototypes,
                labels,
                sampled,
                self.scale,
                self.margin,
            )
            terms["text"] = text_loss.detach()
            loss = (loss + text_loss) / 2
        return {"loss": loss, **terms}
