"""Soft-label distillation of a teacher's image-text similarity distribution.

Hinton et al., "Distilling the Knowledge in a Neural Network", 2015, applied to CLIP's in-batch
similarity matrices as in TinyCLIP (Wu et al., ICCV 2023) and CLIP-KD (Yang et al., CVPR 2024).
For a batch, with each model's own logits l = s · I Tᵀ (s its logit scale; ``use_logit_scale=False``
uses raw cosines) and temperature τ::

    P = softmax(l_teacher / τ) row-wise,  Q = softmax(l_student / τ) row-wise
    L = τ² · ½ [ KL(P ‖ Q) + KL(Pᵀ ‖ Qᵀ) ]          # image→text rows and text→image rows

(KL summed over a row, averaged over rows — ``batchmean``; the τ² keeps gradient magnitudes
comparable across temperatures.) Default τ = 1. Combine with ``clip`` for the hard labels.

The teacher (``teacher: PATH`` — a run directory, checkpoint, clipforge or Hugging Face CLIP
directory) is loaded in :meth:`setup` with ``clipforge.load``, frozen, in eval mode, run under
``no_grad``; it sees re-tokenised captions and re-normalised/resized images
(:mod:`clipforge.objectives.teacher`). The distribution is over the local batch (no all-gather).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..data.batch import Batch
from ..models.clip import CLIP, ModelOutput
from ..models.config import PreprocessConfig
from .base import Objective
from .teacher import Teacher, load_teacher, pair_logits


def similarity_kl(
    student_logits: torch.Tensor, target_probs: torch.Tensor, temperature: float
) -> torch.Tensor:
    """τ² · KL(target ‖ softmax(student/τ)), rows summed then averaged."""
    log_q = F.log_softmax(student_logits / temperature, dim=1)
    return F.kl_div(log_q, target_probs, reduction="batchmean") * temperature**2


class DistillLoss(Objective):
    name = "distill"

    # set in setup() without registering the teacher as a submodule (see .teacher)
    _teacher: Teacher
    _student_preprocess: PreprocessConfig

    def __init__(self, teacher: str, temperature: float = 1.0, use_logit_scale: bool = True):
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"distill temperature must be > 0, got {temperature}")
        self.teacher_path = str(teacher)
        self.temperature = temperature
        self.use_logit_scale = use_logit_scale

    def setup(self, model: CLIP) -> None:
        teacher = load_teacher(self.teacher_path)
        if teacher.tokenizer is None:
            raise ValueError(f"{self.teacher_path}: the teacher has no tokenizer files")
        object.__setattr__(self, "_teacher", teacher)
        object.__setattr__(self, "_student_preprocess", model.config.preprocess)

    @torch.no_grad()
    def teacher_logits(self, batch: Batch, device: torch.device) -> torch.Tensor:
        teacher: Teacher | None = getattr(self, "_teacher", None)
        if teacher is None:
            raise RuntimeError("distill: setup(model) was not called before the first batch")
        if len(batch.captions) != len(batch):
            raise ValueError("distill needs the raw captions (Batch.captions) to re-tokenise")
        return teacher.logits(batch, self._student_preprocess, device, self.use_logit_scale)

    def forward(self, outputs: ModelOutput, batch: Batch) -> dict[str, torch.Tensor]:
        images, texts = outputs.image_embeds.float(), outputs.text_embeds.float()
        teacher = self.teacher_logits(batch, images.device)
        scale = outputs.logit_scale.float() if self.use_logit_scale else 1.0
        student = pair_logits(images, texts, scale)
        tau = self.temperature
        loss = (
            similarity_kl(student, F.softmax(teacher / tau, dim=1), tau)
            + similarity_kl(student.T, F.softmax(teacher.T / tau, dim=1), tau)
        ) / 2
        return {"loss": loss}
