"""Gradient regulation of a soft prompt, after GRAM (Li et al., "Gradient-Regulated Meta-Prompt
Learning for Generalizable Vision-Language Models", ICCV 2023).

GRAM meta-learns a prompt θ together with a gradient regulating function R_φ, so that a prompt
tuned on few shots moves in a direction that also helps data it has not seen. One episode splits
data into a support set S and a query set Q (GRAM: different domains, found by cross-modal
hierarchical clustering of unlabelled web image-text pairs)::

    θ'  = θ − α · R_φ(∇_θ L_S(θ))                 inner step, regulated
    min_{θ, φ}  L_Q(θ')                            outer (meta) objective

A first-order Taylor expansion shows what the regulation learns:
``L_Q(θ') ≈ L_Q(θ) − α ⟨∇_θ L_Q(θ), R_φ(∇_θ L_S(θ))⟩`` — the meta objective rewards regulated
support gradients that *align* with the query gradient, and damps the coordinates where the few
shots pull one way and unseen data the other (the over-fitting directions).

What clipforge does at this scale (and what it simplifies):

- R_φ(g) = φ ⊙ g, an element-wise gate of the prompt's shape, φ initialised to 1 (so the first
  episode is plain MAML) and kept ≥ 0. GRAM's regulating function is likewise a light learnt
  transform of the raw gradient; its exact parameterisation is not reproduced here.
- No meta pre-training on web data: episodes are built from the few-shot set itself — the support
  loss on one augmented view of each shot, the query loss on another view of it (a held-out
  "domain" of the same images; with one shot per class there is nothing else to hold out).
- θ and φ are learnt jointly during the few-shot tuning (one meta step per optimiser step); the
  saved prompt is θ.
- First-order by default (∂θ'/∂θ ≈ I, as first-order MAML); ``second_order=True`` back-propagates
  through the inner gradient as well.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

Loss = Callable[[torch.Tensor], torch.Tensor]


def regulated_meta_step(
    theta: torch.Tensor,
    gate: torch.Tensor,
    support_loss: Loss,
    query_loss: Loss,
    inner_lr: float,
    second_order: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One GRAM episode: fills ``theta.grad`` and ``gate.grad`` with ∇ L_Q(θ − α φ ⊙ ∇L_S(θ)).

    ``theta`` (the prompt) and ``gate`` (φ, same shape) are leaf tensors that require grad; the
    losses are functions of a prompt. Returns the (detached) support and query losses. Gradients
    are accumulated into ``.grad`` as ``backward`` does; the caller zeroes and steps them.
    """
    support = support_loss(theta)
    (grad,) = torch.autograd.grad(support, theta, create_graph=second_order)
    if not second_order:
        grad = grad.detach()  # first order: θ' depends on θ only through the identity
    adapted = theta - inner_lr * gate * grad
    query = query_loss(adapted)
    query.backward()
    return support.detach(), query.detach()
