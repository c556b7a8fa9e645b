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
    if not (path / "config.json").exists() or not list(path.glob("model*.safetensors")):
        raise FileNotFoundError(f"{path}: not a saved model (expected config.json and model*.safetensors)")
    from safetensors.torch import load_file

    config = ViLAConfig.from_pretrained(path)
    for k, v in overrides.items():
        setattr(config, k, v)
    # Build, then load the safetensors shards ourselves: explicit, strict, never unpickles, and it works
    # for peft-wrapped (unmerged LoRA) language models too.
    model = ViLAModel(config)
    state: dict[str, torch.Tensor] = {}
    for shard in sorted(path.glob("model*.safetensors")):
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


# Which tensors a config change may reshape: the Frame-Prompter's depend on how many frames it picks and
# what it reads, the distiller's token-axis layer on the student's and the teacher's token counts.
RESHAPED_BY = {
    "prompter.": ("frames", "sampled_frames", "selector", "gate", "selector_input", "prompter_hidden"),
    "token_mapper.": ("frames", "sampled_frames"),
}


def derive(base: ViLAModel, **changes: Any) -> ViLAModel:
    """A new model with config `changes` and `base`'s weights wherever the new model has the same tensor.

    Strict: a tensor that starts fresh (absent from `base`) is logged by name; a tensor whose shape differs is
    an error naming it, unless the change explains it (RESHAPED_BY), in which case it starts fresh too."""
    config = ViLAConfig(**{**base.config.to_dict(), **changes})
    model = ViLAModel(config)
    own, src = model.state_dict(), base.state_dict()
    changed = {k for k, v in changes.items() if getattr(base.config, k, None) != v}
    keep, reshaped = {}, []
    for name, tensor in src.items():
        if name not in own:
            continue
        if own[name].shape == tensor.shape:
            keep[name] = tensor
            continue
        why = [p for p, keys in RESHAPED_BY.items() if name.startswith(p) and changed & set(keys)]
        if not why:
            raise ValueError(f"derive: {name} has shape {tuple(tensor.shape)} in the source model and "
                             f"{tuple(own[name].shape)} in the new one, which the change {sorted(changed)} does not "
                             "explain")
        reshaped.append(name)
    model.load_state_dict(keep, strict=False)
    fresh = sorted(set(own) - set(keep))
    if fresh:
        modules = sorted({".".join(n.split(".")[:2]) if n.startswith("teacher.") else n.split(".")[0] for n in fresh})
        log.info("derive: %d tensors start fresh (%s)%s", len(fresh), ", ".join(modules),
                 f"; reshaped by {sorted(changed)}: {', '.join(reshaped)}" if reshaped else "")
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
