"""CLIP-Refine's two post-pre-training terms: RaFA and HyCD.

Yamaguchi, Feng, Kanai, Adachi, Chijiwa, "Post-pre-training for Modality Alignment in
Vision-Language Foundation Models", CVPR 2025. A short (one epoch, lr 1e-6) continuation of a
trained CLIP that closes the modality gap without losing zero-shot accuracy. Faithful to the
authors' code (github.com/yshinya6/clip-refine, ``updater/contrastive.py``: ``RandRegUpdater``
with ``distill_loss: kd``; ``config/01_post-pre-training/clip-refine.yaml``), which runs both on
the *projector outputs before the L2 norm* (``backbone.encode_image`` / ``encode_text``):
F_I, F_T [B, D] = ``ModelOutput.image_features`` / ``text_features``.

``rafa`` — random feature alignment. Each step, draw one reference per sample,
r ~ N(μ, σ² I) [B, D] (μ = 0, σ = 1), shared by the two modalities, and pull both features to it::

    L_RaFA = MSE(F_I, r) + MSE(F_T, r)           # MSE = mean over the B × D entries

Because the target is the same random point for an image and its caption, the two
distributions are drawn towards one common prior instead of staying in separate cones.
``shared=False`` draws separate references (an ablation of the paper).

``hycd`` — hybrid contrastive distillation from the frozen start model (a copy taken in
:meth:`setup`, or ``teacher: PATH``). With blend α, temperature τ and each model's logits l::

    P = α · Id + (1 − α) · softmax(l_teacher / τ)           # row-wise, [B, B]
    L_HyCD = τ² · ½ [ KL(P ‖ softmax(l_student / τ)) + the same for the transposes ]

``similarity`` chooses l. ``"dot"`` is the reference's: l = F_I F_Tᵀ, dot products of the
unnormalised features (for OpenAI's CLIP their norms make these about as sharp as the model's own
logits). ``"scaled_cosine"`` (default) is l = s · I Tᵀ with each model's own learned scale s —
the logits the model was trained to produce. clipforge defaults to it because a clipforge-trained
model learns through cosines only, so its feature norms carry no trained sharpness (they may
make the dot-product targets near uniform or near one-hot), while s always does. (The first
clipforge version used plain cosines at τ = 1: targets within ~e² of uniform, so the teacher
taught nearly nothing.) Defaults as released: α = 0.5, τ = 1, both weights 1, lr 1e-6 with
AdamW and weight decay 0.1, and no CLIP loss (``lambda_cont: 0``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..data.batch import Batch
from ..models.clip import CLIP, ModelOutput
from ..models.config import PreprocessConfig
from .base import Objective
from .distill import similarity_kl
from .teacher import Teacher, frozen_copy, load_teacher, pair_logits

SIMILARITIES = ("scaled_cosine", "dot")


def projector_outputs(outputs: ModelOutput, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """F_I, F_T [B, D] (before the L2 norm) as float32, or a clear error when absent."""
    if outputs.image_features is None or outputs.text_features is None:
        raise ValueError(
            f"the {name} objective needs the projector outputs before the L2 norm "
            "(ModelOutput.image_features / text_features, filled by CLIP.forward)"
        )
    return outputs.image_features.float(), outputs.text_features.float()


class RandomFeatureAlignment(Objective):
    name = "rafa"

    def __init__(self, mean: float = 0.0, std: float = 1.0, shared: bool = True):
        super().__init__()
        self.mean, self.std = mean, std
        self.shared = shared

    def reference(self, like: torch.Tensor) -> torch.Tensor:
        return self.mean + self.std * torch.randn_like(like)

    def forward(self, outputs: ModelOutput, batch: Batch) -> dict[str, torch.Tensor]:
        images, texts = projector_outputs(outputs, self.name)
        image_reference = self.reference(images)
        text_reference = image_reference if self.shared else self.reference(texts)
        image_term = F.mse_loss(images, image_reference)
        text_term = F.mse_loss(texts, text_reference)
        return {
            "loss": image_term + text_term,
            "image": image_term.detach(),
            "text": text_term.detach(),
        }


def hybrid_targets(teacher_logits: torch.Tensor, alpha: float, temperature: float) -> torch.Tensor:
    """α · Id + (1 − α) · softmax(teacher / τ), row-wise; [B, B]."""
    identity = torch.eye(
        teacher_logits.shape[0], device=teacher_logits.device, dtype=teacher_logits.dtype
    )
    return alpha * identity + (1 - alpha) * F.softmax(teacher_logits / temperature, dim=1)


class HybridContrastiveDistillation(Objective):
    name = "hycd"
    _student_preprocess: PreprocessConfig  # set in setup(), outside the module's state

    def __init__(
        self,
        alpha: float = 0.5,
        temperature: float = 1.0,
        similarity: str = "scaled_cosine",
        teacher: str | None = None,
    ):
        super().__init__()
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"hycd alpha must be in [0, 1], got {alpha}")
        if temperature <= 0:
            raise ValueError(f"hycd temperature must be > 0, got {temperature}")
        if similarity not in SIMILARITIES:
            raise ValueError(
                f"hycd similarity must be one of {', '.join(SIMILARITIES)}, got {similarity!r}"
            )
        self.alpha, self.temperature, self.similarity = alpha, temperature, similarity
        self.teacher_path = teacher

    def setup(self, model: CLIP) -> None:
        if self.teacher_path is None:
            teacher = Teacher(frozen_copy(model), None)
        else:
            teacher = load_teacher(self.teacher_path)
        object.__setattr__(self, "_teacher", teacher)
        object.__setattr__(self, "_student_preprocess", model.config.preprocess)

    @torch.no_grad()
    def teacher_logits(self, batch: Batch, device: torch.device) -> torch.Tensor:
        teacher: Teacher | None = getattr(self, "_teacher", None)
        if teacher is None:
            raise RuntimeError("hycd: setup(model) was not called before the first batch")
        dot = self.similarity == "dot"
        return teacher.logits(
            batch, self._student_preprocess, device, use_logit_scale=not dot, normalize=not dot
        )

    def student_logits(self, outputs: ModelOutput) -> torch.Tensor:
        if self.similarity == "dot":
            images, texts = projector_outputs(outputs, self.name)
            return pair_logits(images, texts, 1.0)
        return pair_logits(
            outputs.image_embeds.float(), outputs.text_embeds.float(), outputs.logit_scale.float()
        )

    def forward(self, outputs: ModelOutput, batch: Batch) -> dict[str, torch.Tensor]:
        student = self.student_logits(outputs)
        teacher = self.teacher_logits(batch, student.device)
        tau = self.temperature
        loss = (
            similarity_kl(student, hybrid_targets(teacher, self.alpha, tau), tau)
            + similarity_kl(student.T, hybrid_targets(teacher.T, self.alpha, tau), tau)
        ) / 2
        return {"loss": loss}
