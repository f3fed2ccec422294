"""What machine a figure was measured on: CPU model, the vector-ISA flags that decide speed and
numerics, the kernels PyTorch dispatches to, and the accelerator.

Every benchmark result and every README figure carries :func:`machine_info` (plus the precision
it ran), because the same command differs several-fold between an AVX2-only CPU (bf16 runs
emulated, fp32 is the fast path) and one with AVX-512 BF16 / AMX (bf16 is the fast path), and
numerics differ too (``--precision auto`` resolves to bf16 only on the latter).

Flags come from ``/proc/cpuinfo`` (Linux); elsewhere only PyTorch's dispatch level is known.
"""

from __future__ import annotations

import os
import platform
from functools import cache
from pathlib import Path

# The flags that change clipforge's speed or numerics, in the spelling of /proc/cpuinfo.
SPEED_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")
CPUINFO = Path("/proc/cpuinfo")


@cache
def _read_cpuinfo(path: Path) -> tuple[str, frozenset[str]]:
    """(model name, all flags) of the first CPU listed; ("", ∅) when there is no cpuinfo."""
    try:
        text = path.read_text()
    except OSError:
        return "", frozenset()
    model, flags = "", frozenset[str]()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and not model:
            model = value.strip()
        elif key in ("flags", "Features") and not flags:  # Features: arm64
            flags = frozenset(value.split())
    return model, flags


def cpu_model() -> str:
    return _read_cpuinfo(CPUINFO)[0] or platform.processor() or platform.machine() or "unknown"


def cpu_flags() -> frozenset[str]:
    """Every flag of the first CPU in ``/proc/cpuinfo`` (empty off Linux)."""
    return _read_cpuinfo(CPUINFO)[1]


def cpu_has_fast_bf16() -> bool:
    """AVX-512 BF16 or AMX: bf16 matmuls run native kernels, not a slow fp32 emulation."""
    flags = cpu_flags()
    if flags:
        return "avx512_bf16" in flags or "amx_bf16" in flags
    import torch

    # no cpuinfo (macOS, Windows): trust PyTorch's dispatch level, AVX512 being the closest
    return (
        torch.backends.mkldnn.is_available() and "AVX512" in torch.backends.cpu.get_cpu_capability()
    )


def machine_info(precision: str | None = None) -> dict:
    """The record stored with every benchmark result: ``{"cpu", "cpu_flags", "kernels",
    "cores", "torch", "gpu", "precision"}``.

    ``cpu_flags`` lists only :data:`SPEED_FLAGS` this CPU has; ``kernels`` is PyTorch's CPU
    dispatch level (e.g. ``AVX2``, ``AVX512``; lowered by ``ATEN_CPU_CAPABILITY``); ``gpu`` is
    the CUDA device name or None; ``precision`` is what the measured code actually ran.
    """
    import torch

    flags = cpu_flags()
    return {
        "cpu": cpu_model(),
        "cpu_flags": [f for f in SPEED_FLAGS if f in flags],
        "kernels": torch.backends.cpu.get_cpu_capability(),
        "cores": os.cpu_count(),
        "torch": torch.__version__,
        "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        "precision": precision,
    }


def describe(info: dict) -> str:
    """One line for a README figure: ``measured on AMD EPYC (avx2; kernels AVX2), fp32``."""
    flags = ", ".join(info["cpu_flags"]) or "no AVX2"
    where = info["gpu"] or f"{info['cpu']} ({flags}; kernels {info['kernels']})"
    return f"measured on {where}, {info['precision'] or 'precision n/a'}"
