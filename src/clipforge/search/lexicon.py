"""Lexical (sparse) encoders for ``embed``: LexLIP's lexicon heads, when a run trained them.

LexLIP (Luo et al., 2023) maps patch and token features to vocabulary-sized non-negative,
L2-normalised weights (:mod:`clipforge.models.lexicon`), so images and texts become bag-of-words
vectors searchable with an inverted index whose dot product is the cosine LexLIP trains on. A
run trained with the ``lexlip`` objective saves its heads in ``objectives.safetensors`` under
keys ``lexlip.…``; :func:`load_lexicon_heads` rebuilds them. Anything with the two methods of
:class:`SparseEncoder` can be passed to :func:`clipforge.search.embed.embed` instead.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import torch

from ..models.lexicon import LexiconHeads

OBJECTIVES_FILE, PREFIX = "objectives.safetensors", "lexlip."


class SparseEncoder(Protocol):
    def encode_image_sparse(self, image_tokens: torch.Tensor) -> torch.Tensor:
        """[B, N, D] patch tokens → [B, V] non-negative lexicon weights."""

    def encode_text_sparse(self, text_tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """[B, T, D] token features, [B, T] mask → [B, V] non-negative lexicon weights."""


def lexicon_state(model_dir: str | Path) -> dict[str, torch.Tensor]:
    """The ``lexlip.`` tensors of a run or checkpoint directory, prefix removed ({} if none)."""
    path = Path(model_dir) / OBJECTIVES_FILE
    if not path.is_file():
        return {}
    from safetensors.torch import load_file

    return {
        key[len(PREFIX) :]: value
        for key, value in load_file(str(path)).items()
        if key.startswith(PREFIX)
    }


def load_lexicon_heads(model_dir: str | Path, model) -> SparseEncoder | None:
    """LexLIP heads saved beside the model, or None when the run trained none."""
    state = lexicon_state(model_dir)
    if not state:
        return None
    if all(key.startswith("heads.") for key in state):
        state = {key[len("heads.") :]: value for key, value in state.items()}
    return LexiconHeads.from_state_dict(state, model.config).eval()
