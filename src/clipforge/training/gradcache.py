"""GradCache: a contrastive batch far larger than activation memory allows, with exact gradients.

Gao, Zhang, Han & Callan, "Scaling Deep Contrastive Learning Batch Size under Memory Limited
Setup", RepL4NLP 2021.

A contrastive loss couples every pair of the batch, so plain gradient accumulation over
micro-batches changes the loss (fewer negatives). But the loss depends on the encoders only
through the pooled embeddings, and embeddings are small ([B, D]) while activations are not.
So, for a batch of B split into chunks of C:

1. embed every chunk with ``no_grad`` (activation memory of one chunk at a time) and keep the
   projector outputs F_I, F_T [B, D] (the embeddings are their L2 normalisations I, T);
2. compute the loss on the cached features and back-propagate to them: G_I = ∂L/∂F_I,
   G_T = ∂L/∂F_T (this also gives the gradients of the temperature / bias directly);
3. re-run each chunk with gradients and back-propagate its slice of G_I, G_T through the
   towers: by the chain rule, Σ_chunks ∂(F_I,c · G_I,c)/∂θ = ∂L/∂θ exactly.

Cost: one extra forward pass per step (~+33 % compute); memory: O(C) activations + O(B·D)
embeddings + the B×B logits (or B_local × B_global with ``local_loss``). The random state of
each chunk's first pass is replayed in its second pass, so stochastic layers see the same noise
(clipforge's towers have no dropout; augmentations happen in the loader, before this).

Only objectives that read the pooled embeddings (``needs_tokens = False``, no extra model
inputs) qualify: CLIP, SigLIP. With several ranks, run it on the un-wrapped module and average
the gradients afterwards (:func:`clipforge.distributed.average_gradients`); the all-gather in the
loss carries the cross-rank terms of step 2.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..data.batch import Batch
from ..models.clip import ModelOutput
from ..objectives import Objective
from .module import TrainModule
from .precision import autocast


def check_gradcache(objectives: dict[str, Objective], chunk: int | None) -> None:
    """Refuse, before any work, a GradCache setting the objectives cannot use."""
    if chunk is None:
        return
    if chunk < 1:
        raise ValueError(f"optim.gradcache_chunk must be a positive number of samples, got {chunk}")
    unfit = [name for name, o in objectives.items() if o.needs_tokens or o.extra_inputs]
    if unfit:
        raise ValueError(
            f"optim.gradcache_chunk works only with objectives on pooled embeddings "
            f"(e.g. clip, siglip); {', '.join(unfit)} need token features or extra "
            f"model inputs — use optim.accumulation or model.grad_checkpointing"
        )


def _rng_state(device: torch.device) -> tuple:
    cuda = torch.cuda.get_rng_state(device) if device.type == "cuda" else None
    return torch.get_rng_state(), cuda


def _set_rng_state(state: tuple, device: torch.device) -> None:
    torch.set_rng_state(state[0])
    if state[1] is not None:
        torch.cuda.set_rng_state(state[1], device)


def gradcache_step(
    module: TrainModule, batch: Batch, chunk: int, precision: str = "fp32", loss_scale: float = 1.0
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Forward + backward of ``module`` on ``batch`` in chunks of ``chunk`` samples.

    Leaves in ``.grad`` (accumulated, times ``loss_scale``) exactly the gradients of
    ``module(batch)[0].backward()``; returns the loss (detached) and the named terms.
    """
    model = module.model
    device = batch.images.device
    pieces = range(0, len(batch), chunk)
    states = []
    with torch.no_grad():  # 1. embed, keep embeddings
        image_parts, text_parts = [], []
        for start in pieces:
            states.append(_rng_state(device))
            with autocast(precision, device):
                image_parts.append(
                    model.encode_image(batch.images[start : start + chunk], normalize=False).float()
                )
                text_parts.append(
                    model.encode_text(batch.text[start : start + chunk], normalize=False).float()
                )
    after_first_pass = _rng_state(device)
    images = torch.cat(image_parts).requires_grad_(True)  # [B, D] before the L2 norm
    texts = torch.cat(text_parts).requires_grad_(True)

    outputs = ModelOutput(
        F.normalize(images, dim=-1),
        F.normalize(texts, dim=-1),  # 2. loss
        model.scale(),
        model.logit_bias,
        image_features=images,
        text_features=texts,
    )
    loss, terms = module.weighted_loss(outputs, batch)
    (loss * loss_scale).backward()
    image_grads, text_grads = images.grad, texts.grad  # [B, D]: d loss / d embedding
    assert image_grads is not None and text_grads is not None  # leaves the loss depends on

    for index, start in enumerate(pieces):  # 3. re-embed with grad
        _set_rng_state(states[index], device)
        end = start + chunk
        with autocast(precision, device):
            image_chunk = model.encode_image(batch.images[start:end], normalize=False).float()
            text_chunk = model.encode_text(batch.text[start:end], normalize=False).float()
        torch.autograd.backward(
            [image_chunk, text_chunk], [image_grads[start:end], text_grads[start:end]]
        )
    _set_rng_state(after_first_pass, device)
    return loss.detach(), terms
