"""ViLA: re_weight and the students.

re_weight: the student starts as the teacher at its own budget (train.student.select frames: 4 by default) plus a
teacher branch copied from the teacher reading every sampled frame (data.frames: 32), and the frozen branch's targets of every training question are computed once. Students: Frame-Prompter selection of K of
T frames, LM loss + distill_weight * MSE against the teacher branch's tokens + relevance_weight * the
cross-entropy from the teacher's frame relevance to the Prompter (ours; prompter.relevance_loss).
"""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from vila.config import student_settings
from vila.data.augment import random_resized_crop
from vila.data.dataset import Batcher, load_split
from vila.device import autocast, device, to_device
from vila.io import atomic_dir, read_safetensors, write_json
from vila.models.build import derive, freeze_for_finetuning, load_model, save_model
from vila.models.modeling import ViLAModel
from vila.models.prompter import teacher_frame_relevance
from vila.models.registry import STUDENT_INIT, reweight_teachers
from vila.paths import Paths
from vila.training.backbone import check_features
from vila.training.fit import fit_and_save, place_for_training

log = logging.getLogger(__name__)


def tau_at(step: int, start: float, end: float, steps: int) -> float:
    """Exponential Gumbel-softmax temperature decay from `start` to `end` over `steps`, then flat."""
    return start * (end / start) ** (min(step, steps) / steps)


def run_reweight(params: dict[str, Any]) -> None:
    """Student checkpoint = the train.student.select-frame model + the teacher branch (Q-Former, query tokens,
    projection) of the data.frames-frame model (registry.reweight_teachers). The Prompter and the token-axis layer start fresh. Beside it, the teacher
    branch's targets for every training question (teacher_targets), computed once for all students."""
    paths = Paths.from_params(params)
    s = params["train"]["student"]
    total = params["data"]["frames"]
    small_name, large_name = reweight_teachers(params)
    small, tokenizer = load_model(paths.model(small_name))
    teacher, _ = load_model(paths.model(large_name))
    model, report = build_student_init(small, teacher, s, total, params["seed"])
    check_features(paths, paths.model("backbone"))
    train_b = Batcher(tokenizer, load_split(paths, "train", features=True))
    val_b = Batcher(tokenizer, load_split(paths, "val", features=True))
    model.to(device())
    distill = distill_cache_fits(model, len(train_b.qa))
    bs = params["evaluate"]["batch_size"]
    targets = teacher_targets(model, train_b, bs, distill)
    # the val questions' relevance too: the selection study's readers are validated on relevance-picked frames
    targets["val_relevance"] = teacher_targets(model, val_b, bs, distill=False)["relevance"]
    report["teacher_targets"] = {"relevance": list(targets["relevance"].shape),
                                 "val_relevance": list(targets["val_relevance"].shape),
                                 "distill": list(targets["distill"].shape) if distill else "computed every step (too large)"}
    with atomic_dir(paths.model(STUDENT_INIT)) as out:
        save_model(model.cpu(), tokenizer, out)
        from safetensors.numpy import save_file

        save_file(targets, str(out / TARGETS_FILE))
        write_json(out / "reweight.json", report)
    log.info("reweight: copied %d tensors from %s, %d into the teacher branch from %s; fresh: %s",
             len(report["from_student"]), small_name, len(report["from_teacher"]), large_name, report["fresh"])


def build_student_init(
    small: ViLAModel, teacher: ViLAModel, s: dict[str, Any], total: int, seed: int
) -> tuple[ViLAModel, dict[str, Any]]:
    for key in ("backbone", "answer_prefix_ids", "letter_ids"):
        if getattr(small.config, key) != getattr(teacher.config, key):
            raise ValueError(f"reweight: the {s['select']}-frame and {total}-frame models differ in `{key}`; "
                             "they must be fine-tuned from the same backbone")
    if small.config.frames != s["select"] or teacher.config.frames != total:
        raise ValueError(f"reweight: expected a {s['select']}-frame and a {total}-frame model, got "
                         f"{small.config.frames} and {teacher.config.frames}")
    torch.manual_seed(seed)
    model = ViLAModel(type(small.config)(**{
        **small.config.to_dict(), "frames": s["select"], "sampled_frames": total, "selector": s["selector"],
        "gate": s["gate"], "selector_input": s["selector_input"], "distill": True,
    }))
    state = model.state_dict()
    from_student, from_teacher = {}, {}
    for k, v in small.state_dict().items():
        if k in state:
            if state[k].shape != v.shape:
                raise ValueError(f"reweight: {k} has shape {tuple(v.shape)} in the student source, {tuple(state[k].shape)} here")
            from_student[k] = v
    for k, v in teacher.state_dict().items():
        if k.startswith(("qformer.", "language_projection.")) or k == "query_tokens":
            target = f"teacher.{k}"
            if state[target].shape != v.shape:
                raise ValueError(f"reweight: {k} of the teacher has shape {tuple(v.shape)}, the branch {tuple(state[target].shape)}")
            from_teacher[target] = v
    model.load_state_dict({**from_student, **from_teacher}, strict=False)
    fresh = sorted({k.split(".")[0] for k in state if k not in from_student and k not in from_teacher})
    return model, {"from_student": sorted(from_student), "from_teacher": sorted(from_teacher), "fresh": fresh}


TARGETS_FILE = "teacher_targets.safetensors"
DISTILL_CACHE_LIMIT = 2**30  # bytes; larger (real datasets at full size): the targets are computed every step


@torch.no_grad()
def teacher_targets(model: ViLAModel, batcher: Batcher, batch_size: int, distill: bool) -> dict[str, np.ndarray]:
    """What the frozen teacher branch gives every training question, computed once from the cached ViT features
    (teacher, LLM and features are frozen, so it cannot change during training): its frame relevance [n, T] and,
    with `distill`, the distiller's target tokens [n, T*Q, Dt] (the 32-frame branch's projected query tokens)."""
    dev = next(model.parameters()).device
    n, t = len(batcher.qa), model.config.sampled_frames
    out = {"relevance": np.empty((n, t), np.float32)}
    was_training = model.training
    model.eval()
    for start in tqdm(range(0, n, batch_size), desc="teacher targets", leave=False, mininterval=2.0):
        idx = np.arange(start, min(n, start + batch_size))
        b = to_device(batcher.batch(idx, None, features=True), dev)
        with autocast(dev):
            rel = teacher_frame_relevance(model, b["vit_tokens"], b["qformer_ids"], b["qformer_mask"], b["input_ids"],
                                                b["attention_mask"], b["labels"])
            tokens = model.qformer_tokens(b["vit_tokens"], b["qformer_ids"], b["qformer_mask"], branch=model.teacher) \
                if distill else None
        out["relevance"][idx] = rel.float().cpu().numpy()
        if tokens is not None:
            out.setdefault("distill", np.empty((n, *tokens.shape[1:]), np.float32))[idx] = tokens.float().cpu().numpy()
    model.train(was_training)
    return out


def distill_cache_fits(model: ViLAModel, questions: int) -> bool:
    bb = model.config.backbone_config
    size = questions * model.config.sampled_frames * bb.num_query_tokens * bb.text_config.d_model * 4
    return size <= DISTILL_CACHE_LIMIT


def run_student(params: dict[str, Any], variant: str) -> None:
    paths = Paths.from_params(params)
    s = student_settings(params, variant)
    check_features(paths, paths.model("backbone"))
    init, tokenizer = load_model(paths.model(STUDENT_INIT))
    torch.manual_seed(params["seed"])
    model = derive(
        init, frames=s["select"], selector=s["selector"], gate=s["gate"], selector_input=s["selector_input"],
        distill=s["distill_weight"] > 0 or s["relevance_weight"] > 0,  # both read the teacher branch
        released_teacher_qformer=s["released_teacher_qformer"], noisy_eval=s["noisy_eval"],
    )
    place_for_training(model, params)
    names = set(freeze_for_finetuning(model))
    prompter = [p for n, p in model.named_parameters() if n in names and n.startswith("prompter.")]
    rest = [p for n, p in model.named_parameters() if n in names and not n.startswith("prompter.")]
    need_frames = s["selector_input"] == "patch_embed"
    augment = params["data"]["augment"] == "random_resized_crop"
    use_relevance = s["relevance_weight"] > 0
    train_b = Batcher(tokenizer, load_split(paths, "train", features=True, frames=need_frames or augment))
    val_b = Batcher(tokenizer, load_split(paths, "val", features=True, frames=need_frames))
    tau = s["tau"]
    # The cached targets are the frozen teacher branch's; the released bug's branch calls the student's Q-Former,
    # which trains, and augmented frames change the ViT tokens every step: those compute their own.
    cached = {}
    if not s["released_teacher_qformer"]:
        cached = read_safetensors(paths.model(STUDENT_INIT) / TARGETS_FILE, framework="numpy")
        if cached["relevance"].shape[0] != len(train_b.qa):
            raise ValueError(f"{paths.model(STUDENT_INIT) / TARGETS_FILE}: {cached['relevance'].shape[0]} questions, "
                             f"the train split has {len(train_b.qa)}; rerun reweight")
    # From the un-augmented features also under data.augment: the target is which frame matters, not pixels.
    relevance = None
    if use_relevance:
        relevance = cached["relevance"] if "relevance" in cached else \
            teacher_targets(model, train_b, params["evaluate"]["batch_size"], distill=False)["relevance"]
    distill_target = cached.get("distill") if s["distill_weight"] > 0 and not augment else None

    def load(idx: np.ndarray, rng: np.random.Generator, shard: slice) -> dict[str, torch.Tensor]:
        batch = train_b.batch(idx[shard], None, features=not augment, frames=need_frames or augment)
        if augment:
            batch["frames"] = random_resized_crop(batch["frames"], rng)
        if relevance is not None:
            batch["frame_relevance"] = torch.from_numpy(relevance[idx[shard]])
        if distill_target is not None:
            batch["distill_target"] = torch.from_numpy(distill_target[idx[shard]])
        return batch

    def loss(batch: dict[str, torch.Tensor], step: int) -> torch.Tensor:
        if augment:  # frozen ViT on the augmented frames, every step (no feature cache)
            with torch.no_grad():
                batch["vit_tokens"] = model.encode_frames(batch["frames"])
            if not need_frames:
                del batch["frames"]
        tau_now = tau_at(step, tau["start"], tau["end"], tau["steps"])
        return model(**batch, tau=tau_now, distill_weight=s["distill_weight"],
                     relevance_weight=s["relevance_weight"]).loss

    groups = [{"params": rest}, {"params": prompter, "lr": s["prompter_lr"]}]
    section = {**params["train"]["student"], **params["variants"][variant]}
    if math.isclose(s["distill_weight"], 0.0):
        log.info("%s: no distillation (distill_weight 0)", variant)
    fit_and_save(model, tokenizer, params, section, variant, (load, loss), groups, train_b, val_b)
