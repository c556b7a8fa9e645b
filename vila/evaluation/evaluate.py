"""Prediction and the `evaluate` stage: accuracy per type (vila.data.metrics.score), key-frame
recall of the frames each variant read, and a sample of the chosen frames, written in the contract
of results/<dataset>/eval/<variant>.json."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from vila.data.dataset import Batcher, load_split
from vila.data.metrics import headline, score
from vila.data.sampling import uniform_indices
from vila.device import autocast, device, to_device
from vila.io import read_json, stable_hash, write_json
from vila.paths import Paths

log = logging.getLogger(__name__)


@torch.no_grad()
def predict(model: Any, batcher: Batcher, batch_size: int, desc: str = "predict",
            read: np.ndarray | None = None, localizer_scores: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(predicted option index [n], frame indices read [n, K]) for every question of the batcher. `read` [n, K]:
    the grid frames a uniform model reads instead of its uniform ones (another selector's choice).
    localizer_scores [n, T]: a SeViLA model's own Localizer's scores, already computed (the localize stage's)."""
    model.eval()
    cfg = model.config
    total = cfg.sampled_frames
    uniform = cfg.selector is None
    frames_needed = cfg.selector is not None and cfg.selector_input == "patch_embed"
    if read is not None and (not uniform or read.shape != (len(batcher.qa), cfg.frames)):
        raise ValueError(f"predict: frames to read need a uniform model and shape ({len(batcher.qa)}, {cfg.frames}), "
                         f"got {'a selecting model' if not uniform else read.shape}")
    dev = next(model.parameters()).device
    preds, chosen = [], []
    n = len(batcher.qa)
    for start in tqdm(range(0, n, batch_size), desc=desc, leave=False, mininterval=2.0):
        idx = np.arange(start, min(n, start + batch_size))
        frame_idx = None
        if uniform:
            frame_idx = read[idx] if read is not None else uniform_indices(total, cfg.frames, None, len(idx))
        batch = batcher.batch(idx, frame_idx, features=True, frames=frames_needed)
        batch.pop("labels")
        if localizer_scores is not None:
            batch["localizer_scores"] = torch.from_numpy(localizer_scores[idx])
        with autocast(dev):
            out = model(**to_device(batch, dev))
        preds.append(out.letter_logits.argmax(-1).cpu().numpy())
        chosen.append(frame_idx if uniform else out.chosen.cpu().numpy())
    return np.concatenate(preds), np.concatenate(chosen)


@torch.no_grad()
def frame_scores(model: Any, batcher: Batcher, batch_size: int, desc: str) -> tuple[np.ndarray, np.ndarray]:
    """([n, T] a selecting model's own per-frame scores: the Frame-Prompter's gate, or SeViLA's Localizer "yes"
    logit; [n, K] the frames it chooses), from the feature cache (the fast design's Prompter reads the decoded
    frames' patch embeddings)."""
    from vila.models.modeling import ForwardPass

    model.eval()
    dev = next(model.parameters()).device
    scores, chosen = [], []
    n = len(batcher.qa)
    for start in tqdm(range(0, n, batch_size), desc=desc, leave=False, mininterval=2.0):
        idx = np.arange(start, min(n, start + batch_size))
        b = to_device(batcher.batch(idx, None, features=True, frames=model.selects_before_vit), dev)
        p = ForwardPass(b["qformer_ids"], b["qformer_mask"], b["input_ids"], b["attention_mask"],
                        frames=b.get("frames"), vit_tokens=b["vit_tokens"], localizer_ids=b.get("localizer_ids"),
                        localizer_mask=b.get("localizer_mask"))
        with autocast(dev):
            model.step_select(p)
        scores.append(p.scores.float().cpu().numpy())
        chosen.append(p.chosen.cpu().numpy())
    return np.concatenate(scores), np.concatenate(chosen)


def accuracy(model: Any, batcher: Batcher, batch_size: int, read: np.ndarray | None = None) -> float:
    """Overall accuracy (the validation figure every training run converges on); `read`: see predict."""
    preds, _ = predict(model, batcher, batch_size, desc="validate", read=read)
    return float((preds == batcher.labels.numpy()).mean())


def interleave_types(qids: list[str], qtype: dict[str, str]) -> list[str]:
    """qids round-robin over question types (qid order within a type), so any prefix mixes the types."""
    rank: dict[str, int] = {}
    order = []
    for q in sorted(qids):
        t = str(qtype.get(q, ""))
        order.append((rank.setdefault(t, 0), t, q))
        rank[t] += 1
    return [q for _, _, q in sorted(order)]


def selection_summary(items: list[dict[str, Any]], chosen: np.ndarray, sample: int) -> dict[str, Any] | None:
    """The frames a sample of the questions was read with (types interleaved, so any prefix mixes them), and where
    the dataset has ground-truth key frames (synthqa) how many of them were read."""
    if not items:
        return None
    by_qid = {it["qid"]: i for i, it in enumerate(items)}
    picked = [by_qid[q] for q in interleave_types([it["qid"] for it in items], {it["qid"]: it.get("type", "") for it in items})]
    summary: dict[str, Any] = {"chosen": {items[i]["qid"]: [int(x) for x in chosen[i]] for i in picked[:sample]}}
    if "keyframes" not in items[0]:
        return summary
    from vila.data.synthqa import event_recall, keyframe_recall

    recall = [keyframe_recall(it["keyframes"], c.tolist()) for it, c in zip(items, chosen, strict=True)]
    events = [event_recall(it["key_events"], c.tolist()) for it, c in zip(items, chosen, strict=True)
              if "key_events" in it]
    summary["keyframe_recall"] = float(np.mean(recall))
    if len(events) == len(items):  # the key shots of which a frame was read (synthqa v2: the answer is visible in
        summary["key_event_recall"] = float(np.mean(events))  # every frame of a key shot)
    return summary


def eval_result(params: dict[str, Any], variant: str, frames: int, sampled_frames: int, items: list[dict[str, Any]],
                predictions: dict[str, int], chosen: np.ndarray, checkpoint: Path, **extra: Any) -> dict[str, Any]:
    """An eval JSON (workflow/schemas/eval.schema.json): the accuracy per type of `predictions` (qid -> option) on
    the split's questions, each question's prediction, a sample of the frames read (`chosen` [n, frames]) and the
    key-frame recall where the dataset has key frames, and `extra` fields (the selection study's)."""
    result: dict[str, Any] = {
        "dataset": params["dataset"],
        "variant": variant,
        "frames": frames,
        "sampled_frames": sampled_frames,
        "split": params["evaluate"]["split"],
        "n": len(items),
        "accuracy": score(params["dataset"], items, predictions),
        "checkpoint": str(checkpoint),
        "seed": int(params["seed"]),
        "predictions": predictions,
        **extra,
    }
    selection = selection_summary(items, chosen, params["evaluate"]["chosen_sample"])
    if selection:
        result["selection"] = selection
    return result


def localized_scores(paths: Paths, split: str, items: list[dict[str, Any]]) -> np.ndarray:
    """[n, T] SeViLA's Localizer's score of every frame of every question of a split (the localize stage's cache)."""
    meta = read_json(paths.localized / "meta.json")
    if split not in meta or meta[split]["qids_sha256"] != stable_hash([it["qid"] for it in items]):
        raise ValueError(f"{paths.localized}: did not score these {split} questions; rerun localize")
    return np.load(paths.localized / f"{split}.npy")


def cached_localizer_scores(model: Any, paths: Paths, split: str, items: list[dict[str, Any]]) -> np.ndarray | None:
    """A SeViLA model's Localizer scores of the split, when the localize stage cached them for this very Localizer
    (its weights' digest matches): 32 LLM passes per question are run once for every model that shares it."""
    if model.config.selector != "localizer" or not (paths.localized / "meta.json").exists():
        return None
    from vila.models.localizer import localizer_digest

    if read_json(paths.localized / "meta.json").get("localizer_weights_sha256") != localizer_digest(model):
        return None
    log.info("evaluate: the Localizer's scores of %s from %s (the same Localizer's weights)", split, paths.localized)
    return localized_scores(paths, split, items)


def run(params: dict[str, Any], variant: str) -> None:
    from vila.models.build import load_model

    paths = Paths.from_params(params)
    split = params["evaluate"]["split"]
    model, tokenizer = load_model(paths.model(variant))
    model.to(device())
    frames_needed = model.config.selector is not None and model.config.selector_input == "patch_embed"
    qa = load_split(paths, split, frames=frames_needed, features=True)
    batcher = Batcher(tokenizer, qa, localizer=model.config.selector == "localizer")
    cached = cached_localizer_scores(model, paths, split, qa.items)
    preds, chosen = predict(model, batcher, params["evaluate"]["batch_size"], desc=f"evaluate {variant}",
                            localizer_scores=cached)
    predictions = {it["qid"]: int(p) for it, p in zip(qa.items, preds, strict=True)}
    result = eval_result(params, variant, int(model.config.frames), int(model.config.sampled_frames), qa.items,
                         predictions, chosen, paths.model(variant))
    write_json(paths.eval_json(variant), result)
    acc, selection = result["accuracy"], result.get("selection")
    log.info("evaluate %s on %s/%s: overall %.4f mean %.4f%s", variant, params["dataset"], split, acc["overall"],
             headline(acc), f", key-frame recall {selection['keyframe_recall']:.3f}" if selection and "keyframe_recall" in selection else "")
