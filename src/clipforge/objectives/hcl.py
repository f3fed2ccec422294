"""HCL: contrastive learning with hard negative samples (importance-weighted InfoNCE).

Robinson, Chuang, Sra, Jegelka, "Contrastive Learning with Hard Negative Samples", ICLR 2021
(code: github.com/joshr17/HCL, ``image/main.py: criterion`` with ``estimator='hard'``). Negatives
are drawn, in expectation, from q_β(x⁻) ∝ exp(β f(x)ᵀf(x⁻)) · p(x⁻): the denominator of InfoNCE
is re-weighted towards negatives that look like the anchor, by importance sampling on the batch.

For one query row (image→text, then text→image; the two are averaged) with cosines c_j, logits
l_j = s · c_j (s = 1/τ, the model's logit scale), positive p and the other N = B − 1 columns::

    w_j  = exp(β c_j) / mean_{k≠p} exp(β c_k)               # importance weights, mean 1
    N_g  = max( (Σ_{j≠p} w_j exp(l_j) − τ⁺ N exp(l_p)) / (1 − τ⁺),  N e^{−s} )
    L_row = −log( exp(l_p) / (exp(l_p) + N_g) )

β acts on the temperature-free cosine, as in the paper's q_β, so its meaning does not drift as
the learned scale s grows (the released image code writes ``imp = exp(β · log neg)``, i.e.
β · c / τ at its fixed τ = 0.5: its β = 1 is β = 2 here). τ⁺ is the class prior of the
debiased estimator (Chuang et al. 2020); τ⁺ = 0 gives plain hard-negative weighting, β = 0 with
τ⁺ = 0 plain InfoNCE. The weights are not detached (as in the released code).

Defaults: β = 1 (the paper's and code's default, on the cosine here), τ⁺ = 0 (simplified from the
released default 0.1: image–text batches rarely hold a second true pair; ``tau_plus: 0.1`` gives
it). Faithful to the released ``criterion`` with two changes for image–text pairs: rows are
cross-modal (N = B − 1 negatives from the other modality, not 2B − 2 from both views) and the
temperature is CLIP's learned one.
"""

from __future__ import annotations

import math

import torch

from ..data.batch import Batch
from ..models.clip import ModelOutput
from .base import Objective
from .clip import clip_logits


def hard_negative_nce(
    logits: torch.Tensor,
    labels: torch.Tensor,
    logit_scale: torch.Tensor,
    beta: float,
    tau_plus: float = 0.0,
    detach_weights: bool = False,
) -> torch.Tensor:
    """Mean over rows of HCL's loss; ``logits`` [R, C] = s · cosines, positive of row r at
    ``labels[r]``; every other column is a negative."""
    rows = torch.arange(logits.shape[0], device=logits.device)
    positive = logits[rows, labels]  # [R]
    negative = torch.ones_like(logits, dtype=torch.bool)
    negative[rows, labels] = False
    count = negative.sum(dim=1).to(logits.dtype)  # N per row
    cosines = logits / logit_scale
    beta_cos = beta * (cosines.detach() if detach_weights else cosines)
    beta_cos = beta_cos.masked_fill(~negative, float("-inf"))
    # log Σ_j w_j e^{l_j} = logsumexp(βc + l) − logsumexp(βc) + log N, stably
    log_reweighted = (
        torch.logsumexp(beta_cos + logits, dim=1) - torch.logsumexp(beta_cos, dim=1) + count.log()
    )
    log_floor = count.log() - logit_scale  # log(N e^{−s})
    if tau_plus == 0.0:
        log_negatives = log_reweighted  # ≥ the floor already (every l_j ≥ −s)
    else:
        top = torch.maximum(log_reweighted, positive)
        inner = (log_reweighted - top).exp() - tau_plus * count * (positive - top).exp()
        log_negatives = torch.maximum(
            top + inner.clamp_min(1e-30).log() - math.log(1 - tau_plus), log_floor
        )
    return (torch.logaddexp(positive, log_negatives) - positive).mean()


class HardNegativeContrastiveLoss(Objective):
    name = "hcl"

    def __init__(self, beta: float = 1.0, tau_plus: float = 0.0, detach_weights: bool = False):
        super().__init__()
        if not 0.0 <= tau_plus < 1.0:
            raise ValueError(f"hcl tau_plus must be in [0, 1), got {tau_plus}")
        self.beta, self.tau_plus, self.detach_weights = beta, tau_plus, detach_weights

    def forward(self, outputs: ModelOutput, batch: Batch) -> dict[str, torch.Tensor]:
        scale = outputs.logit_scale.float()
        per_image, per_text, labels = clip_logits(
            outputs.image_embeds.float(), outputs.text_embeds.float(), scale
        )
        image_to_text, text_to_image = (
            hard_negative_nce(logits, labels, scale, self.beta, self.tau_plus, self.detach_weights)
            for logits in (per_image, per_text)
        )
        loss = (image_to_text + text_to_image) / 2
        return {"loss": loss}
