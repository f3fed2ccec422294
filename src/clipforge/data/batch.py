"""A collated training/eval batch."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch


@dataclass
class Batch:
    images: torch.Tensor  # [B, 3, H, W] float
    text: torch.Tensor  # [B, T] token ids
    keys: list[str]  # record keys, in batch order
    captions: list[str] = field(default_factory=list)
    labels: torch.Tensor | None = None  # [B] class index, where the source has classes
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (key, reason) of bad records
    extras: dict[str, Any] = field(default_factory=dict)  # objective-specific inputs (views, …)

    def __len__(self) -> int:
        return self.images.shape[0]

    def to(self, device: torch.device | str) -> Batch:
        def move(value):
            return value.to(device, non_blocking=True) if isinstance(value, torch.Tensor) else value

        return Batch(
            move(self.images),
            move(self.text),
            self.keys,
            self.captions,
            move(self.labels),
            self.skipped,
            {key: move(value) for key, value in self.extras.items()},
        )
