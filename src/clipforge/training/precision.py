"""Choosing the compute precision: bf16 autocast only where the hardware runs it fast.

bf16 matmuls are ~4× faster than fp32 on CPUs with AVX-512 BF16 or AMX, but on CPUs without
them (e.g. AVX2-only) PyTorch falls back to slow reference kernels, >10× slower than fp32.
``auto`` therefore picks bf16 on CUDA devices that support it and on CPUs that report AVX-512
BF16 / AMX, and fp32 elsewhere.

The environment variable ``CLIPFORGE_PRECISION`` (``fp32`` or ``bf16``) replaces what ``auto``
would pick — never an explicit ``fp32``/``bf16``. With ``CLIPFORGE_PRECISION=bf16`` an AVX2
machine computes what an AVX-512 BF16 machine computes under ``auto`` (slowly), which is how the
test suite is checked for both kinds of machine on one; tests that compare two code paths pin
``fp32`` and so are unaffected.
"""

from __future__ import annotations

import contextlib
import os

import torch

from ..common.precision import PRECISIONS, Precision
from ..machine import cpu_has_fast_bf16

ENV_VAR = "CLIPFORGE_PRECISION"

__all__ = [
    "ENV_VAR",
    "PRECISIONS",
    "Precision",
    "autocast",
    "cpu_has_fast_bf16",
    "resolve_precision",
]


def resolve_precision(precision: Precision | str, device: torch.device) -> str:
    """``fp32`` or ``bf16``: an explicit choice as given; ``auto`` from ``$CLIPFORGE_PRECISION``
    if set, else bf16 on bf16-capable CUDA devices and CPUs with AVX-512 BF16 / AMX."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; expected auto, fp32 or bf16")
    if precision != "auto":
        return precision
    forced = os.environ.get(ENV_VAR, "").strip()
    if forced:
        if forced not in ("fp32", "bf16"):
            raise ValueError(f"{ENV_VAR}={forced!r}: expected fp32 or bf16")
        return forced
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return "bf16" if cpu_has_fast_bf16() else "fp32"


def autocast(precision: str, device: torch.device):
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()
