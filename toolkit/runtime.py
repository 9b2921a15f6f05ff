"""Where a run computes: the `device` and `torch_threads` keys every entry point shares, and the bf16 guard.

`RuntimeConfig` declares the two keys once; each entry point's config inherits them and calls `setup()`, which
checks them, sets torch's threads and returns the device.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from toolkit.cli import UserError
from toolkit.config import option


def check_device(name: str) -> None:
    """Config key 'device': auto, cpu, cuda or cuda:N, else one clear line."""
    if not (name in ("auto", "cpu", "cuda") or name.startswith("cuda:")):
        raise UserError(f"config key 'device': {name!r} is not one of: auto, cpu, cuda, cuda:N")


def wants_cuda(name: str) -> bool:
    return name.startswith("cuda") or (name == "auto" and torch.cuda.is_available())


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """auto -> cuda when a GPU is visible, else cpu; plain cuda -> this process's GPU under torchrun."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        name = f"cuda:{local_rank}"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UserError("config key 'device': cuda was asked for but no GPU is visible")
    return torch.device(name)


# oneDNN ISA caps (ONEDNN_MAX_CPU_ISA) under which its convolutions still compute bf16 in hardware.
ONEDNN_BF16_ISAS = {
    "ALL",
    "DEFAULT",
    "AVX512_CORE_BF16",
    "AVX512_CORE_FP16",
    "AVX10_1_512",
    "AVX512_CORE_AMX",
    "AVX10_1_512_AMX",
    "AVX512_CORE_AMX_FP16",
    "AVX10_1_512_AMX_FP16",
}


def native_bf16() -> bool:
    """Whether this CPU computes bf16 in hardware (AVX512-BF16 or AMX tiles), as torch reports it, and no ISA cap
    (ONEDNN_MAX_CPU_ISA, ATEN_CPU_CAPABILITY) stops torch from using it. Without it, bf16 autocast is emulated and
    runs about 10x slower than fp32 (docs/speed.md). The caps also emulate an AVX2-only CPU on a newer one:
    `ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2`."""
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    hardware = any(getattr(torch.cpu, name, lambda: False)() for name in checks)
    onednn_cap = os.environ.get("ONEDNN_MAX_CPU_ISA", os.environ.get("DNNL_MAX_CPU_ISA", "ALL")).upper()
    aten_cap = torch.backends.cpu.get_cpu_capability()
    return hardware and onednn_cap in ONEDNN_BF16_ISAS and aten_cap.startswith("AVX512")


def check_precision(precision: str, device: torch.device) -> None:
    """Refuse bf16 on a CPU that emulates it, in one line, before minutes are lost."""
    if precision == "bf16" and device.type == "cpu" and not native_bf16():
        raise UserError(
            "config key 'precision': bf16 on this CPU is emulated (torch reports "
            f"{torch.backends.cpu.get_cpu_capability()}, no AVX512-BF16 or AMX) and runs about 10x "
            "slower than fp32; use precision fp32 here"
        )


@dataclass
class RuntimeConfig:
    """The keys of where a run computes, shared by every entry point's config."""

    device: str = option("auto", "auto (cuda when present), cpu, cuda or cuda:N")
    torch_threads: int = option(0, "CPU threads for torch (0 = torch's default)", min=0)

    def check(self) -> None:
        check_device(self.device)

    def setup(self, local_rank: int = 0) -> torch.device:
        """Set torch's CPU threads and return the device this run computes on."""
        if self.torch_threads:
            torch.set_num_threads(self.torch_threads)
        return resolve_device(self.device, local_rank)
