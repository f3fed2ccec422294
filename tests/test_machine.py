"""The machine record of benchmarks and the choice ``--precision auto`` makes from it."""

from __future__ import annotations

import pytest
import torch

from clipforge import machine
from clipforge.training.precision import ENV_VAR, resolve_precision

CPU = torch.device("cpu")
EPYC = "model name\t: AMD EPYC 7B13\nflags\t\t: fpu sse2 avx avx2 fma\n"
SAPPHIRE = (
    "model name\t: Intel(R) Xeon(R) Platinum 8481C\n"
    "flags\t\t: fpu avx avx2 avx512f avx512_bf16 amx_bf16 amx_tile\n"
)


@pytest.fixture
def cpuinfo(tmp_path, monkeypatch):
    """Point the flag reader at a fake /proc/cpuinfo with the given text."""
    monkeypatch.delenv(ENV_VAR, raising=False)

    def use(text: str) -> None:
        path = tmp_path / f"cpuinfo-{abs(hash(text))}"
        path.write_text(text + "\n" + text.replace("model name\t: ", "model name\t: second "))
        monkeypatch.setattr(machine, "CPUINFO", path)

    return use


@pytest.mark.parametrize(
    "flags, expected",
    [
        ("avx avx2 fma", "fp32"),  # AVX2 only: bf16 is emulated
        ("avx2 avx512f avx512bw", "fp32"),  # AVX-512 without its bf16 extension
        ("avx2 avx512f avx512_bf16", "bf16"),
        ("avx2 amx_bf16 amx_tile", "bf16"),
    ],
)
def test_auto_picks_bf16_only_on_cpus_with_native_bf16(cpuinfo, flags, expected):
    cpuinfo(f"model name\t: test cpu\nflags\t\t: fpu {flags}\n")
    assert resolve_precision("auto", CPU) == expected
    assert resolve_precision("fp32", CPU) == "fp32" and resolve_precision("bf16", CPU) == "bf16"


@pytest.mark.parametrize("supported, expected", [(True, "bf16"), (False, "fp32")])
def test_auto_on_cuda_follows_the_device_not_the_cpu(cpuinfo, monkeypatch, supported, expected):
    cpuinfo(EPYC)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: supported)
    assert resolve_precision("auto", torch.device("cuda")) == expected


def test_environment_variable_replaces_auto_only(cpuinfo, monkeypatch):
    cpuinfo(EPYC)
    monkeypatch.setenv(ENV_VAR, "bf16")
    assert resolve_precision("auto", CPU) == "bf16"  # AVX2, forced
    assert resolve_precision("fp32", CPU) == "fp32"  # a pinned choice stays
    cpuinfo(SAPPHIRE)
    monkeypatch.setenv(ENV_VAR, "fp32")
    assert resolve_precision("auto", CPU) == "fp32"
    monkeypatch.setenv(ENV_VAR, "fp16")
    with pytest.raises(ValueError, match=f"{ENV_VAR}='fp16'"):
        resolve_precision("auto", CPU)
    with pytest.raises(ValueError, match="'half'"):
        resolve_precision("half", CPU)


def test_machine_info_names_the_cpu_its_speed_flags_and_the_precision(cpuinfo):
    cpuinfo(SAPPHIRE)
    info = machine.machine_info("bf16")
    assert info["cpu"] == "Intel(R) Xeon(R) Platinum 8481C"  # the first CPU listed
    assert info["cpu_flags"] == ["avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile"]
    assert info["precision"] == "bf16" and info["kernels"] and info["torch"] == torch.__version__
    assert machine.describe(info) == (
        "measured on Intel(R) Xeon(R) Platinum 8481C (avx2, "
        f"avx512f, avx512_bf16, amx_bf16, amx_tile; kernels "
        f"{info['kernels']}), bf16"
    )
    cpuinfo(EPYC)
    assert machine.machine_info("fp32")["cpu_flags"] == ["avx2"]


def test_no_cpuinfo_falls_back_to_the_platform(tmp_path, monkeypatch):
    monkeypatch.setattr(machine, "CPUINFO", tmp_path / "missing")
    info = machine.machine_info()
    assert info["cpu"] and info["cpu_flags"] == [] and info["precision"] is None
