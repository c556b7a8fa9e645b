"""CPU numerics: the instruction set torch's kernels may use, pinned so the figures are the same bits on
every x86-64 machine.

With identical data, code and seed, the CPU alone changes a trained model: torch's own vectorised
kernels (ATen), oneDNN and MKL each pick code paths by the instruction set they find (AVX2, AVX-512,
AMX), and their float sums round differently. Measured: a teacher trained with only one or two of the
three layers capped to AVX2 on an AVX-512 machine gives yet other weights than with all three, so all
three are pinned. MKL's own caps (MKL_CBWR=AVX2, SSE4_2, ...) hold only on Intel CPUs: on others MKL silently
takes its AUTO branch (measured on an AMD EPYC: AVX2 and SSE4_2 give the same weights, other than the
default's). Its COMPATIBLE branch (SSE2 without the approximate rcpps/rsqrtps) is documented to give the same
results on Intel and AMD, so that is the one pinned. Each layer reads its variable once, when torch first uses it, so `pin_cpu` runs before
`import torch` (vila's CLI does it first thing; tests/conftest.py for the test process).

`cpu_isa: avx2` in params.yaml (every x86-64 CPU of the last decade has AVX2); `native` leaves the
libraries to choose (faster on AVX-512 machines, other bits). Non-x86 machines are never pinned.
"""

from __future__ import annotations

import hashlib
import os
import platform
import sys
from typing import Any

PINS: dict[str, dict[str, str]] = {
    "avx2": {
        "ATEN_CPU_CAPABILITY": "avx2",  # torch's own kernels (vectorised elementwise ops, reductions, softmax)
        "ONEDNN_MAX_CPU_ISA": "AVX2",  # oneDNN (convolution, some linear and layer-norm paths)
        "MKL_CBWR": "COMPATIBLE",  # MKL (every matmul): its one code path that is the same on Intel and AMD CPUs
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


def capability() -> dict[str, Any]:
    """What this process's torch computes with: for provenance and the figures' JSON."""
    import torch

    return {"aten": torch.backends.cpu.get_cpu_capability(), "machine": platform.machine(),
            "pins": {k: os.environ[k] for k in PINS["avx2"] if k in os.environ}}


def numerics_fingerprint(steps: int = 4, seed: int = 0) -> str:
    """sha256 of the tiny backbone's weights after `steps` steps of its image-set pretraining (no video, no
    files): the same string wherever the kernels compute the same bits. A few seconds on one core."""
    import torch

    from vila.backbone import embedded_backbone, pretrain_embedded

    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True, warn_only=True)
    model, tokenizer = embedded_backbone(seed)
    params = {"seed": seed, "data": {"synthqa": {"size": 32}},
              "backbone": {"steps": steps, "batch_size": 8, "lr": 2e-3, "weight_decay": 0.01, "warmup_steps": 1}}
    pretrain_embedded(model, tokenizer, params)
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().contiguous().numpy().tobytes())
    return digest.hexdigest()
