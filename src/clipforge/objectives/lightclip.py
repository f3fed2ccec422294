"""LightCLIP: progressively softened negatives plus word-patch token alignment.

Nie, He, Han, Tang, Guo, Du, Wang, "LightCLIP: Learning Multi-Level Interaction for Lightweight
Vision-Language Models", arXiv 2312.00674, 2023.

Web image-text pairs are not strictly one-to-one: a "negative" caption may describe the image
too. LightCLIP softens the instance-level targets, more so as training goes on, and adds a
token-level alignment between image patches and words.

1. Instance level — soft targets. With s the model's temperature and ε(t) the softening at
   optimizer step t (linear ramp from ``smoothing_start`` to ``smoothing_end`` over
   ``ramp_steps`` steps, tracked by :meth:`after_step` in the ``step`` buffer, so it resumes)::

       q_ii = 1 − ε(t),   q_ij = ε(t) · w_ij   (j ≠ i, Σ_j w_ij = 1)
       L_inst = ½ [ −Σ_j q_ij log softmax_j(s·I Tᵀ)_ij  +  the same for s·T Iᵀ ]

   ``negative_weights="uniform"``: w_ij = 1/(B−1) (label smoothing that excludes the positive);
   ``"similarity"``: w_ij ∝ exp(s·I_i·T_j) over the negatives, detached — negatives that look
   like positives receive more of the softened mass.

2. Token level — relaxed bipartite matching. Each word (real tokens minus the start- and
   end-of-text tokens, :func:`.common.word_mask`) is matched to its most similar patch
   (the one-to-one matching relaxed to many-to-one, i.e. a max), scores averaged over words —
   FILIP's text-side score S^T (see :mod:`.filip`) — and contrasted over the batch::

       L_token = ½ [ CE(s·S^T, diag) + CE(s·S^Tᵀ, diag) ]

   L = L_inst + token_weight · L_token

Defaults: ε ramps 0 → 0.1 over 1,000 steps (the paper ramps over its epochs; 1,000 steps suit the
ten-minute tiny runs), token_weight 0.5. Not implemented: the paper's third level, masked
language modelling through an auxiliary image-text fusion module (it needs a decoder head that
lives outside the dual encoder).
"""

from __future__ import annotations

import torch

from ..data.batch import Batch
from ..models.clip import CLIP, ModelOutput
from .base import Objective
from .common import gather_global, soft_cross_entropy, symmetric_info_nce, word_mask
from .filip import filip_similarity


def soft_targets(
    logits: torch.Tensor, smoothing: float | torch.Tensor, negative_weights: str
) -> torch.Tensor:
    """Targets [B, B]: 1 − ε on the diagonal, ε spread over each row's negatives."""
    batch = logits.shape[0]
    eye = torch.eye(batch, dtype=torch.bool, device=logits.device)
    if batch == 1:
        return eye.float()
    if negative_weights == "uniform":
        weights = torch.full_like(logits, 1.0 / (batch - 1))
    else:
        weights = logits.detach().masked_fill(eye, float("-inf")).softmax(dim=1)
    weights = weights.masked_fill(eye, 0.0)
    return eye.float() * (1 - smoothing) + smoothing * weights


class LightClipLoss(Objective):
    name = "lightclip"
    needs_tokens = True

    step: torch.Tensor  # buffer: the last optimizer step (drives the ε ramp)

    def __init__(
        self,
        smoothing_start: float = 0.0,
        smoothing_end: float = 0.1,
        ramp_steps: int = 1000,
        negative_weights: str = "uniform",
        token_weight: float = 0.5,
        chunk_size: int | None = None,
    ):
        super().__init__()
        if negative_weights not in ("uniform", "similarity"):
            raise ValueError(
                f"lightclip negative_weights must be 'uniform' or 'similarity', "
                f"got {negative_weights!r}"
            )
        for value in (smoothing_start, smoothing_end):
            if not 0.0 <= value < 1.0:
                raise ValueError(f"lightclip smoothing must be in [0, 1), got {value}")
        self.smoothing_start, self.smoothing_end = smoothing_start, smoothing_end
        self.ramp_steps = max(0, int(ramp_steps))
        self.negative_weights, self.token_weight = negative_weights, token_weight
        self.chunk_size = chunk_size
        self.register_buffer("step", torch.zeros((), dtype=torch.long))

    def smoothing(self) -> torch.Tensor:
        """ε at the current step (a scalar tensor): a linear ramp, constant after ``ramp_steps``.
        Computed on the step buffer's device, so no host-device sync per step."""
        progress = (self.step.float() / max(1, self.ramp_steps)).clamp(max=1.0)
        if self.ramp_steps == 0:
            progress = torch.ones_like(progress)
        return self.smoothing_start + (self.smoothing_end - self.smoothing_start) * progress

    def after_step(self, model: CLIP, step: int) -> None:
        self.step.fill_(step)

    def forward(self, outputs: ModelOutput, batch: Batch) -> dict[str, torch.Tensor]:
        if outputs.image_tokens is None or outputs.text_tokens is None:
            raise ValueError("the lightclip objective needs token features (return_tokens=True)")
        scale = outputs.logit_scale.float()
        images = gather_global(outputs.image_embeds.float())
        texts = gather_global(outputs.text_embeds.float())
        logits = scale * images @ texts.T
        smoothing = self.smoothing()
        instance = (
            soft_cross_entropy(logits, soft_targets(logits, smoothing, self.negative_weights))
            + soft_cross_entropy(logits.T, soft_targets(logits.T, smoothing, self.negative_weights))
        ) / 2
        assert outputs.text_token_mask is not None  # CLIP sets it with text_tokens
        _, text_side = filip_similarity(
            gather_global(outputs.image_tokens),
            gather_global(outputs.text_tokens),
            word_mask(gather_global(outputs.text_token_mask)),
            self.chunk_size,
        )
        token = symmetric_info_nce(scale * text_side)
        return {
            "loss": instance + self.token_weight * token,
            "instance": instance.detach(),
            "token": token.detach(),
            "smoothing": smoothing.detach(),
        }
