"""TCL: triple contrastive learning — cross-modal, intra-modal and local-global terms.

Yang, Duan, Tran, Xu, Wang, Chen, Zeng, Chilimbi, Huang, "Vision-Language Pre-Training with
Triple Contrastive Learning", CVPR 2022; code github.com/uta-smile/TCL
(``models/model_pretrain.py``).

Faithful to the released contrastive part (``loss_ita``; ITM and MLM need a fusion encoder and are
not part of a dual encoder). With s the model's logit scale (1/τ), (I, T) the online normalised
embeddings of the batch, (Î, T̂) the momentum encoder's embeddings of the second image view
(loader extra ``image_view2``) and of the same caption (as the code does; the EMA encoder makes it
a second view), Q_I, Q_T the queues of past momentum embeddings and
CE(x, y) = −Σ_c y_c log softmax(x)_c::

    CMA  L_cma = ½ [ CE(s·I [T̂; Q_T]ᵀ, y_i2t) + CE(s·T [Î; Q_I]ᵀ, y_t2i) ]
    IMC  L_imc = ½ [ CE(s·I [Î; Q_I]ᵀ, 1_i) + CE(s·T [T̂; Q_T]ᵀ, 1_i) ]
    LMI  L_lmi = ½ [ G(I, P̂) + G(T, Ŵ) ]
    L = L_cma + intra_weight · L_imc + local_weight · L_lmi       (= 3 × the code's loss_ita)

y = (1−α)·1_i + α·softmax(momentum scores) are ALBEF's momentum-distilled targets (α =
``distill_alpha`` = 0.4, ramped linearly over the first ``alpha_warmup_steps`` optimizer steps as
the code ramps it over the first epoch). G is the code's ``in_batch_g2l_loss``: every local
feature x̂_ik of sample i (momentum encoder, second view) must score its own global g_i above the
local features of the *other* samples, G = mean_i mean_k −log e^{s g_i·x̂_ik} /
(e^{s g_i·x̂_ik} + Σ_{j≠i, k'} e^{s g_i·x̂_jk'}). Image locals P̂ are the normalised projected
patches average-pooled to a √side × √side grid (the code's ``patch_pooling``); text locals Ŵ are
the projected word tokens — not padding, not the start-of-text token (the code drops [CLS], its
global) and not the end-of-text token (CLIP's text global is pooled there). As in the code, G uses
the local batch (no gather); the CMA/IMC terms use the gathered batch and queue.

Defaults are the code's ``configs/Pretrain.yaml``: momentum 0.995, queue 65,536, α = 0.4.
``momentum_encoder=False`` is a cheaper variant (simplified from the paper): second views
(``image_view2`` and the EDA caption ``text_view2``) and locals come from the online model with
gradients, no queue or distillation; without view extras IMC is skipped.
Shapes: image tokens [B, N, D] with N a square, text tokens [B, T, D], mask [B, T].
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F

from ..data.batch import Batch
from ..models.clip import CLIP, ModelOutput
from . import common
from .base import Objective
from .common import gather_global, soft_cross_entropy

# (image globals, text globals, pooled patches, words, word mask) of the second views
ViewFeatures = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]


def word_mask(text_token_mask: torch.Tensor) -> torch.Tensor:
    """[B, T] real-token mask → the words only (start-of-text and the EOT off); a caption with
    no word has no text locals."""
    return common.word_mask(text_token_mask, keep_wordless=False)


def pool_patches(patches: torch.Tensor) -> torch.Tensor:
    """[B, N, D] patch grid (N = side²) → [B, g², D] averaged on a g × g grid, g = ⌊√side⌋."""
    batch, count, dim = patches.shape
    side = math.isqrt(count)
    if side * side != count:
        raise ValueError(f"tcl: image tokens must form a square grid, got {count} patches")
    grid = patches.reshape(batch, side, side, dim).permute(0, 3, 1, 2)
    pooled = F.adaptive_avg_pool2d(grid, math.isqrt(side))
    return pooled.flatten(2).transpose(1, 2)


def in_batch_local_global(
    local_feats: torch.Tensor,
    global_feats: torch.Tensor,
    scale: torch.Tensor,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """G: locals [B, K, D] (normalised), globals [B, D] (normalised), mask [B, K] of real locals."""
    batch, count = local_feats.shape[:2]
    if mask is None:
        mask = torch.ones(batch, count, dtype=torch.bool, device=local_feats.device)
    scores = scale * torch.einsum("id,jkd->ijk", global_feats, local_feats)  # [B, B, K]
    positives = scores.diagonal(dim1=0, dim2=1).T  # [B, K]
    others = ~torch.eye(batch, dtype=torch.bool, device=scores.device)[:, :, None] & mask[None]
    negatives = scores.masked_fill(~others, float("-inf")).flatten(1).logsumexp(1)  # [B]
    losses = F.softplus(negatives[:, None] - positives)  # −log p(own global), [B, K]
    per_sample = (losses * mask).sum(1) / mask.sum(1).clamp(min=1)
    return per_sample.mean()


class TripleContrastiveLoss(Objective):
    name = "tcl"
    needs_tokens = True
    extra_inputs = ("image_view2", "text_view2")

    # Buffers made in setup() (queues only with the momentum encoder) and the unregistered
    # online model, declared so the type checker sees them as tensors / a CLIP.
    steps_done: torch.Tensor
    image_queue: torch.Tensor
    text_queue: torch.Tensor
    queue_ptr: torch.Tensor
    _model: CLIP

    def __init__(
        self,
        intra_weight: float = 1.0,
        local_weight: float = 1.0,
        momentum_encoder: bool = True,
        momentum: float = 0.995,
        queue_size: int = 65536,
        distill_alpha: float = 0.4,
        alpha_warmup_steps: int = 1000,
    ):
        super().__init__()
        if queue_size < 0 or not 0.0 <= momentum <= 1.0 or not 0.0 <= distill_alpha <= 1.0:
            raise ValueError(
                f"tcl: need queue_size >= 0 and momentum, distill_alpha in [0, 1], "
                f"got {queue_size}, {momentum}, {distill_alpha}"
            )
        if queue_size and not momentum_encoder:
            raise ValueError("tcl: a queue (queue_size > 0) needs momentum_encoder=true")
        self.intra_weight, self.local_weight = intra_weight, local_weight
        self.use_momentum, self.momentum, self.queue_size = momentum_encoder, momentum, queue_size
        self.distill_alpha, self.alpha_warmup_steps = distill_alpha, alpha_warmup_steps
        self.momentum_model: CLIP | None = None

    def setup(self, model: CLIP) -> None:
        object.__setattr__(self, "_model", model)
        self.register_buffer("steps_done", torch.zeros((), dtype=torch.long))
        if not self.use_momentum:
            return
        self.momentum_model = copy.deepcopy(model)
        self.momentum_model.requires_grad_(False)
        queue = F.normalize(torch.randn(2, self.queue_size, model.config.embed_dim), dim=-1)
        self.register_buffer("image_queue", queue[0].clone())
        self.register_buffer("text_queue", queue[1].clone())
        self.register_buffer("queue_ptr", torch.zeros((), dtype=torch.long))

    @torch.no_grad()
    def after_step(self, model: CLIP, step: int) -> None:
        self.steps_done.add_(1)
        if self.momentum_model is None:
            return
        for ema, online in zip(self.momentum_model.parameters(), model.parameters()):
            ema.mul_(self.momentum).add_(online.detach(), alpha=1 - self.momentum)

    @torch.no_grad()
    def _enqueue(self, image_feats: torch.Tensor, text_feats: torch.Tensor) -> None:
        count = min(image_feats.shape[0], self.queue_size)
        if count == 0:
            return
        slots = (
            self.queue_ptr + torch.arange(count, device=self.queue_ptr.device)
        ) % self.queue_size
        self.image_queue[slots] = image_feats[:count].to(self.image_queue.dtype)
        self.text_queue[slots] = text_feats[:count].to(self.text_queue.dtype)
        self.queue_ptr.copy_((self.queue_ptr + count) % self.queue_size)

    def _view_features(self, encoder: CLIP, batch: Batch, momentum: bool) -> ViewFeatures | None:
        """(globals [B, D] ×2, pooled patches, words, word mask) of the second views, or None.

        The momentum encoder sees ``image_view2`` (or the batch's images) and, as in the code,
        the batch's own captions; the online variant needs both view extras."""
        images = batch.extras.get("image_view2")
        texts = batch.text if momentum else batch.extras.get("text_view2")
        if images is None or texts is None:
            if not momentum:
                return None
            images = batch.images
        assert texts is not None  # None returned above unless momentum, whose texts = batch.text
        image_global, patches = encoder.encode_image(images, normalize=True, return_tokens=True)
        text_global, words, mask = encoder.encode_text(texts, normalize=True, return_tokens=True)
        return (
            F.normalize(image_global.float(), dim=-1),
            F.normalize(text_global.float(), dim=-1),
            pool_patches(F.normalize(patches.float(), dim=-1)),
            F.normalize(words.float(), dim=-1),
            word_mask(mask),
        )

    def _alpha(self) -> float:
        warm = self.alpha_warmup_steps
        ramp = 1.0 if warm <= 0 else min(1.0, int(self.steps_done) / warm)
        return self.distill_alpha * ramp

    def forward(self, outputs: ModelOutput, batch: Batch) -> dict[str, torch.Tensor]:
        if outputs.image_tokens is None or outputs.text_tokens is None:
            raise ValueError("the tcl objective needs token features (return_tokens=True)")
        scale = outputs.logit_scale.float()
        images = F.normalize(outputs.image_embeds.float(), dim=-1)
        texts = F.normalize(outputs.text_embeds.float(), dim=-1)
        all_images, all_texts = gather_global(images), gather_global(texts)
        if self.momentum_model is not None:
            with torch.no_grad():
                views = self._view_features(self.momentum_model, batch, momentum=True)
                assert views is not None  # the momentum encoder always has second views
                images_m, texts_m, patches_m, words_m, words_mask = views
                images_m, texts_m = gather_global(images_m), gather_global(texts_m)
                image_bank = torch.cat([images_m, self.image_queue.clone().float()])
                text_bank = torch.cat([texts_m, self.text_queue.clone().float()])
                hard = torch.eye(len(images_m), image_bank.shape[0], device=images.device)
                alpha = self._alpha()
                i2t_targets = (
                    alpha * F.softmax(scale * images_m @ text_bank.T, 1) + (1 - alpha) * hard
                )
                t2i_targets = (
                    alpha * F.softmax(scale * texts_m @ image_bank.T, 1) + (1 - alpha) * hard
                )
            cross = (
                soft_cross_entropy(scale * all_images @ text_bank.T, i2t_targets)
                + soft_cross_entropy(scale * all_texts @ image_bank.T, t2i_targets)
            ) / 2
            intra = (
                soft_cross_entropy(scale * all_images @ image_bank.T, hard)
                + soft_cross_entropy(scale * all_texts @ text_bank.T, hard)
            ) / 2
            if self.training:
                self._enqueue(images_m, texts_m)
        else:
            hard = torch.eye(len(all_images), device=images.device)
            cross = (
                soft_cross_entropy(scale * all_images @ all_texts.T, hard)
                + soft_cross_entropy(scale * all_texts @ all_images.T, hard)
            ) / 2
            online = self._view_features(self._model, batch, momentum=False)
            if online is None:  # locals from this forward, IMC skipped
                intra = torch.zeros((), device=images.device)
                patches_m = pool_patches(F.normalize(outputs.image_tokens.float(), dim=-1))
                words_m = F.normalize(outputs.text_tokens.float(), dim=-1)
                assert outputs.text_token_mask is not None  # CLIP sets it with text_tokens
                words_mask = word_mask(outputs.text_token_mask)
            else:
                images_2, texts_2, patches_m, words_m, words_mask = online
                images_2, texts_2 = gather_global(images_2), gather_global(texts_2)
                intra = (
                    soft_cross_entropy(scale * all_images @ images_2.T, hard)
                    + soft_cross_entropy(scale * all_texts @ texts_2.T, hard)
                ) / 2
        local = (
            in_batch_local_global(patches_m, images, scale)
            + in_batch_local_global(words_m, texts, scale, words_mask)
        ) / 2
        loss = cross + self.intra_weight * intra + self.local_weight * local
        return {
            "loss": loss,
            "cross_modal": cross.detach(),
            "intra_modal": intra.detach(),
            "local_global": local.detach(),
        }
