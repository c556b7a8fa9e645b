"""Building, loading and saving models (safetensors only; loading never unpickles).

A saved model carries the sha256 of each weights file (WEIGHTS_DIGESTS), written when it is saved and checked
before it is loaded: a model whose file changed after training (bits flipped on disk, a copy cut short, a file
from another run) is refused with its path, instead of flowing into the evaluations and the claims. A
`save_pretrained` folder from elsewhere (real InstructBLIP weights) has no digests and is loaded as it is.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

from vila.io import read_json, read_safetensors, sha256_file, write_json
from vila.models.modeling import ViLAConfig, ViLAModel

log = logging.getLogger(__name__)

FROZEN_PREFIXES = ("vision_model.", "language_model.", "teacher.")
WEIGHTS_DIGESTS = "weights.sha256.json"  # {weights file name: sha256}, beside the weights


def save_model(model: ViLAModel, tokenizer: Any, out: Path) -> None:
    model.save_pretrained(out, safe_serialization=True)
    write_json(out / WEIGHTS_DIGESTS, {p.name: sha256_file(p) for p in sorted(out.glob("model*.safetensors"))})
    tokenizer.save_pretrained(out / "tokenizer")  # apart from config.json, which Auto* would misread
    qformer_tokenizer = getattr(tokenizer, "qformer_tokenizer", None)  # real InstructBLIP: a BERT tokenizer
    if qformer_tokenizer is not None:
        qformer_tokenizer.save_pretrained(out / "qformer_tokenizer")


def load_model(path: Path, **overrides: Any) -> tuple[ViLAModel, Any]:
    from vila.models.tokenizer import load_tokenizer

    path = Path(path)
    if not (path / "config.json").exists() or not list(path.glob("model*.safetensors")):
        raise FileNotFoundError(f"{path}: not a saved model (expected config.json and model*.safetensors)")
    check_weights(path)
    config = ViLAConfig.from_pretrained(path)
    for k, v in overrides.items():
        setattr(config, k, v)
    # Build, then load the safetensors shards ourselves: explicit, strict, never unpickles, and it works
    # for peft-wrapped (unmerged LoRA) language models too.
    model = ViLAModel(config)
    state: dict[str, torch.Tensor] = {}
    for shard in sorted(path.glob("model*.safetensors")):
        state.update(read_safetensors(shard))
    missing, unexpected = model.load_state_dict(state, strict=False)
    tied = _tied_names(model)
    missing = [k for k in missing if k not in tied]
    if missing or unexpected:
        raise ValueError(f"{path}: checkpoint does not match its config (missing {missing[:5]}, unexpected {unexpected[:5]})")
    tokenizer = load_tokenizer(path / "tokenizer")
    if (path / "qformer_tokenizer").exists():
        tokenizer.qformer_tokenizer = load_tokenizer(path / "qformer_tokenizer")
    return model.eval(), tokenizer


def check_weights(path: Path) -> None:
    """Each weights file of the model at `path` is the one its save wrote (WEIGHTS_DIGESTS), where it wrote one."""
    digests_path = path / WEIGHTS_DIGESTS
    if not digests_path.exists():
        return
    digests = read_json(digests_path, "the sha256 of each weights file, written when the model was saved")
    shards = sorted(p.name for p in path.glob("model*.safetensors"))
    if not isinstance(digests, dict) or sorted(digests) != shards:
        raise ValueError(f"{digests_path}: lists {sorted(digests) if isinstance(digests, dict) else digests}, the "
                         f"folder holds {shards}: the model's files changed after it was saved; rerun its stage")
    for name, want in digests.items():
        if (got := sha256_file(path / name)) != want:
            raise ValueError(f"{path / name}: sha256 {got[:12]}, not the {want[:12]} its training wrote: the file "
                             "changed after it was saved (a copy cut short, bits flipped on disk, another run's "
                             "file); rerun its stage")


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
