"""SeViLA, the baseline every claim of the paper is made against, on the same backbone and data as ViLA.

SeViLA (Yu et al., NeurIPS 2023) chains two modules over one frozen ViT and one frozen LLM:
- the Answerer: its own Q-Former (+ query tokens, projection) over k frames, each preceded by `Frame {i}: `,
  fine-tuned on the dataset with k uniformly sampled frames (stage `answerer`, train.teacher's settings, so it
  is trained exactly as our uniform teachers are, plus the frame marks);
- the Localizer: its own Q-Former (+ query tokens, LayerNorm on the ViT output, projection); one LLM pass per
  sampled frame reads `Frame: `, that frame's tokens and the localizer prompt; the frame's score is the "yes"
  logit at the first decoder step; the top-k frames, in time order, go to the Answerer (modeling.py).

The Localizer is trained by self-refinement (stages `pseudolabel`, `localizer`): the frozen 4-frame Answerer
reads every frame of every training question alone; the frame is labelled "yes" when that answer is right, "no"
otherwise; the Localizer learns the labels with the LM loss. SeViLA first pre-trains its Localizer on
QVHighlights moment retrieval: nothing here corresponds to it, so the Localizer starts from the backbone's
image-language-pretrained Q-Former (as SeViLA's starts from BLIP-2's) and what is measured is what the
self-refinement alone gives. One Localizer serves every k (stage `sevila`: Answerer k + that Localizer).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from vila.backbone import check_features
from vila.data.dataset import Batcher, load_split
from vila.device import autocast, device, to_device
from vila.io import atomic_dir, read_json, sha256_file, write_json
from vila.models.build import derive, load_model, save_model
from vila.models.modeling import ViLAModel
from vila.paths import Paths
from vila.train_models import fit_and_save, fit_uniform, place_for_training

log = logging.getLogger(__name__)
LABELS_FROM = 4  # the Answerer (k) whose single-frame answers label the frames, SeViLA's k


def answerer_name(frames: int) -> str:
    return f"sevila_answerer_{frames}f"


def run_answerer(params: dict[str, Any], frames: int) -> None:
    if frames not in params["sevila"]["frames"]:
        raise ValueError(f"--frames {frames}: not in sevila.frames {params['sevila']['frames']}")
    fit_uniform(params, frames, answerer_name(frames), frame_prefix=True)


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


def run_pseudolabel(params: dict[str, Any]) -> None:
    paths = Paths.from_params(params)
    check_features(paths, paths.model("backbone"))
    source = paths.model(answerer_name(LABELS_FROM))
    answerer, tokenizer = load_model(source)
    answerer.to(device())
    qa = load_split(paths, "train", features=True)
    labels = single_frame_correct(answerer, Batcher(tokenizer, qa), params["evaluate"]["batch_size"])
    meta = {"answerer": str(source), "answerer_sha256": sha256_file(source / "model.safetensors"),
            "questions": int(labels.shape[0]), "frames": int(labels.shape[1]), "yes_rate": float(labels.mean()),
            "questions_without_yes": int((~labels.any(1)).sum()), "rule": "yes = the Answerer reading this frame alone "
            "picks the right option"}
    if quality := label_quality(qa.items, labels):
        meta["against_keyframes"] = quality
    with atomic_dir(paths.pseudo_labels) as out:
        np.save(out / "train.npy", labels)
        write_json(out / "meta.json", meta)
    log.info("pseudolabel: %d questions x %d frames, %.1f%% yes%s", *labels.shape, 100 * labels.mean(),
             f" ({100 * quality['yes_rate_keyframes']:.1f}% on key frames, {100 * quality['yes_rate_other_frames']:.1f}% "
             "elsewhere)" if quality else "")


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
    answerer, tokenizer = load_model(paths.model(answerer_name(LABELS_FROM)))
    if labels_meta["answerer_sha256"] != sha256_file(paths.model(answerer_name(LABELS_FROM)) / "model.safetensors"):
        raise ValueError(f"{paths.pseudo_labels}: made by another {answerer_name(LABELS_FROM)}; rerun pseudolabel")
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

    def load(idx: np.ndarray, rng: np.random.Generator, shard: slice) -> dict[str, torch.Tensor]:
        # per question, a random set of its frames (in time order), drawn for the whole global batch
        frame_idx = np.sort(np.stack([rng.choice(total, per_step, replace=False) for _ in idx]), axis=1)
        batch = train_b.batch(idx[shard], frame_idx[shard], features=True)
        batch["frame_labels"] = torch.from_numpy(labels[idx[shard][:, None], frame_idx[shard]])
        return batch

    def loss(batch: dict[str, torch.Tensor], step: int) -> torch.Tensor:
        return model.localizer_loss(batch["vit_tokens"], batch["qformer_ids"], batch["qformer_mask"],
                                    batch["localizer_ids"], batch["localizer_mask"], batch["frame_labels"])

    fit_and_save(model, tokenizer, params, cfg, "sevila_localizer", (load, loss), [{"params": trainable}],
                  train_b, val_b)


def run_sevila(params: dict[str, Any], frames: int) -> None:
    """sevila_<k>f = the k-frame Answerer + the trained Localizer."""
    if frames not in params["sevila"]["frames"]:
        raise ValueError(f"--frames {frames}: not in sevila.frames {params['sevila']['frames']}")
    paths = Paths.from_params(params)
    answerer, tokenizer = load_model(paths.model(answerer_name(frames)))
    trained, _ = load_model(paths.model("sevila_localizer"))
    model = derive(answerer, selector="localizer", frames=frames, sampled_frames=params["data"]["frames"])
    model.localizer.load_state_dict(trained.localizer.state_dict())
    name = f"sevila_{frames}f"
    with atomic_dir(paths.model(name)) as out:
        save_model(model, tokenizer, out)
        write_json(out / "sevila.json", {"answerer": str(paths.model(answerer_name(frames))),
                                         "localizer": str(paths.model("sevila_localizer"))})
    log.info("%s: %s + the Localizer of %s", name, answerer_name(frames), paths.model("sevila_localizer"))

