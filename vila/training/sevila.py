"""SeViLA, the baseline every claim of the paper is made against, on the same backbone and data as ViLA.

SeViLA (Yu et al., NeurIPS 2023) chains two modules over one frozen ViT and one frozen LLM:
- the Answerer: its own Q-Former (+ query tokens, projection) over k frames, each preceded by `Frame {i}: `;
- the Localizer: its own Q-Former (+ query tokens, LayerNorm on the ViT output, projection); one LLM pass per
  sampled frame reads `Frame: `, that frame's tokens and the localizer prompt; the frame's score is the "yes"
  logit at the first decoder step; the top-k frames, in time order, go to the Answerer (modeling.py).

Its public recipe, in order (one stage each; every training by the one loop and convergence rule):
1. `uniform_answerer`: a 4-frame Answerer fine-tuned on uniformly sampled frames (train.teacher's settings). It
   labels the frames for the Localizer (SeViLA's released checkpoint uses the zero-shot BLIP-2 Answerer there).
2. `pseudolabel`, `localizer` (self-refinement): that Answerer reads every frame of every training question alone;
   the frame is "yes" when its answer is right; the Localizer learns yes/no with the LM loss. SeViLA first
   pre-trains its Localizer on QVHighlights moment retrieval: nothing here corresponds to it, so the Localizer
   starts from the backbone's image-language-pretrained Q-Former (as SeViLA's starts from BLIP-2's).
3. `localize`, `answerer` (SeViLA's `finetune`: the Localizer frozen, the Answerer trained on its key frames): the
   trained Localizer scores the frames of every train and val question once; the Answerer for each k is
   fine-tuned from the backbone on the Localizer's top-k frames of each question, in time order, after
   `Frame {i}: `, and validated on the same kind of frames of the val questions.
`sevila_<k>f` = that Answerer + the Localizer. `sevila_4f_uniform_answerer` (an ablation, not SeViLA's method) =
step 1's uniform-trained Answerer + the Localizer: what skipping step 3 gives.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from vila.config import SEVILA_LABELS_FROM
from vila.data.dataset import Batcher, load_split
from vila.device import autocast, device, to_device
from vila.evaluation.stats import key_frame_auc
from vila.io import atomic_dir, read_json, sha256_file, stable_hash, write_json
from vila.models.build import derive, load_model, save_model
from vila.models.modeling import ViLAModel, top_k_in_time_order
from vila.paths import Paths
from vila.training.backbone import check_features
from vila.training.fit import fit_and_save, fit_reader, fit_uniform, place_for_training

log = logging.getLogger(__name__)
LABELS_FROM = SEVILA_LABELS_FROM  # the uniform-trained Answerer (k) whose single-frame answers label the frames
LOCALIZED_SPLITS = ("train", "val")  # the splits whose Localizer scores the Answerer trains and validates on


def answerer_name(frames: int, uniform: bool = False) -> str:
    """SeViLA's Answerer trained on the Localizer's frames (its method), or on uniform ones (step 1)."""
    return f"sevila_answerer_uniform_{frames}f" if uniform else f"sevila_answerer_{frames}f"


def sevila_name(frames: int, uniform_answerer: bool = False) -> str:
    return f"sevila_{frames}f_uniform_answerer" if uniform_answerer else f"sevila_{frames}f"


def check_keyframes(params: dict[str, Any], frames: int) -> None:
    if frames not in params["sevila"]["frames"]:
        raise ValueError(f"--frames {frames}: not in sevila.frames {params['sevila']['frames']}")


def run_uniform_answerer(params: dict[str, Any]) -> None:
    fit_uniform(params, LABELS_FROM, answerer_name(LABELS_FROM, uniform=True), frame_prefix=True)


def run_localize(params: dict[str, Any]) -> None:
    """The trained Localizer's score of every frame of every train and val question (one LLM pass per frame),
    cached for the Answerers of every k."""
    from vila.evaluation.evaluate import frame_scores

    paths = Paths.from_params(params)
    check_features(paths, paths.model("backbone"))
    source = paths.model("sevila_localizer")
    model, tokenizer = load_model(source)
    model.to(device())
    meta: dict[str, Any] = {"localizer": str(source), "localizer_sha256": sha256_file(source / "model.safetensors"),
                            "score": "the Localizer's 'yes' logit at the first decoder step, one LLM pass per frame"}
    scores = {}
    for split in LOCALIZED_SPLITS:
        qa = load_split(paths, split, features=True)
        scores[split], _ = frame_scores(model, Batcher(tokenizer, qa, localizer=True), params["evaluate"]["batch_size"],
                                        f"localize {split}")
        meta[split] = {"questions": len(qa), "qids_sha256": stable_hash([it["qid"] for it in qa.items])}
    with atomic_dir(paths.localized) as out:
        for split, s in scores.items():
            np.save(out / f"{split}.npy", s.astype(np.float32))
        write_json(out / "meta.json", meta)
    log.info("localize: %s", ", ".join(f"{k} {v.shape[0]} questions x {v.shape[1]} frames" for k, v in scores.items()))


def localized_keyframes(paths: Paths, split: str, k: int, items: list[dict[str, Any]]) -> np.ndarray:
    """[n, k] the Localizer's top-k frames of every question of a split, in time order (the model's own rule)."""
    meta = read_json(paths.localized / "meta.json")
    if meta[split]["qids_sha256"] != stable_hash([it["qid"] for it in items]):
        raise ValueError(f"{paths.localized}: scored other {split} questions than the annotations hold; rerun localize")
    scores = torch.from_numpy(np.load(paths.localized / f"{split}.npy"))
    return top_k_in_time_order(scores, k).numpy()


def run_answerer(params: dict[str, Any], frames: int) -> None:
    """SeViLA's Answerer fine-tuning (its `finetune` step): every training question read with the frozen
    Localizer's top-k frames, in time order, with `Frame {i}: ` marks; validated on the val questions' likewise."""
    check_keyframes(params, frames)
    paths = Paths.from_params(params)
    train_keys = localized_keyframes(paths, "train", frames, load_split(paths, "train").items)
    val_keys = localized_keyframes(paths, "val", frames, load_split(paths, "val").items)
    fit_reader(params, frames, answerer_name(frames), lambda idx, rng: train_keys[idx], val_keys, frame_prefix=True)


@torch.no_grad()
def single_frame_correct(answerer: ViLAModel, batcher: Batcher, batch_size: int) -> np.ndarray:
    """[questions, T] bool: is the Answerer right when it reads frame t alone (as its first and only frame)?"""
    answerer.eval()
    dev = next(answerer.parameters()).device
    n, t = len(batcher.qa), answerer.config.sampled_frames
    correct = np.zeros((n, t), dtype=bool)
    per_batch = max(1, batch_size // 4)  # questions per forward: each is t single-frame rows
    for start in tqdm(range(0, n, per_batch), desc="pseudolabel: each frame alone", mininterval=2.0):
        idx = np.arange(start, min(n, start + per_batch))
        b = to_device(batcher.batch(idx, None, features=True), dev)
        vit = b.pop("vit_tokens")
        labels = b.pop("labels")
        rows = {k: v.repeat_interleave(t, dim=0) for k, v in b.items()}  # question i, frame j -> row i*t + j
        with autocast(dev):
            out = answerer(**rows, vit_tokens=vit.flatten(0, 1)[:, None])
        pred = out.letter_logits.argmax(-1).view(len(idx), t)
        correct[idx] = (pred == labels[:, None]).cpu().numpy()
    return correct


def label_quality(items: list[dict[str, Any]], labels: np.ndarray) -> dict[str, float] | None:
    """How the pseudo-labels relate to the benchmark's ground-truth key frames (synthqa only: a diagnostic,
    never a training signal): the "yes" rate on key frames and on the other frames."""
    if not items or "keyframes" not in items[0]:
        return None
    key = np.zeros_like(labels)
    for i, it in enumerate(items):
        key[i, it["keyframes"]] = True
    return {"yes_rate_keyframes": float(labels[key].mean()), "yes_rate_other_frames": float(labels[~key].mean())}


PSEUDO_LABELLED = ("train", "val")  # train: what the Localizer learns; val: what it is validated on


def run_pseudolabel(params: dict[str, Any]) -> None:
    paths = Paths.from_params(params)
    check_features(paths, paths.model("backbone"))
    source = paths.model(answerer_name(LABELS_FROM, uniform=True))
    answerer, tokenizer = load_model(source)
    answerer.to(device())
    labels, quality = {}, {}
    for split in PSEUDO_LABELLED:
        qa = load_split(paths, split, features=True)
        labels[split] = single_frame_correct(answerer, Batcher(tokenizer, qa), params["evaluate"]["batch_size"])
        quality[split] = label_quality(qa.items, labels[split])
    train = labels["train"]
    meta: dict[str, Any] = {
        "answerer": str(source), "answerer_sha256": sha256_file(source / "model.safetensors"),
        "questions": int(train.shape[0]), "frames": int(train.shape[1]), "yes_rate": float(train.mean()),
        "questions_without_yes": int((~train.any(1)).sum()),
        "rule": "yes = the Answerer reading this frame alone picks the right option",
        "val": {"questions": int(labels["val"].shape[0]), "yes_rate": float(labels["val"].mean()),
                **({"against_keyframes": quality["val"]} if quality["val"] else {})}}
    if quality["train"]:
        meta["against_keyframes"] = quality["train"]
    with atomic_dir(paths.pseudo_labels) as out:
        for split, lab in labels.items():
            np.save(out / f"{split}.npy", lab)
        write_json(out / "meta.json", meta)
    q = quality["train"]
    log.info("pseudolabel: %d questions x %d frames, %.1f%% yes%s", *train.shape, 100 * train.mean(),
             f" ({100 * q['yes_rate_keyframes']:.1f}% on key frames, {100 * q['yes_rate_other_frames']:.1f}% "
             "elsewhere)" if q else "")


@torch.no_grad()
def yes_ranking_auc(model: ViLAModel, batcher: Batcher, frames: np.ndarray, labels: np.ndarray,
                    batch_size: int) -> float:
    """The Localizer on its own task, as the Answerers use it (a ranking: the top k frames by "yes" logit): per
    question, the probability that a frame labelled "yes" scores above one labelled "no" (ties half), averaged over
    the questions with both among their frames [n, F] (labels [n, F]: their pseudo-labels)."""
    yes_id = model.config.yes_no_ids[0]
    dev = next(model.parameters()).device
    scores = np.zeros(labels.shape, np.float64)
    for start in range(0, len(frames), batch_size):
        idx = np.arange(start, min(len(frames), start + batch_size))
        b = to_device(batcher.batch(idx, frames[idx], features=True), dev)
        with autocast(dev):
            logits = model.localizer_logits(b["vit_tokens"], b["qformer_ids"], b["qformer_mask"], b["localizer_ids"],
                                            b["localizer_mask"])
        scores[idx] = logits[..., yes_id].float().cpu().numpy()
    aucs = [key_frame_auc(s, np.flatnonzero(lab)) for s, lab in zip(scores, labels, strict=True)]
    defined = [a for a in aucs if not np.isnan(a)]
    return float(np.mean(defined)) if defined else 0.5


def init_localizer_from_backbone(model: ViLAModel, backbone: ViLAModel) -> list[str]:
    """The Localizer's Q-Former, query tokens and projection from the backbone's image-language-pretrained ones
    (SeViLA initialises both modules from BLIP-2's Q-Former); its LayerNorm starts as the identity."""
    loc = model.localizer
    assert loc is not None
    loc.qformer.load_state_dict(backbone.qformer.state_dict())
    loc.language_projection.load_state_dict(backbone.language_projection.state_dict())
    loc.query_tokens.data.copy_(backbone.query_tokens.data)
    return ["localizer.qformer", "localizer.language_projection", "localizer.query_tokens"]


def run_localizer(params: dict[str, Any]) -> None:
    paths = Paths.from_params(params)
    check_features(paths, paths.model("backbone"))
    cfg, total = params["sevila"]["localizer"], params["data"]["frames"]
    labels_meta = read_json(paths.pseudo_labels / "meta.json")
    labeller = paths.model(answerer_name(LABELS_FROM, uniform=True))
    answerer, tokenizer = load_model(labeller)
    if labels_meta["answerer_sha256"] != sha256_file(labeller / "model.safetensors"):
        raise ValueError(f"{paths.pseudo_labels}: made by another {labeller.name}; rerun pseudolabel")
    backbone, _ = load_model(paths.model("backbone"))
    torch.manual_seed(params["seed"])
    model = derive(answerer, selector="localizer", frames=LABELS_FROM, sampled_frames=total)
    init_localizer_from_backbone(model, backbone)
    place_for_training(model, params)
    for name, p in model.named_parameters():  # only the Localizer learns; the Answerer, ViT and LLM are frozen
        p.requires_grad_(name.startswith("localizer."))
    trainable = [p for p in model.parameters() if p.requires_grad]
    labels = np.load(paths.pseudo_labels / "train.npy")
    train_b = Batcher(tokenizer, load_split(paths, "train", features=True), localizer=True)
    val_b = Batcher(tokenizer, load_split(paths, "val", features=True), localizer=True)
    if labels.shape != (len(train_b.qa), total):
        raise ValueError(f"{paths.pseudo_labels / 'train.npy'}: shape {labels.shape}, expected "
                         f"({len(train_b.qa)}, {total}); rerun pseudolabel")
    per_step = min(cfg["frames_per_step"], total)
    val_labels = np.load(paths.pseudo_labels / "val.npy")
    if val_labels.shape != (len(val_b.qa), total):
        raise ValueError(f"{paths.pseudo_labels / 'val.npy'}: shape {val_labels.shape}, expected ({len(val_b.qa)}, "
                         f"{total}); rerun pseudolabel")
    # validated on its own task as the Answerers use it, ranking the val questions' frames labelled "yes" first
    # (yes_ranking_auc), on one fixed draw of frames_per_step frames per question (the training draw's size)
    pick = np.random.default_rng([params["seed"], len(val_labels)])
    val_frames = np.sort(np.stack([pick.choice(total, per_step, replace=False) for _ in val_labels]), axis=1)
    val_frame_labels = np.take_along_axis(val_labels, val_frames, axis=1)

    def load(idx: np.ndarray, rng: np.random.Generator, shard: slice) -> dict[str, torch.Tensor]:
        # per question, a random set of its frames (in time order), drawn for the whole global batch
        frame_idx = np.sort(np.stack([rng.choice(total, per_step, replace=False) for _ in idx]), axis=1)
        batch = train_b.batch(idx[shard], frame_idx[shard], features=True)
        batch["frame_labels"] = torch.from_numpy(labels[idx[shard][:, None], frame_idx[shard]])
        return batch

    def loss(batch: dict[str, torch.Tensor], step: int) -> torch.Tensor:
        return model.localizer_loss(batch["vit_tokens"], batch["qformer_ids"], batch["qformer_mask"],
                                    batch["localizer_ids"], batch["localizer_mask"], batch["frame_labels"])

    def validate() -> float:
        return yes_ranking_auc(model, val_b, val_frames, val_frame_labels, params["evaluate"]["batch_size"])

    fit_and_save(model, tokenizer, params, cfg, "sevila_localizer", (load, loss), [{"params": trainable}],
                 train_b, val_b, eval_fn=validate)


def run_sevila(params: dict[str, Any], frames: int, uniform_answerer: bool = False) -> None:
    """sevila_<k>f = the k-frame Answerer trained on the Localizer's frames + the Localizer; with
    `uniform_answerer`, the ablation sevila_<k>f_uniform_answerer (the uniform-trained Answerer of step 1)."""
    check_keyframes(params, frames)
    if uniform_answerer and frames != LABELS_FROM:
        raise ValueError(f"--uniform-answerer: the uniform-trained Answerer reads {LABELS_FROM} frames, not {frames}")
    paths = Paths.from_params(params)
    source = paths.model(answerer_name(frames, uniform=uniform_answerer))
    answerer, tokenizer = load_model(source)
    trained, _ = load_model(paths.model("sevila_localizer"))
    model = derive(answerer, selector="localizer", frames=frames, sampled_frames=params["data"]["frames"])
    model.localizer.load_state_dict(trained.localizer.state_dict())
    name = sevila_name(frames, uniform_answerer)
    with atomic_dir(paths.model(name)) as out:
        save_model(model, tokenizer, out)
        write_json(out / "sevila.json", {"answerer": str(source), "localizer": str(paths.model("sevila_localizer"))})
    log.info("%s: %s + the Localizer of %s", name, source.name, paths.model("sevila_localizer"))


def run_sevila_uniform_answerer(params: dict[str, Any]) -> None:
    """The ablation sevila_<k>f_uniform_answerer at SeViLA's k: the uniform-trained Answerer of step 1 reading the
    trained Localizer's frames (SeViLA without its Answerer fine-tuning)."""
    run_sevila(params, LABELS_FROM, uniform_answerer=True)
