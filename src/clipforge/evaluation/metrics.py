"""Evaluation metrics on embeddings, with CLIP_benchmark's names and definitions.

Classification (``acc1``, ``acc5``, ``mean_per_class_recall``):
    acc@k   fraction of samples whose true class is among the k highest logits; ``acc5`` is NaN
            when there are fewer than 5 classes (CLIP_benchmark does the same).
    mean_per_class_recall   the mean over classes present in the targets of
            |pred = c ∧ y = c| / |y = c|, i.e. scikit-learn's ``balanced_accuracy_score``.

Retrieval (``image_retrieval_recall@k``, ``text_retrieval_recall@k``), as in CLIP-like papers and
CLIP_benchmark: an image may own several texts.
    image retrieval (text → image): for each text, 1 if its image is among the k images most
            similar to it; averaged over texts.
    text retrieval (image → text): for each image, 1 if at least one of its texts is among the k
            texts most similar to it; averaged over images.
k larger than the number of candidates is clamped to it (every query then counts as a hit).

Scores are computed ``block_size`` queries at a time with ``torch.topk``, so memory is
O(block_size × N) instead of the full N × M matrix (OpenCLIP's FIXME in ``zero_shot.py``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

DEFAULT_BLOCK_SIZE = 1024


def top_indices(
    queries: torch.Tensor, candidates: torch.Tensor, k: int, block_size: int = DEFAULT_BLOCK_SIZE
) -> torch.Tensor:
    """Indices [Q, min(k, M)] of each query's most similar candidates (dot product), best first.

    queries [Q, D], candidates [M, D]; scored ``block_size`` queries at a time.
    """
    k = min(k, candidates.shape[0])
    blocks = []
    for start in range(0, queries.shape[0], block_size):
        scores = queries[start : start + block_size] @ candidates.T  # [b, M]
        blocks.append(torch.topk(scores, k, dim=1).indices)
    if not blocks:
        return torch.empty(0, k, dtype=torch.long)
    return torch.cat(blocks)


def hits_at_k(
    top: torch.Tensor, query_owner: torch.Tensor, candidate_owner: torch.Tensor, ks: Sequence[int]
) -> torch.Tensor:
    """Bool [Q, len(ks)]: is some candidate with the query's owner among its top k?

    top [Q, K] candidate indices (best first); query_owner [Q] and candidate_owner [M] name the
    image each query / candidate belongs to.
    """
    matches = candidate_owner[top] == query_owner[:, None]  # [Q, K]
    return torch.stack([matches[:, :k].any(dim=1) for k in ks], dim=1)


def retrieval_recalls(
    image_embeds: torch.Tensor,
    text_embeds: torch.Tensor,
    text_image_index: torch.Tensor,
    ks: Sequence[int] = (1, 5, 10),
    block_size: int = DEFAULT_BLOCK_SIZE,
) -> dict[str, float]:
    """Recall@k both ways. image_embeds [I, D], text_embeds [T, D], text_image_index [T] (long)."""
    ks = tuple(ks)
    images = torch.arange(image_embeds.shape[0])
    text_image_index = text_image_index.long()
    metrics: dict[str, float] = {}
    text_to_image = (
        hits_at_k(
            top_indices(text_embeds, image_embeds, max(ks), block_size),
            text_image_index,
            images,
            ks,
        )
        .double()
        .mean(dim=0)
    )
    image_to_text = (
        hits_at_k(
            top_indices(image_embeds, text_embeds, max(ks), block_size),
            images,
            text_image_index,
            ks,
        )
        .double()
        .mean(dim=0)
    )
    for position, k in enumerate(ks):
        metrics[f"image_retrieval_recall@{k}"] = text_to_image[position].item()
        metrics[f"text_retrieval_recall@{k}"] = image_to_text[position].item()
    return metrics


def modality_gap(image_embeds: torch.Tensor, text_embeds: torch.Tensor) -> float:
    """‖mean(image embeddings) − mean(text embeddings)‖₂ (Liang et al. 2022, "Mind the Gap")
    for L2-normalised embeddings [N, D] and [M, D]; computed in fp32."""
    if len(image_embeds) == 0 or len(text_embeds) == 0:
        raise ValueError("the modality gap needs at least one image and one text embedding")
    difference = image_embeds.float().mean(dim=0) - text_embeds.float().mean(dim=0)
    return torch.linalg.vector_norm(difference).item()


def mean_per_class_recall(predictions: torch.Tensor, targets: torch.Tensor) -> float:
    """Balanced accuracy: mean recall over the classes that occur in ``targets`` ([N] each)."""
    size = int(max(predictions.max(), targets.max()).item()) + 1 if len(targets) else 0
    per_class_total = torch.bincount(targets, minlength=size)
    per_class_correct = torch.bincount(targets[predictions == targets], minlength=size)
    present = per_class_total > 0
    return (per_class_correct[present] / per_class_total[present]).double().mean().item()


def classification_metrics_from_top(
    top: torch.Tensor, targets: torch.Tensor, num_classes: int
) -> dict[str, float]:
    """acc1, acc5, mean_per_class_recall from each sample's ranked classes top [N, K≥1]."""
    correct = top == targets[:, None]  # [N, K]
    acc5 = correct[:, :5].any(dim=1).double().mean().item() if num_classes >= 5 else float("nan")
    return {
        "acc1": correct[:, 0].double().mean().item(),
        "acc5": acc5,
        "mean_per_class_recall": mean_per_class_recall(top[:, 0], targets),
    }


def classification_metrics(logits: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
    """acc1, acc5, mean_per_class_recall from logits [N, C] and targets [N]."""
    top = torch.topk(logits, min(5, logits.shape[1]), dim=1).indices
    return classification_metrics_from_top(top, targets.long(), logits.shape[1])
