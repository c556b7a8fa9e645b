"""CPU numerics: the instruction set torch's kernels may use, pinned so the figures are the same bits on
every x86-64 machine.

With identical data, code and seed, the CPU alone changes a trained model: torch's own vectorised
kernels (ATen), oneDNN and MKL each pick code paths by the instruction set they find (AVX2, AVX-512,
AMX), and their float sums round differently. Measured: a teacher trained with only one or two of the
three layers capped to AVX2 on an AVX-512 machine gives yet other weights than with all three, so all
three are pinned. One layer cannot be pinned across CPU vendors at an affordable cost: MKL's branches
(MKL_CBWR=AVX2, SSE4_2, ...) exist only on Intel CPUs; on others MKL takes its AUTO branch (measured on an
AMD EPYC: AVX2 and SSE4_2 give the same weights, both other than the default's). Its vendor-neutral
COMPATIBLE branch (SSE2) made a backbone step 55-65% slower here (0.46-0.49 -> 0.70-0.81 s at batch 32,
2 threads; AVX2: 0.48-0.50), which breaks the embedded run's 20-minute budget. So MKL_CBWR=AVX2: the same
bits on every Intel CPU with AVX2, MKL's deterministic AUTO branch elsewhere; the figures are bit-identical
between machines of one CPU vendor, and tests/test_cpu.py holds one committed fingerprint per vendor.

Each layer reads its variable once, when torch first uses it, so `pin_cpu` runs before `import torch`: vila's
CLI does it first thing in the stages that compute with torch (backbone, train, evaluate, speed).

`cpu_isa: avx2` in params.yaml (every x86-64 CPU of the last decade has AVX2); `native` leaves the
libraries to choose (faster on AVX-512 machines, other bits). Non-x86 machines are never pinned.
"""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path
from typing import Any

PINS: dict[str, dict[str, str]] = {
    "avx2": {
        "ATEN_CPU_CAPABILITY": "avx2",  # torch's own kernels (vectorised elementwise ops, reductions, softmax)
        "ONEDNN_MAX_CPU_ISA": "AVX2",  # oneDNN (convolution, some linear and layer-norm paths)
        "MKL_CBWR": "AVX2",  # MKL (every matmul): its AVX2 branch on Intel CPUs, its deterministic AUTO one elsewhere
    },
    "native": {},
}


def is_x86() -> bool:
    return platform.machine().lower() in ("x86_64", "amd64")


def pin_cpu(isa: str) -> dict[str, str]:
    """Set the dispatch caps of `isa` in this process's environment (inherited by its children); returns them.

    Must run before torch is imported: once torch has dispatched, the caps no longer apply, and a process
    whose kernels differ from the pins is an error rather than a source of other figures."""
    if isa not in PINS:
        raise ValueError(f"cpu_isa must be one of {sorted(PINS)}, got {isa!r}")
    pins = PINS[isa] if is_x86() else {}
    if "torch" in sys.modules and pins:
        have = sys.modules["torch"].backends.cpu.get_cpu_capability()
        if have.lower() != pins["ATEN_CPU_CAPABILITY"] or any(os.environ.get(k) != v for k, v in pins.items()):
            raise RuntimeError(f"torch was imported before the CPU pins of cpu_isa: {isa} were set (its kernels use "
                               f"{have}); set {' '.join(f'{k}={v}' for k, v in pins.items())} before starting Python")
    os.environ.update(pins)
    return pins


def cpu_vendor() -> str:
    """GenuineIntel, AuthenticAMD, ... (Linux's /proc/cpuinfo), else what `platform` says."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("vendor_id"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def capability() -> dict[str, Any]:
    """What this process's torch computes with: for provenance and the figures' JSON."""
    import torch

    return {"aten": torch.backends.cpu.get_cpu_capability(), "machine": platform.machine(), "vendor": cpu_vendor(),
            "pins": {k: os.environ[k] for k in PINS["avx2"] if k in os.environ}}
