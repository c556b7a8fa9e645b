"""The run-time setup every stage's command gets before its entry point runs: what changes the figures besides
code, data and params, so every stage depends on this module (vila/pipeline/closure.py).

For a stage that computes with torch: the CPU kernel pins of `cpu_isa` (vila/cpu.py; before torch is imported),
the seed, deterministic kernels, and torch's CPU threads from `threads.<kind>` (float reductions depend on the
thread count). A stage that does not compute with torch gets none of it, and torch is not imported for it.
"""

from __future__ import annotations

from typing import Any

THREAD_KINDS = ("backbone", "train", "evaluate")  # params.yaml's threads.*


def setup(params: dict[str, Any], uses_torch: bool, threads: int | str) -> None:
    """threads: a kind of THREAD_KINDS (torch gets params["threads"][kind]); otherwise the stage sets its own."""
    if not uses_torch:
        return
    from vila.cpu import pin_cpu

    pin_cpu(params["cpu_isa"])
    import torch

    torch.manual_seed(params["seed"])
    torch.use_deterministic_algorithms(True, warn_only=True)
    if threads in THREAD_KINDS:
        torch.set_num_threads(params["threads"][threads])
