"""The unit the optimizer trains: the model plus its weighted objectives.

Wrapping both in one module lets ``DistributedDataParallel`` synchronise objective-owned
parameters (heads, prototypes) together with the towers.
"""

from __future__ import annotations

import torch
from torch import nn

from ..data.batch import Batch
from ..models.clip import CLIP, ModelOutput
from ..objectives import OBJECTIVES, Objective
from .config import ObjectiveSpec


def build_objectives(specs: list[ObjectiveSpec]) -> dict[str, Objective]:
    """Instantiate each objective with its kwargs; names must be unique."""
    objectives: dict[str, Objective] = {}
    for spec in specs:
        if spec.name in objectives:
            raise ValueError(f"objective {spec.name!r} is listed twice")
        cls = OBJECTIVES.get(spec.name)
        try:
            objectives[spec.name] = cls(**spec.params)
        except TypeError as error:
            raise ValueError(
                f"objective {spec.name!r}: bad parameters {spec.params}: {error}"
            ) from None
    return objectives


class TrainModule(nn.Module):
    def __init__(self, model: CLIP, objectives: dict[str, Objective], weights: dict[str, float]):
        super().__init__()
        self.model = model
        self.objectives = nn.ModuleDict(objectives)
        self.weights = dict(weights)
        self.needs_tokens = any(o.needs_tokens for o in objectives.values())

    def forward(self, batch: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Total weighted loss and every named term (``{objective}/{term}``), detached."""
        outputs = self.model(batch.images, batch.text, return_tokens=self.needs_tokens)
        return self.weighted_loss(outputs, batch)

    def weighted_loss(
        self, outputs: ModelOutput, batch: Batch
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The objectives on given model outputs (GradCache feeds cached embeddings here)."""
        total = torch.zeros((), device=batch.images.device)
        terms: dict[str, torch.Tensor] = {}
        for name, objective in self.objectives.items():
            parts = objective(outputs, batch)
            if "loss" not in parts:
                raise ValueError(f"objective {name!r} returned no 'loss' term")
            total = total + self.weights[name] * parts["loss"].float()
            for term, value in parts.items():
                terms[f"{name}/{term}"] = value.detach().float()
        return total, terms
