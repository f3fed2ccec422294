"""Training objectives, chosen by name and combined with weights."""

from __future__ import annotations

from ..registry import Registry
from .alip import AlipLoss
from .base import Objective
from .cep import CepClipLoss
from .clip import ClipLoss
from .distill import DistillLoss
from .dreamlip import DreamLipLoss
from .filip import FilipLoss
from .hcl import HardNegativeContrastiveLoss
from .improved import ImprovedClipLoss
from .lexlip import LexLipLoss
from .lightclip import LightClipLoss
from .mlcd import MultiLabelClusterLoss
from .refine import HybridContrastiveDistillation, RandomFeatureAlignment
from .siglip import SigLipLoss
from .tcl import TripleContrastiveLoss
from .unime import UniMEHardNegativeLoss

OBJECTIVES: Registry[type[Objective]] = Registry(
    "objective",
    {
        "clip": ClipLoss,
        "siglip": SigLipLoss,
        "mlcd": MultiLabelClusterLoss,
        "cep": CepClipLoss,
        "hcl": HardNegativeContrastiveLoss,
        "unime": UniMEHardNegativeLoss,
        "distill": DistillLoss,
        "rafa": RandomFeatureAlignment,
        "hycd": HybridContrastiveDistillation,
        "clip_improved": ImprovedClipLoss,
        "filip": FilipLoss,
        "tcl": TripleContrastiveLoss,
        "lightclip": LightClipLoss,
        "dreamlip": DreamLipLoss,
        "alip": AlipLoss,
        "lexlip": LexLipLoss,
    },
)

__all__ = ["OBJECTIVES", "Objective", "ClipLoss", "SigLipLoss"]
