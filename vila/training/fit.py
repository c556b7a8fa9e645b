"""Fine-tuning by the one loop: every model that reads given frames of the grid (the uniform teachers, SeViLA's
Answerers, the selection study's readers: fit_reader, which differ only in the frames each question is read with),
and the saving of any trained model with its metrics (fit_and_save, which every training stage calls).

InstructBLIP video fine-tuning: ViT and LM frozen; Q-Former, query tokens and projection trained.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vila.data.augment import random_resized_crop
from vila.data.dataset import Batcher, load_split
from vila.data.sampling import uniform_indices
from vila.device import barrier, device, rank_and_world
from vila.evaluation.evaluate import accuracy
from vila.io import atomic_dir, stable_hash, write_json
from vila.models.build import derive, freeze_for_finetuning, load_model, save_model
from vila.models.modeling import ViLAModel
from vila.models.registry import teacher_name
from vila.paths import LIVE_DIR, Paths
from vila.training.backbone import check_features
from vila.training.loop import EvalFn, LoadFn, LossFn, TrainSettings, train

log = logging.getLogger(__name__)


def place_for_training(model: ViLAModel, params: dict[str, Any]) -> None:
    """On this rank's GPU if there is one (the loop then runs under bf16 autocast), else the CPU; with
    model.gradient_checkpointing the frozen LLM recomputes its activations in the backward pass (the
    gradient still flows through it to the Q-Former), which is what lets Flan-T5-XL train on one GPU."""
    model.to(device())
    if params["model"]["gradient_checkpointing"]:
        model.language_model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})


def fit_and_save(
    model: ViLAModel, tokenizer: Any, params: dict[str, Any], section: dict[str, Any], name: str,
    load_and_loss: tuple[LoadFn, LossFn], param_groups: list[dict[str, Any]], train_batcher: Batcher,
    val_batcher: Batcher, val_read: np.ndarray | None = None, out_dir: Path | None = None,
    eval_fn: EvalFn | None = None, chance: float | None = None,
) -> None:
    """Train by the one loop and convergence rule (train.convergence) and save models/<dataset>/<name> (or out_dir):
    weights, metrics.json (the validation curve and `converged`), DVCLive logs. val_read [n_val, k]: the frames a
    uniform-reading model reads of each val question (None: its uniform grid), so it is validated on the frames it
    trains to read. eval_fn: the validation figure, if not the val questions' answer accuracy (the Localizer's);
    chance: that figure's chance level (default: guessing among each val question's options)."""
    paths = Paths.from_params(params)
    convergence = params["train"]["convergence"]
    settings = TrainSettings.from_params(section, convergence, params["seed"])
    # Resumable state is keyed by everything that defines this run, so a stale checkpoint is never reused.
    data = {k: v for k, v in params["data"].items() if k != "workers"}  # workers never change results
    run_key = stable_hash({"name": name, "section": section, "convergence": convergence, "seed": params["seed"],
                           "data": data, "model": params["model"], "config": model.config.to_dict()})
    ckpt = paths.checkpoints(f"{name}-{run_key}")
    started = time.perf_counter()
    rank, world = rank_and_world()
    # Only rank 0 writes; the output folder appears (atomically) when training has finished.
    staging = atomic_dir(out_dir or paths.model(name)) if rank == 0 else contextlib.nullcontext(None)
    with staging as out:
        metrics = train(
            model, param_groups, len(train_batcher.qa), *load_and_loss,
            eval_fn or (lambda: accuracy(model, val_batcher, params["evaluate"]["batch_size"], read=val_read)),
            settings, ckpt, out / LIVE_DIR if out else None, desc=name, workers=params["data"]["workers"],
            val_size=len(val_batcher.qa),
            chance=chance if chance is not None else float(np.mean([1 / it["num_option"] for it in val_batcher.qa.items])),
        )
        metrics["seconds"] = round(time.perf_counter() - started, 2)
        metrics["trainable_parameters"] = sum(p.numel() for g in param_groups for p in g["params"])
        metrics["world_size"] = world
        if out:
            save_model(model, tokenizer, out)
            write_json(out / "metrics.json", metrics)
    barrier()
    if rank == 0:
        _remove_tree(ckpt)
    log.info("%s: best val accuracy %.4f (epoch %d of %d) in %.1f s; %s%s", name, metrics["best_val_accuracy"],
             metrics["best_epoch"], metrics["epochs_run"], metrics["seconds"],
             "converged" if metrics["converged"] else f"NOT converged (stopped by {metrics['stopped_by']})",
             "" if metrics["learned"] else f"; NOT LEARNED: never above chance ({metrics['chance']:.3f})")


def _remove_tree(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)


def run_teacher(params: dict[str, Any], frames: int) -> None:
    if frames not in params["train"]["teacher"]["frames"]:
        raise ValueError(f"--frames {frames}: not in train.teacher.frames {params['train']['teacher']['frames']}")
    fit_uniform(params, frames, teacher_name(frames))


# pick(question indices [B] into the train split, rng) -> [B, k] grid frames each question is read with
FramePicker = Callable[[np.ndarray, np.random.Generator], np.ndarray]


def fit_uniform(params: dict[str, Any], frames: int, name: str, frame_prefix: bool = False) -> None:
    """Fine-tune the backbone on `frames` uniformly sampled frames (one random frame per equal interval) into
    models/<name>; validated on the intervals' middle frames."""
    total = params["data"]["frames"]
    fit_reader(params, frames, name, lambda idx, rng: uniform_indices(total, frames, rng, len(idx)), None,
               frame_prefix=frame_prefix)


def fit_reader(params: dict[str, Any], frames: int, name: str, pick: FramePicker, val_read: np.ndarray | None,
               frame_prefix: bool = False, out_dir: Path | None = None) -> None:
    """Fine-tune the backbone into a model that reads `frames` given frames of the grid (train.teacher's settings,
    the one convergence rule): each training question read with the frames `pick` hands it, each val question
    with val_read's (None: the uniform grid's middles). frame_prefix: each frame's tokens preceded by `Frame {i}: `
    (SeViLA's Answerer). The teachers, SeViLA's Answerers and the selection study's readers differ only in `pick`."""
    paths = Paths.from_params(params)
    check_features(paths, paths.model("backbone"))
    base, tokenizer = load_model(paths.model("backbone"))
    total = params["data"]["frames"]
    torch.manual_seed(params["seed"])
    changes: dict[str, Any] = {"frame_prefix": True} if frame_prefix else {}
    model = derive(base, frames=frames, sampled_frames=total, selector=None, distill=False, **changes)
    if params["model"]["lora"]["enabled"]:
        model.add_lora(params["model"]["lora"])
        model.config.lora = params["model"]["lora"]
    place_for_training(model, params)
    names = freeze_for_finetuning(model)
    trainable = [p for n, p in model.named_parameters() if n in set(names)]
    augment = params["data"]["augment"] == "random_resized_crop"
    train_b = Batcher(tokenizer, load_split(paths, "train", features=not augment, frames=augment))
    val_b = Batcher(tokenizer, load_split(paths, "val", features=True))
    if val_read is not None and val_read.shape != (len(val_b.qa), frames):
        raise ValueError(f"{name}: val frames of shape {val_read.shape}, expected ({len(val_b.qa)}, {frames})")

    def load(idx: np.ndarray, rng: np.random.Generator, shard: slice) -> dict[str, torch.Tensor]:
        frame_idx = pick(idx, rng)  # drawn for the whole global batch
        batch = train_b.batch(idx[shard], frame_idx[shard], features=not augment, frames=augment)
        if augment:  # the frozen ViT runs on the augmented frames inside the model
            batch["frames"] = random_resized_crop(batch["frames"], rng)
        return batch

    def loss(batch: dict[str, torch.Tensor], step: int) -> torch.Tensor:
        return model(**batch).loss

    fit_and_save(model, tokenizer, params, params["train"]["teacher"], name, (load, loss),
                 [{"params": trainable}], train_b, val_b, val_read, out_dir)
