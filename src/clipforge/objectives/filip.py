"""FILIP's token-wise late interaction.

Yao, Huang, Hou, Lu, Niu, Xu, Liang, Li, Jiang, Xu, "FILIP: Fine-grained Interactive
Language-Image Pre-Training", ICLR 2022 (arXiv 2111.07783, 2021).

Instead of one dot product of pooled embeddings, every image patch looks for its most similar
word and every word for its most similar patch. With L2-normalised patch tokens x_k (k = 1…N) of
image i and the word features y_r (r = 1…T_j) of caption j::

    image side  S^I[i, j] = 1/N   Σ_k  max_r  x_kᵀ y_r        (how well caption j covers image i)
    text side   S^T[i, j] = 1/T_j Σ_r  max_k  x_kᵀ y_r        (how well image i covers caption j)

    L = ½ [ CE(s·S^I, diag) over texts per image  +  CE(s·S^T, diag) over images per text ]

with the model's learnable temperature s. Words are the caption's tokens without padding and
without the start- and end-of-text tokens (:func:`.common.word_mask`): those two are not words
(the end token's feature is the pooled sentence embedding, which patches would otherwise match
instead of words). Across ranks, tokens are all-gathered so the scores cover the
global batch. No code was released with the paper; this follows its equations (Sec. 3.1.1).
The paper also drops a random subset of patches/tokens to save memory; here, use
``chunk_size`` to bound the [chunk, B, N, T] similarity tensor instead.

:func:`filip_scores` exposes the same scores for retrieval re-ranking: score the top-k
candidates of a dense search with the query's and candidates' token features.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..data.batch import Batch
from ..models.clip import ModelOutput
from .base import Objective
from .common import gather_global, info_nce, masked_mean, word_mask


def filip_similarity(
    image_tokens: torch.Tensor,
    text_tokens: torch.Tensor,
    text_mask: torch.Tensor | None = None,
    chunk_size: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Image-side and text-side late-interaction scores, each [Bi, Bt] in [−1, 1].

    image_tokens [Bi, N, D], text_tokens [Bt, T, D] (any scale: they are L2-normalised here),
    text_mask [Bt, T] True for real tokens (None: all real). ``chunk_size`` images at a time keeps
    the peak memory at chunk·Bt·N·T similarities (max only saves indices for backward).
    """
    image_tokens = F.normalize(image_tokens.float(), dim=-1)
    text_tokens = F.normalize(text_tokens.float(), dim=-1)
    if text_mask is None:
        text_mask = torch.ones(text_tokens.shape[:2], dtype=torch.bool, device=text_tokens.device)
    text_mask = text_mask.bool()
    step = chunk_size or image_tokens.shape[0]
    image_side, text_side = [], []
    for start in range(0, image_tokens.shape[0], step):
        chunk = image_tokens[start : start + step]
        similarity = torch.einsum("ind,jtd->ijnt", chunk, text_tokens)  # [b, Bt, N, T]
        padded = ~text_mask[None, :, None, :]
        best_word = similarity.masked_fill(padded, float("-inf")).amax(dim=3)  # [b, Bt, N]
        image_side.append(best_word.mean(dim=2))
        best_patch = similarity.amax(dim=2)  # [b, Bt, T]
        text_side.append(masked_mean(best_patch, text_mask[None], dim=2))
    return torch.cat(image_side), torch.cat(text_side)


def filip_scores(
    image_tokens: torch.Tensor,
    text_tokens: torch.Tensor,
    text_mask: torch.Tensor | None = None,
    direction: str = "mean",
    chunk_size: int | None = 64,
) -> torch.Tensor:
    """Fine-grained image-text scores [Bi, Bt] for retrieval re-ranking.

    Feed the token outputs of ``model.encode_image(images, return_tokens=True)`` and
    ``model.encode_text(ids, return_tokens=True)`` (tokens and mask; the start/end tokens are
    dropped from the mask here, as in training). ``direction``: ``"image"``
    uses S^I (rank captions for an image query), ``"text"`` uses S^T (rank images for a text
    query), ``"mean"`` averages both. Higher is more similar; scores lie in [−1, 1].
    """
    words = None if text_mask is None else word_mask(text_mask)
    image_side, text_side = filip_similarity(image_tokens, text_tokens, words, chunk_size)
    if direction == "image":
        return image_side
    if direction == "text":
        return text_side
    if direction == "mean":
        return (image_side + text_side) / 2
    raise ValueError(f"filip_scores direction must be 'image', 'text' or 'mean', got {direction!r}")


class FilipLoss(Objective):
    """Symmetric InfoNCE on FILIP's token-wise scores (defaults: the model's temperature)."""

    name = "filip"
    needs_tokens = True

    def __init__(self, chunk_size: int | None = None):
        super().__init__()
        self.chunk_size = chunk_size

    def forward(self, outputs: ModelOutput, batch: Batch) -> dict[str, torch.Tensor]:
        if outputs.image_tokens is None or outputs.text_tokens is None:
            raise ValueError("the filip objective needs token features (return_tokens=True)")
        image_tokens = gather_global(outputs.image_tokens)
        text_tokens = gather_global(outputs.text_tokens)
        assert outputs.text_token_mask is not None  # CLIP sets it with text_tokens
        text_mask = word_mask(gather_global(outputs.text_token_mask))
        image_side, text_side = filip_similarity(
            image_tokens, text_tokens, text_mask, self.chunk_size
        )
        scale = outputs.logit_scale.float()
        image_to_text = info_nce(scale * image_side)
        text_to_image = info_nce(scale * text_side.T)
        return {
            "loss": (image_to_text + text_to_image) / 2,
            "image_to_text": image_to_text.detach(),
            "text_to_image": text_to_image.detach(),
        }
