"""The objective interface: model outputs + batch → named loss terms."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

from ..data.batch import Batch
from ..models.clip import CLIP, ModelOutput


class Objective(nn.Module):
    """Base class of every training objective.

    ``forward`` returns a dict of named scalar loss terms; the trainer multiplies the ``"loss"``
    term by the objective's weight (other terms are logged as ``{objective}/{term}`` — an
    objective that wants several terms optimised sums them into ``"loss"``). Objectives may own
    parameters (heads, queues); the optimizer trains them with the model.

    Hooks: ``setup(model)`` runs once before the optimizer is built (copy a momentum encoder, load
    a teacher); ``after_step(model, step)`` runs after each optimizer step (EMA updates).
    """

    name: ClassVar[str] = "objective"
    needs_tokens: ClassVar[bool] = False  # ask the model for token/patch features
    model_defaults: ClassVar[dict[str, Any]] = {}  # model config fields this objective expects
    extra_inputs: ClassVar[tuple] = ()  # names or objects: clipforge.data.extras

    def setup(self, model: CLIP) -> None:
        """Called once with the model before training starts."""

    def after_step(self, model: CLIP, step: int) -> None:
        """Called after every optimizer step."""

    def forward(self, outputs: ModelOutput, batch: Batch) -> dict[str, torch.Tensor]:
        raise NotImplementedError
