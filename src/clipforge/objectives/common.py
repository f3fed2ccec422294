"""Small pieces shared by the fine-grained objectives (FILIP, TCL, LightCLIP, DreamLIP, LexLIP).

- :func:`info_nce` / :func:`symmetric_info_nce`: cross-entropy against the diagonal, the core of
  every contrastive term here.
- :func:`masked_mean`: an average over real tokens only (``text_token_mask``).
- :func:`word_mask`: the caption's words — real tokens minus the start- and end-of-text tokens.
- :func:`gather_global`: features of every rank, concatenated (identity in one process), so
  contrastive terms see the global batch as CLIP's does.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .. import distributed


def info_nce(logits: torch.Tensor, label_smoothing: float = 0.0) -> torch.Tensor:
    """Mean cross-entropy of each row of ``logits`` [B, C] against column ``row`` (C ≥ B)."""
    labels = torch.arange(logits.shape[0], device=logits.device)
    return F.cross_entropy(logits, labels, label_smoothing=label_smoothing)


def symmetric_info_nce(logits: torch.Tensor, label_smoothing: float = 0.0) -> torch.Tensor:
    """½ [CE(rows) + CE(columns)] of a square score matrix [B, B] with positives on the diagonal."""
    return (info_nce(logits, label_smoothing) + info_nce(logits.T, label_smoothing)) / 2


def masked_mean(values: torch.Tensor, mask: torch.Tensor, dim: int) -> torch.Tensor:
    """Mean of ``values`` over ``dim`` counting only positions where ``mask`` is True.

    ``mask`` broadcasts against ``values``; an all-False slice gives 0 (not NaN).
    """
    mask = mask.to(values.dtype)
    return (values * mask).sum(dim) / mask.sum(dim).clamp(min=1.0)


def word_mask(text_token_mask: torch.Tensor, keep_wordless: bool = True) -> torch.Tensor:
    """[B, T] True at the words of each caption: real tokens except the first (start-of-text,
    BERT's [CLS]) and the last real one (end-of-text, [SEP]); padding stays False.

    The start and end tokens are not words of the caption (the end token's feature is the pooled
    sentence embedding), so token-wise matching (FILIP, LightCLIP) must not pick them. Assumes a
    mask that is True from position 0 up to the end token, as the towers produce. A caption with
    no word between the two keeps its real tokens, so it still gets a score (``keep_wordless``;
    False: it has no words, as TCL's local terms want).
    """
    mask = text_token_mask.bool()
    positions = torch.arange(mask.shape[1], device=mask.device)
    last = mask.sum(dim=1, keepdim=True) - 1
    words = mask & (positions > 0) & (positions < last)
    if not keep_wordless:
        return words
    return torch.where(words.any(dim=1, keepdim=True), words, mask)


def soft_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean over rows of −Σ_j targets[i, j] · log softmax(logits[i])_j; logits, targets [B, C]."""
    return -(targets * F.log_softmax(logits, dim=1)).sum(dim=1).mean()


def gather_global(tensor: torch.Tensor) -> torch.Tensor:
    """``tensor`` [B, ...] of every rank → [world·B, ...], differentiable for float tensors."""
    if distributed.world_size() == 1:
        return tensor
    if tensor.is_floating_point():
        return distributed.all_gather_features(tensor, with_grad=True)
    return distributed.all_gather_features(tensor.float(), with_grad=False).to(tensor.dtype)
