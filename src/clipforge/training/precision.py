"""Choosing the compute precision: bf16 autocast only where the hardware runs it fast.

bf16 matmuls are ~4× faster than fp32 on CPUs with AVX-512 BF16 or AMX, but on CPUs without
them (e.g. AVX2-only) PyTorch falls back to slow reference kernels, >10× slower than fp32.
``auto`` therefore picks bf16 on CUDA devices that support it and on CPUs that report AVX-512
BF16 / AMX, and fp32 elsewhere.
"""

from __future__ import annotations

import contextlib
from functools import lru_cache
from pathlib import Path
import torch

from ..common.precision import PRECISIONS, Precision  # noqa: F401 (re-exported)



@lru_cache(maxsize=None)
def cpu_has_fast_bf16() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return torch.backends.mkldnn.is_available() and "AVX512" in \
            torch.backends.cpu.get_cpu_capability()
    return " avx512_bf16" in flags or " amx_bf16" in flags


def resolve_precision(precision: Precision, device: torch.device) -> str:
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; expected {', '.join(PRECISIONS)}")
    if precision != "auto":
        return precision
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return "bf16" if cpu_has_fast_bf16() else "fp32"


def autocast(precision: str, device: torch.device):
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()
