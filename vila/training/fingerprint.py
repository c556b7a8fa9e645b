"""The numerics fingerprint (`vila cpu`): whether this machine's kernels compute the bits the README's figures came
from. A few steps of the tiny backbone's pretraining, no files: the same digest wherever the kernels agree.
tests/test_cpu.py compares it with the committed one per CPU vendor (tests/data/cpu_fingerprints.json)."""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path

import torch

from vila.training.backbone import embedded_backbone, pretrain_embedded


def numerics_fingerprint(steps: int = 4, seed: int = 0) -> str:
    """sha256 of the tiny backbone's weights after `steps` steps of its frame-set pretraining (no video, no
    files): the same string wherever the kernels compute the same bits. A few seconds on one core."""
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True, warn_only=True)
    model, tokenizer = embedded_backbone(seed)
    params = {"seed": seed, "data": {"synthqa": {"size": 32}, "workers": 0},
              "backbone": {"steps": steps, "batch_size": 8, "lr": 2e-3, "weight_decay": 0.01, "warmup_steps": 1,
                           "checkpoint_every": steps, "max_frames": 4}}
    with tempfile.TemporaryDirectory(prefix="vila-fingerprint-") as ckpt:
        pretrain_embedded(model, tokenizer, params, Path(ckpt))
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().contiguous().numpy().tobytes())
    return digest.hexdigest()


def fingerprint_code() -> str:
    """sha256 of the code the numerics fingerprint runs (this file and vila.training.backbone's import closure inside
    vila/): a committed fingerprint is about the kernels only while this code is the code that made it."""
    from vila.pipeline.closure import ROOT, import_closure

    digest = hashlib.sha256()
    for path in sorted({*import_closure("vila.training.backbone"), "vila/training/fingerprint.py"}):
        digest.update(path.encode())
        digest.update((ROOT / path).read_bytes())
    return digest.hexdigest()
