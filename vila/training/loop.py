"""One training loop for every stage: AdamW, linear warm-up then cosine, gradient accumulation and
clipping, one convergence rule (below), resumable checkpoints, DVCLive logging.

The convergence rule, the same for every model that validates (teachers, students, SeViLA's Answerers and
Localizer, the selection study's answerers): after each epoch the validation accuracy is averaged over the last
`window` epochs (a 300-question val set moves a single epoch's figure by a few points either way; the first full
window is the curve's first point); training stops when that smoothed curve has not reached a new best for
`patience` epochs and the latest epoch is not the best single one, but never before `min_epochs` (a model may sit
near chance for several epochs before it takes off).

The weights kept are the latest epoch's that beat the kept ones by more than the kept figure's standard error on
the val set (sqrt(p (1 - p) / n)): a val set's noise does not pick among epochs of one level. (Keeping the raw
maximum of a flat curve kept an arbitrary late epoch: the 4-frame teacher, near chance, was kept at epoch 8 of
14 instead of 1 for a difference of 0.7 points, and the students initialised from it reached 0.52 validation
accuracy instead of 0.88.) A run that stops so has converged; one that reaches `max_epochs` (or `max_steps`) first has not, and
its metrics.json says so; a run whose kept figure never left chance has not learned (`learned: false`).

Randomness is derived from (seed, epoch, step): the data order of an epoch, the frames sampled per
interval and the Gumbel noise of a step. A run resumed from a checkpoint therefore replays exactly
the steps an uninterrupted run would take, and ends with identical weights (on CPU).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from vila.device import autocast, barrier, rank_and_world, to_device
from vila.io import atomic_dir, read_json, read_safetensors, write_json

log = logging.getLogger(__name__)


@dataclass
class TrainSettings:
    max_epochs: int
    batch_size: int
    lr: float
    weight_decay: float
    warmup_steps: int
    grad_accum: int
    grad_clip: float
    patience: int
    window: int
    min_epochs: int
    max_steps: int
    checkpoint_every: int
    seed: int

    @classmethod
    def from_params(cls, section: dict[str, Any], convergence: dict[str, Any], seed: int) -> TrainSettings:
        """A training section of params.yaml (optimiser and batch) with the one convergence rule
        (train.convergence: max_epochs, patience, window)."""
        merged = {**section, **convergence}
        return cls(**{k: merged[k] for k in cls.__dataclass_fields__ if k != "seed"}, seed=seed)


def smoothed(values: list[float], window: int) -> list[float]:
    """Each epoch's mean over the last `window` epochs, from the first full window on (earlier epochs: NaN, so a
    lucky first epoch cannot stand for a best that later epochs must beat)."""
    return [float(np.mean(values[i - window + 1: i + 1])) if i + 1 >= window else float("nan")
            for i in range(len(values))]


def plateaued(val: list[float], patience: int, window: int, min_epochs: int = 0) -> bool:
    """The convergence rule (module docstring): at least `min_epochs` epochs, and the smoothed validation curve has
    gone `patience` epochs without a new best (a best is strictly above every earlier value), and the latest epoch
    is not the best single one. The earliest a run can stop is epoch max(min_epochs, window + patience)."""
    curve = smoothed(val, window)
    if len(curve) < max(window, min_epochs):
        return False
    since_best = len(curve) - 1 - int(np.nanargmax(curve))  # the first of equal values
    return since_best >= patience and int(np.argmax(val)) < len(val) - 1


def beats(val: float, kept: float | None, n: int | None) -> bool:
    """Does an epoch's validation figure `val` replace the kept one? When it is higher by more than the kept
    figure's standard error on `n` val questions (a binomial proportion's; n None: any higher figure)."""
    if kept is None:
        return True
    margin = math.sqrt(max(kept * (1.0 - kept), 0.0) / n) if n else 0.0
    return val > kept + margin


def learned(best: float, chance: float, n: int | None) -> bool:
    """Did validation leave chance: the best figure above `chance` by more than two standard errors of a chance
    figure on n val questions (sqrt(p (1 - p) / n))?"""
    margin = 2 * math.sqrt(chance * (1 - chance) / n) if n else 0.0
    return best > chance + margin


def lr_factor(step: int, warmup: int, total: int) -> float:
    """Linear warm-up to 1, then cosine decay to 0 at `total`. `total` is max_epochs' worth of steps, not where the
    convergence rule stops (10-25 of 40 epochs here): the rate is still 0.5-0.98 of its peak there, so the
    schedule does not force the plateau the rule detects (docs/convergence.md)."""
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def step_seed(seed: int, epoch: int, step: int) -> int:
    return int(np.random.SeedSequence([seed, epoch, step]).generate_state(1)[0])


# load_fn(batch_indices, rng, shard) -> this rank's batch: data only (reads caches, samples frames, augments),
# so it can run in DataLoader workers; loss_fn(batch, global_step) -> mean loss, in the main process.
LoadFn = Callable[[np.ndarray, np.random.Generator, slice], Any]
LossFn = Callable[[Any, int], torch.Tensor]


class Parts(list):
    """What a load_fn may return instead of one batch: (weight, part) pairs, each part its own forward and
    backward (loss x weight), gradients summed (the backbone: image sets of one frame count share a forward)."""


class EpochSteps(torch.utils.data.Dataset):
    """The optimiser steps of one epoch, from `first` on; item k = the micro-batches of step first + k.

    Everything random about the data comes from a generator seeded by (seed, epoch, step, micro), so a
    step's batch is the same whichever process loads it and whether or not the run was resumed.
    """

    def __init__(self, order: np.ndarray, first: int, steps: int, settings: TrainSettings, epoch: int,
                 shard: slice, load_fn: LoadFn) -> None:
        self.order, self.first, self.steps, self.s, self.epoch = order, first, steps, settings, epoch
        self.shard, self.load_fn = shard, load_fn

    def __len__(self) -> int:
        return self.steps - self.first

    def __getitem__(self, k: int) -> list[tuple[float, Any]]:
        local, s, micro_batches = self.first + k, self.s, []
        for micro in range(s.grad_accum):
            start = (local * s.grad_accum + micro) * s.batch_size
            idx = self.order[start : start + s.batch_size]
            share = len(idx[self.shard]) / len(idx) if len(idx) else 0.0
            if share == 0:
                continue
            rng = np.random.default_rng([s.seed, self.epoch, local, micro])
            loaded = self.load_fn(idx, rng, self.shard)
            if isinstance(loaded, Parts):
                micro_batches.extend((share * weight, part) for weight, part in loaded)
            else:
                micro_batches.append((share, loaded))
        return micro_batches


def step_loader(steps: EpochSteps, workers: int) -> torch.utils.data.DataLoader:
    """Steps in order; with workers > 0 they are loaded ahead (2 per worker), so reading the caches overlaps
    compute and memory stays bounded by the prefetched steps."""
    extra = {"prefetch_factor": 2} if workers else {}
    return torch.utils.data.DataLoader(steps, batch_size=None, shuffle=False, num_workers=workers,
                                       collate_fn=_as_is, **extra)


def _as_is(step: list[tuple[float, Any]]) -> list[tuple[float, Any]]:
    return step


def _all_reduce_grads(params: list[torch.nn.Parameter]) -> None:
    """Sum gradients over ranks (each rank's loss is already scaled by its share of the batch). A parameter no
    rank computed a gradient for (e.g. the Q-Former's last-layer text feed-forward, whose output nobody reads)
    gets none, as in one process, where AdamW then leaves it alone (a zero gradient would still decay it)."""
    if rank_and_world()[1] == 1:
        return
    # on the parameters' device: NCCL (GPU) reduces CUDA tensors only, gloo (CPU) CPU ones
    used = torch.tensor([p.grad is not None for p in params], dtype=torch.int64, device=params[0].device)
    torch.distributed.all_reduce(used, op=torch.distributed.ReduceOp.SUM)
    for p, n in zip(params, used.tolist(), strict=True):
        if n == 0:
            continue
        if p.grad is None:
            p.grad = torch.zeros_like(p)
        torch.distributed.all_reduce(p.grad, op=torch.distributed.ReduceOp.SUM)
EvalFn = Callable[[], float]


def trainable_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    names = {n for n, p in model.named_parameters() if p.requires_grad}
    return {k: v.detach().clone() for k, v in model.state_dict().items() if k in names}


def train(
    model: torch.nn.Module,
    param_groups: list[dict[str, Any]],
    n_train: int,
    load_fn: LoadFn,
    loss_fn: LossFn,
    eval_fn: EvalFn | None,
    settings: TrainSettings,
    checkpoint_dir: Path,
    live_dir: Path | None,
    desc: str,
    workers: int = 0,
    shuffle: bool = True,
    val_size: int | None = None,
    chance: float | None = None,
) -> dict[str, Any]:
    """Train; returns metrics. The kept trainable weights (module docstring; `val_size`: the val questions behind
    each figure) are loaded into `model` at the end.

    chance: the validation figure of guessing (1 / options; 0.5 for a ranking AUC): a run whose best figure is not
    above it by two standard errors has not learned (metrics["learned"] false), converged or not.
    load_fn/loss_fn: see LoadFn; eval_fn() -> val accuracy (None: no validation, no early stopping, the final
    weights are the result: the backbone's pretraining on generated data). `workers` DataLoader processes load steps
    ahead (the same batches as workers=0, bit for bit). `shuffle` False: every epoch reads indices 0..n_train-1 in
    order (a generated stream, whose load_fn knows step k from its indices k*B..). Under torchrun each rank computes its shard of
    every global batch (the frames sampled for the whole batch are drawn first, so they match a single
    process) and the gradients are summed across ranks; only rank 0 writes checkpoints and logs.
    """
    rank, world = rank_and_world()
    dev = next(model.parameters()).device
    steps_per_epoch = max(1, math.ceil(n_train / (settings.batch_size * settings.grad_accum)))
    total = steps_per_epoch * settings.max_epochs
    if settings.max_steps:
        total = min(total, settings.max_steps)
    opt = torch.optim.AdamW(param_groups, lr=settings.lr, weight_decay=settings.weight_decay)
    for g in opt.param_groups:
        g.setdefault("initial_lr", g["lr"])
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, settings.warmup_steps, total))
    state = {"step": 0, "epoch": 0, "best": -1.0, "best_epoch": -1, "stopped_by": None, "history": []}
    best_weights = trainable_state(model)
    resumed = _load_checkpoint(checkpoint_dir, model, opt, sched, state, best_weights)
    if resumed:
        log.info("%s: resumed from %s at step %d (epoch %d)", desc, checkpoint_dir, state["step"], state["epoch"])
    live = None
    if live_dir and rank == 0:
        from dvclive import Live

        live = Live(dir=str(live_dir), save_dvc_exp=False, dvcyaml=None, report=None, resume=False)
    for rec in state["history"]:  # replay logged history so a resumed run's curves are complete
        _log_live(live, rec)
    started = time.perf_counter()
    model.train()
    done = state["stopped_by"] is not None
    while not done and state["epoch"] < settings.max_epochs:
        epoch = state["epoch"]
        order = np.random.default_rng([settings.seed, epoch]).permutation(n_train) if shuffle else np.arange(n_train)
        first = state["step"] - epoch * steps_per_epoch
        steps = EpochSteps(order, first, steps_per_epoch, settings, epoch, slice(rank, None, world), load_fn)
        bar = tqdm(step_loader(steps, workers), total=len(steps), desc=f"{desc} epoch {epoch + 1}/{settings.max_epochs}",
                   leave=False, mininterval=2.0, disable=rank != 0)
        losses: list[float] = state.setdefault("epoch_losses", [])
        for local, micro_batches in enumerate(bar, start=first):
            gstep = epoch * steps_per_epoch + local
            torch.manual_seed(step_seed(settings.seed, epoch, local))
            opt.zero_grad(set_to_none=True)
            for share, batch in micro_batches:
                with autocast(dev):
                    loss = loss_fn(to_device(batch, dev), gstep)
                (loss * share / settings.grad_accum).backward()
                losses.append(float(loss.detach()))
            params = [p for g in param_groups for p in g["params"]]
            _all_reduce_grads(params)
            torch.nn.utils.clip_grad_norm_(params, settings.grad_clip)
            opt.step()
            sched.step()
            state["step"] = gstep + 1
            bar.set_postfix(loss=f"{np.mean(losses[-20:]):.3f}", refresh=False)
            if settings.max_steps and state["step"] >= settings.max_steps:
                state["stopped_by"] = "max_steps"
                done = True
                break
            mid_epoch = local + 1 < steps_per_epoch  # the epoch's end is checkpointed after validation
            if mid_epoch and state["step"] % settings.checkpoint_every == 0 and rank == 0:
                _save_checkpoint(checkpoint_dir, model, opt, sched, state, best_weights)
        val = None
        if eval_fn is not None:
            model.eval()
            with torch.no_grad():
                val = eval_fn()
            model.train()
        rec = {"epoch": epoch + 1, "step": state["step"], "train_loss": float(np.mean(losses)) if losses else None,
               "val_accuracy": val, "lr": sched.get_last_lr()[0]}
        state["history"].append(rec)
        state["epoch_losses"] = []
        _log_live(live, rec)
        log.info("%s epoch %d: loss %.4f%s", desc, epoch + 1, rec["train_loss"] or float("nan"),
                 "" if val is None else f" val accuracy {val:.4f}")
        kept = None if state["best_epoch"] < 1 else state["best"]
        if val is None or beats(val, kept, val_size):  # no validation: the latest weights are the best there are
            state.update(best=-1.0 if val is None else val, best_epoch=epoch + 1)
            best_weights = trainable_state(model)
        state["epoch"] = epoch + 1
        curve = [r["val_accuracy"] for r in state["history"]]
        if state["stopped_by"] is None and val is not None and plateaued(curve, settings.patience, settings.window,
                                                                         settings.min_epochs):
            log.info("%s: converged after epoch %d (smoothed val accuracy %.4f, no new best for %d epochs; best single "
                     "epoch %d: %.4f)", desc, epoch + 1, np.nanmax(smoothed(curve, settings.window)), settings.patience,
                     state["best_epoch"], state["best"])
            state["stopped_by"] = "plateau"
        elif state["epoch"] >= settings.max_epochs and state["stopped_by"] is None:
            state["stopped_by"] = "max_epochs"
            if val is not None:
                log.warning("%s: NOT converged: max_epochs %d reached while validation accuracy was still improving",
                            desc, settings.max_epochs)
        done = done or state["stopped_by"] is not None
        if not done and rank == 0:
            _save_checkpoint(checkpoint_dir, model, opt, sched, state, best_weights)
        barrier()
    model.load_state_dict(best_weights, strict=False)
    model.eval()
    if live:
        live.end()
    curve = [r["val_accuracy"] for r in state["history"]]
    validated = eval_fn is not None
    return {
        "best_val_accuracy": state["best"] if validated else None,
        "best_epoch": state["best_epoch"],
        "epochs_run": state["epoch"],
        "steps": state["step"],
        # the convergence rule and where this run ended by it (None: no validation, nothing to converge on)
        "converged": state["stopped_by"] == "plateau" if validated else None,
        "chance": chance,
        "learned": learned(state["best"], chance, val_size) if validated and chance is not None else None,
        "stopped_by": state["stopped_by"],
        "convergence_rule": {"max_epochs": settings.max_epochs, "min_epochs": settings.min_epochs,
                             "patience": settings.patience, "window": settings.window},
        "kept": "the latest epoch whose val figure beat the kept one by more than its standard error"
                + (f" on {val_size} questions" if val_size else ""),
        "val_curve": curve if validated else [],
        "smoothed_val_curve": [None if np.isnan(v) else v for v in smoothed(curve, settings.window)] if validated else [],
        "history": state["history"],
        "train_seconds_this_run": round(time.perf_counter() - started, 2),
        "resumed": resumed,
    }


def _log_live(live: Any, rec: dict[str, Any]) -> None:
    if live is None:
        return
    if rec["train_loss"] is not None:
        live.log_metric("train/loss", rec["train_loss"])
    if rec["val_accuracy"] is not None:
        live.log_metric("val/accuracy", rec["val_accuracy"])
    live.log_metric("train/lr", rec["lr"])
    live.next_step()


def _save_checkpoint(path: Path, model, opt, sched, state, best_weights) -> None:
    from safetensors.torch import save_file

    with atomic_dir(path) as tmp:
        save_file(trainable_state(model), tmp / "trainable.safetensors")
        save_file({k: v.contiguous() for k, v in best_weights.items()}, tmp / "best.safetensors")
        torch.save({"optimizer": opt.state_dict(), "scheduler": sched.state_dict()}, tmp / "optimizer.pt")
        write_json(tmp / "state.json", state)


def _load_checkpoint(path: Path, model, opt, sched, state, best_weights) -> bool:
    if not (path / "state.json").exists():
        return False
    model.load_state_dict(read_safetensors(path / "trainable.safetensors"), strict=False)
    best_weights.update(read_safetensors(path / "best.safetensors"))
    # weights_only: tensors and plain containers only, never arbitrary pickled objects.
    blob = torch.load(path / "optimizer.pt", weights_only=True)
    opt.load_state_dict(blob["optimizer"])
    sched.load_state_dict(blob["scheduler"])
    state.update(read_json(path / "state.json", "a training checkpoint's state"))
    return True
