"""CPU numerics: the instruction set torch's kernels may use, pinned so the figures are the same bits on
every x86-64 machine of one CPU vendor.

With identical data, code and seed, the CPU alone changes a trained model: torch's own vectorised kernels
(ATen), oneDNN and MKL each pick code paths by the instruction set they find (AVX2, AVX-512, AMX), and their
float sums round differently; a teacher trained on an AVX-512 machine with one, two or all three layers
capped to AVX2 gave three different weight files. So `cpu_isa: avx2` caps ATen and oneDNN at AVX2 (every
x86-64 CPU of the last decade has it), and MKL at its AVX2 branch on Intel CPUs.

MKL is the layer that cannot be pinned across vendors at an affordable cost. Its branches (MKL_CBWR=AVX2,
SSE4_2, ...) exist on Intel CPUs only; on others MKL takes its AUTO reproducibility branch instead (measured
on an AMD EPYC: AVX2 and SSE4_2 give the same weights, other than the default's), which made a 32-frame
teacher step 15% slower there (0.43-0.44 -> 0.50 s, 1 thread) and pins no instruction set. Its
vendor-neutral COMPATIBLE branch (SSE2) made a backbone step 55-65% slower (0.46-0.49 -> 0.70-0.81 s at
batch 32, 2 threads), which the embedded run's 20-minute budget cannot carry. So MKL's variable is set on
Intel CPUs only, and tests/test_cpu.py holds one committed fingerprint per CPU vendor.

Each layer reads its variable once, when torch first uses it, so `pin_cpu` runs before `import torch`:
vila/runtime.py does it first thing in the stages that compute with torch (backbone, train, evaluate, speed).
`native` leaves the libraries to choose (faster on AVX-512 machines, other bits). Non-x86 CPUs are never
pinned.
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
    },
    "native": {},
}
INTEL_PINS = {"avx2": {"MKL_CBWR": "AVX2"}}  # MKL (every matmul): its AVX2 branch, which exists on Intel CPUs only


def is_x86() -> bool:
    return platform.machine().lower() in ("x86_64", "amd64")


def pins_for(isa: str) -> dict[str, str]:
    """The environment caps of `isa` on this machine (none on non-x86 CPUs; MKL's on Intel CPUs only)."""
    if isa not in PINS:
        raise ValueError(f"cpu_isa must be one of {sorted(PINS)}, got {isa!r}")
    if not is_x86():
        return {}
    return {**PINS[isa], **(INTEL_PINS.get(isa, {}) if cpu_vendor() == "GenuineIntel" else {})}


def pin_cpu(isa: str) -> dict[str, str]:
    """Set the dispatch caps of `isa` in this process's environment (inherited by its children); returns them.

    Must run before torch is imported: once torch has dispatched, the caps no longer apply, and a process
    whose kernels differ from the pins is an error rather than a source of other figures."""
    pins = pins_for(isa)
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
            "pins": {k: os.environ[k] for k in (*PINS["avx2"], *INTEL_PINS["avx2"]) if k in os.environ}}
