"""The `backbone` stage: the image-language model every teacher starts from, and the frozen-ViT
feature cache.

Embedded profile: the tiny InstructBLIP-shaped model (ViT + Q-Former + T5) is pretrained from
scratch on frame-set instruction data drawn from the benchmark's generator (a few frames cut from a generated
clip, with their times and a question answerable from them, never from the QA splits), the stand-in for
InstructBLIP's image-language pretraining and for its LLM's sense of "first" and "before". Real profile: the
InstructBLIP weights are loaded from the local directory in `model.weights`.

Then the frozen ViT encodes every cached frame once; training never runs the ViT again. The cache
records the hash of the backbone it came from, and readers check it.
"""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import save_file
from tqdm import tqdm

from vila.data.prompts import LOCALIZER_MARK, NO, YES, frame_mark
from vila.device import autocast, device
from vila.io import atomic_dir, read_json, sha256_file, stable_hash, write_json
from vila.models.build import save_model
from vila.models.grounding import GROUNDING_HEADS_FILE, GroundingHeads
from vila.models.modeling import ViLAConfig, ViLAModel
from vila.models.tokenizer import answer_token_ids
from vila.models.weights import HOW_TO_GET_WEIGHTS, weights_errors
from vila.paths import CLIP_SPLITS, Paths
from vila.training.loop import Parts

log = logging.getLogger(__name__)


def prompt_token_ids(tokenizer: Any, frames: int) -> dict[str, Any]:
    """The fixed token ids a ViLAConfig records for this tokenizer: the answer prefix and letters, SeViLA's frame
    marks (`Frame {i}: ` for i = 1..frames, and the Localizer's `Frame: `) and its "yes"/"no" answers."""
    def ids(text: str) -> list[int]:
        return tokenizer(text, add_special_tokens=False).input_ids

    prefix, letters = answer_token_ids(tokenizer)
    yes_no = [ids(YES), ids(NO)]
    if any(len(x) != 1 for x in yes_no) or yes_no[0] == yes_no[1]:
        raise ValueError(f"tokenizer splits {YES!r}/{NO!r} as {yes_no}; the Localizer needs one token each")
    return {"answer_prefix_ids": prefix, "letter_ids": letters,
            "frame_prefix_ids": [ids(frame_mark(i)) for i in range(1, frames + 1)],
            "localizer_prefix_ids": ids(LOCALIZER_MARK), "yes_no_ids": [x[0] for x in yes_no]}


def embedded_backbone(seed: int) -> tuple[ViLAModel, Any]:
    from vila.data.synthqa import vocabulary
    from vila.models.presets import backbone_config
    from vila.models.tokenizer import build_word_tokenizer, word_vocabulary

    vocab = word_vocabulary(vocabulary())
    tokenizer = build_word_tokenizer(vocab)
    torch.manual_seed(seed)
    # time_signal: the tiny T5 learns frame order from the frames' time embeddings (ViLAConfig), as the real LLM
    # reads order from the sequence; every model fine-tuned from this backbone inherits it
    config = ViLAConfig(backbone=backbone_config("tiny", len(vocab)).to_dict(), frames=1, sampled_frames=1,
                        time_signal=True, **prompt_token_ids(tokenizer, 32))
    return ViLAModel(config), tokenizer


def load_instructblip(weights: str | None, preset: str) -> tuple[ViLAModel, Any]:
    """InstructBLIP weights from a local directory (save_pretrained layout), as a ViLAModel."""
    from transformers import AutoTokenizer, InstructBlipForConditionalGeneration

    if not weights or (errors := weights_errors(weights)):
        raise FileNotFoundError(errors[0] if weights else f"model.weights: not set: {HOW_TO_GET_WEIGHTS}")
    path = Path(weights)
    try:
        src = InstructBlipForConditionalGeneration.from_pretrained(path, local_files_only=True, use_safetensors=True)
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError) as e:  # transformers' own message, on one line, after the path it is about
        raise ValueError(f"model.weights: {path}: not loadable as InstructBLIP ({' '.join(str(e).split())})") from None
    config = ViLAConfig(backbone=src.config.to_dict(), frames=1, sampled_frames=1, **prompt_token_ids(tokenizer, 32))
    model = ViLAModel(config)
    for name in ("vision_model", "qformer", "language_projection", "language_model"):
        getattr(model, name).load_state_dict(getattr(src, name).state_dict())
    model.query_tokens.data.copy_(src.query_tokens.data)
    # the Q-Former reads the instruction with its own tokenizer
    tokenizer.qformer_tokenizer = AutoTokenizer.from_pretrained(path / "qformer_tokenizer", local_files_only=True)
    return model, tokenizer


class Pretraining(torch.nn.Module):
    """The model and its pretraining-only heads, trained and checkpointed together."""

    def __init__(self, model: ViLAModel, heads: GroundingHeads) -> None:
        super().__init__()
        self.model, self.heads = model, heads


def pretraining_groups(sets: list[Any], tokenizer: Any) -> Parts:
    """One generated frame-set batch (synthqa.FrameSet) as tensors, split by frame count (equal-length sets share a
    forward): each part weighted 1, its loss already scaled by its share of the batch (as one batch's would be)."""
    from vila.data import synthqa
    from vila.data.prompts import llm_prompt, qformer_prompt

    items = [synthqa.unified_item(fs.clip, "pretrain", i) for i, fs in enumerate(sets)]
    q = tokenizer([qformer_prompt(it) for it in items], padding=True, return_tensors="pt")
    p = tokenizer([llm_prompt(it) for it in items], padding=True, return_tensors="pt")
    parts = Parts()
    for n in sorted({len(fs.frame_ids) for fs in sets}):
        sel = [i for i, fs in enumerate(sets) if len(fs.frame_ids) == n]
        labels = [synthqa.frame_labels(sets[i].clip, sets[i].frame_ids) for i in sel]
        parts.append((1.0, {
            "frames": torch.from_numpy(np.stack([sets[i].pixels for i in sel])),
            "frame_index": torch.tensor([sets[i].frame_ids for i in sel]),
            "qformer_ids": q.input_ids[sel], "qformer_mask": q.attention_mask[sel],
            "input_ids": p.input_ids[sel], "attention_mask": p.attention_mask[sel],
            "labels": torch.tensor([items[i]["answer"] for i in sel]),
            "frame_labels": {k: torch.from_numpy(np.concatenate([fl[k] for fl in labels])) for k in labels[0]},
            "batch_size": len(items),
        }))
    return parts


class GeneratedStream:
    """The pretraining data: batch k is the k-th draw of one generator seeded by (seed, 11). Asked for batch k
    (a resumed run starts past 0; a DataLoader worker sees every n-th), it replays the draws before k: a few ms
    each, and the batches are those of an uninterrupted run."""

    def __init__(self, seed: int, batch_size: int, size: int, max_frames: int) -> None:
        self.seed, self.batch_size, self.size, self.max_frames = seed, batch_size, size, max_frames
        self.rng, self.next = np.random.default_rng([seed, 11]), 0

    def batch(self, k: int) -> list[Any]:
        from vila.data import synthqa

        if k < self.next:
            self.rng, self.next = np.random.default_rng([self.seed, 11]), 0
        while True:
            drawn = synthqa.pretraining_batch(self.batch_size, self.size, self.rng, self.max_frames)
            self.next += 1
            if self.next > k:
                return drawn


def pretrain_embedded(model: ViLAModel, tokenizer: Any, params: dict[str, Any], checkpoint_dir: Path,
                      heads: GroundingHeads | None = None) -> dict[str, Any]:
    """Frame-set instruction pretraining of the whole tiny model (ViT, Q-Former, projection, T5): the LM loss on
    the answer letter plus the Q-Former grounding loss (GroundingHeads), in the one training loop
    (vila/training/loop.py): one epoch of `backbone.steps` steps over a generated stream (GeneratedStream: resumable),
    no validation: the final weights are the result. `heads`: the grounding heads to train (new ones if None)."""
    from vila.training.loop import TrainSettings, train

    cfg, size = params["backbone"], params["data"]["synthqa"]["size"]
    heads = heads if heads is not None else GroundingHeads.for_model(model)
    both = Pretraining(model, heads)
    letters = torch.tensor(model.config.letter_ids)
    settings = TrainSettings(max_epochs=1, batch_size=cfg["batch_size"], lr=cfg["lr"], weight_decay=cfg["weight_decay"],
                             warmup_steps=cfg["warmup_steps"], grad_accum=1, grad_clip=1.0, patience=1, window=1, min_epochs=0,
                             max_steps=0,
                             checkpoint_every=cfg["checkpoint_every"], seed=params["seed"])
    stream = GeneratedStream(params["seed"], cfg["batch_size"], size, cfg["max_frames"])
    sums: dict[int, np.ndarray] = {}  # step -> (lm, grounding, right answers, questions) of this process's steps

    def load(idx: np.ndarray, rng: np.random.Generator, shard: slice) -> Parts:
        sets = stream.batch(int(idx[0]) // cfg["batch_size"])  # in order: indices k*B .. (k+1)*B-1
        return pretraining_groups([sets[i] for i in range(len(idx))[shard]], tokenizer)

    def loss(g: dict[str, Any], step: int) -> torch.Tensor:
        vit = model.encode_frames(g["frames"])
        queries = model.qformer_queries(vit, g["qformer_ids"], g["qformer_mask"])  # [B, F, Q, D]
        visual = model.add_time_signal(model.language_projection(queries).flatten(1, 2), g["frame_index"])
        vocab_logits = model.answer_logits(visual, g["input_ids"], g["attention_mask"])
        lm_loss = torch.nn.functional.cross_entropy(vocab_logits, letters[g["labels"]])
        ground_loss = heads.loss(queries.flatten(0, 1), g["frame_labels"])
        n = len(g["labels"])
        right = int((vocab_logits[:, letters[:4]].argmax(-1) == g["labels"]).sum())
        sums[step] = sums.get(step, np.zeros(4)) + [float(lm_loss.detach()) * n, float(ground_loss.detach()) * n, right, 0.0]
        sums[step][3] = g["batch_size"]
        return (lm_loss + ground_loss) * n / g["batch_size"]

    metrics = train(both, [{"params": list(both.parameters())}], settings.batch_size * cfg["steps"], load, loss, None,
                    settings, checkpoint_dir, None, desc="backbone: frame-set pretraining",
                    workers=params["data"]["workers"], shuffle=False)
    model.eval()
    history = [sums[k][:3] / sums[k][3] for k in sorted(sums)]
    tail = np.mean(history[-max(1, cfg["steps"] // 10):], axis=0)
    return {"final_lm_loss": float(tail[0]), "final_grounding_loss": float(tail[1]),
            "final_train_accuracy": float(tail[2]), "steps": metrics["steps"]}


@torch.no_grad()
def extract_features(model: ViLAModel, paths: Paths, out: Path, backbone_hash: str, batch: int = 16) -> None:
    for split in CLIP_SPLITS:
        src = paths.frames_dir / f"{split}.npy"
        if not src.exists():
            continue
        frames = np.load(src, mmap_mode="r")
        n, t = frames.shape[:2]
        dev = next(model.parameters()).device
        vc = model.config.backbone_config.vision_config
        tokens = (vc.image_size // vc.patch_size) ** 2 + 1
        cache = np.lib.format.open_memmap(out / f"{split}.npy", mode="w+", dtype=np.float16,
                                          shape=(n, t, tokens, vc.hidden_size))
        for i in tqdm(range(0, n, batch), desc=f"backbone: ViT features {split}", mininterval=2.0):
            clip = torch.from_numpy(np.ascontiguousarray(frames[i : i + batch])).to(dev)
            with autocast(dev):
                cache[i : i + batch] = model.encode_frames(clip).to(torch.float16).cpu().numpy()
        cache.flush()
        del cache
    write_json(out / "meta.json", {"backbone_sha256": backbone_hash, "dtype": "float16"})


def backbone_hash(model_dir: Path) -> str:
    return sha256_file(model_dir / "model.safetensors")


def check_features(paths: Paths, model_dir: Path) -> None:
    """Refuse a feature cache made by another backbone than the one about to be trained on."""
    meta = read_json(paths.features_dir / "meta.json")
    want = backbone_hash(model_dir)
    if meta["backbone_sha256"] != want:
        raise ValueError(f"{paths.features_dir}: features were computed by backbone {meta['backbone_sha256'][:12]}, "
                         f"but {model_dir} is {want[:12]}; rerun the backbone stage")


def run(params: dict[str, Any]) -> None:
    paths = Paths.from_params(params)
    started = time.perf_counter()
    if params["model"]["weights"]:
        model, tokenizer = load_instructblip(params["model"]["weights"], params["model"]["preset"])
        metrics: dict[str, Any] = {"source": str(params["model"]["weights"])}
    else:  # synthqa with the tiny preset: params validation refuses null weights anywhere else
        model, tokenizer = embedded_backbone(params["seed"])
        n_params = sum(p.numel() for p in model.parameters())
        log.info("backbone: tiny InstructBLIP, %.2fM parameters", n_params / 1e6)
        # Resumable state keyed by everything that defines the run, so a stale checkpoint is never reused.
        ckpt = paths.checkpoints("backbone-" + stable_hash(
            {"backbone": params["backbone"], "seed": params["seed"], "config": model.config.to_dict()}))
        heads = GroundingHeads.for_model(model)
        metrics = {"source": "embedded pretraining", "parameters": n_params,
                   **pretrain_embedded(model, tokenizer, params, ckpt, heads)}
    model_dir = paths.model("backbone")
    with atomic_dir(model_dir) as tmp:
        save_model(model, tokenizer, tmp)
        if not params["model"]["weights"]:
            save_file(heads.state_dict(), tmp / GROUNDING_HEADS_FILE)
        metrics["seconds"] = round(time.perf_counter() - started, 2)
        write_json(tmp / "metrics.json", metrics)
    if not params["model"]["weights"]:
        shutil.rmtree(ckpt, ignore_errors=True)  # the model is saved: the resumable state has served
    digest = backbone_hash(model_dir)
    with atomic_dir(paths.features_dir) as tmp:
        extract_features(model.to(device()), paths, tmp, digest)
    log.info("backbone: done in %.1f s (%s)", time.perf_counter() - started, metrics)
