"""Building, loading and saving models (safetensors only; loading never unpickles)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

from vila.models.modeling import ViLAConfig, ViLAModel

log = logging.getLogger(__name__)

FROZEN_PREFIXES = ("vision_model.", "language_model.", "teacher.")


def save_model(model: ViLAModel, tokenizer: Any, out: Path) -> None:
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out / "tokenizer")  # apart from config.json, which Auto* would misread
    qformer_tokenizer = getattr(tokenizer, "qformer_tokenizer", None)  # real InstructBLIP: a BERT tokenizer
    if qformer_tokenizer is not None:
        qformer_tokenizer.save_pretrained(out / "qformer_tokenizer")


def load_model(path: Path, **overrides: Any) -> tuple[ViLAModel, Any]:
    from vila.models.tokenizer import load_tokenizer

    path = Path(path)
    if not (path / "config.json").exists() or not list(path.glob("*.safetensors")):
        raise FileNotFoundError(f"{path}: not a saved model (expected config.json and *.safetensors)")
    from safetensors.torch import load_file

    config = ViLAConfig.from_pretrained(path)
    for k, v in overrides.items():
        setattr(config, k, v)
    # Build, then load the safetensors shards ourselves: explicit, strict, never unpickles, and it works
    # for peft-wrapped (unmerged LoRA) language models too.
    model = ViLAModel(config)
    state: dict[str, torch.Tensor] = {}
    for shard in sorted(path.glob("*.safetensors")):
        state.update(load_file(shard))
    missing, unexpected = model.load_state_dict(state, strict=False)
    tied = _tied_names(model)
    missing = [k for k in missing if k not in tied]
    if missing or unexpected:
        raise ValueError(f"{path}: checkpoint does not match its config (missing {missing[:5]}, unexpected {unexpected[:5]})")
    tokenizer = load_tokenizer(path / "tokenizer")
    if (path / "qformer_tokenizer").exists():
        tokenizer.qformer_tokenizer = load_tokenizer(path / "qformer_tokenizer")
    return model.eval(), tokenizer


def _tied_names(model: torch.nn.Module) -> set[str]:
    """Parameter names that share storage with another parameter (saved once)."""
    seen: dict[int, str] = {}
    tied = set()
    for name, p in model.named_parameters(remove_duplicate=False):
        if p.data_ptr() in seen:
            tied |= {name, seen[p.data_ptr()]}
        seen.setdefault(p.data_ptr(), name)
    return tied


def derive(base: ViLAModel, **changes: Any) -> ViLAModel:
    """A new model with `base`'s weights where names and shapes match, and config `changes`."""
    config = ViLAConfig(**{**base.config.to_dict(), **changes})
    model = ViLAModel(config)
    own = model.state_dict()
    src = {k: v for k, v in base.state_dict().items() if k in own and own[k].shape == v.shape}
    missing, _ = model.load_state_dict(src, strict=False)
    log.debug("derive: fresh %s", missing)
    return model


def freeze_for_finetuning(model: ViLAModel) -> list[str]:
    """ViT, LM and the teacher branch frozen; LoRA adapters (if any) stay trainable."""
    trainable = []
    for name, p in model.named_parameters():
        frozen = name.startswith(FROZEN_PREFIXES) and "lora_" not in name
        p.requires_grad_(not frozen)
        if not frozen:
            trainable.append(name)
    return trainable
