"""SeViLA, the baseline every claim of the paper is made against, on the same backbone and data as ViLA.

SeViLA (Yu et al., NeurIPS 2023) chains two modules over one frozen ViT and one frozen LLM:
- the Answerer: its own Q-Former (+ query tokens, projection) over k frames, each preceded by `Frame {i}: `;
- the Localizer: its own Q-Former (+ query tokens, LayerNorm on the ViT output, projection); one LLM pass per
  sampled frame reads `Frame: `, that frame's tokens and the localizer prompt; the frame's score is the "yes"
  logit at the first decoder step; the top-k frames, in time order, go to the Answerer (modeling.py).

Its whole public recipe, in order (one stage each; every training by the one loop and convergence rule):
1. `localizer_pretrain`: the Localizer (from the backbone's image-language-pretrained Q-Former, as SeViLA's from
   BLIP-2's) learns moment retrieval, yes/no per frame: synthqa's moment-retrieval set stands in for QVHighlights.
2. `pseudolabel`: the zero-shot Answerer (the backbone itself, no QA fine-tuning, as the release uses the zero-shot
   BLIP-2 Answerer) reads every frame of every training (and val) question alone; the frame is "yes" when its
   answer is right. `localizer` (self-refinement): the pre-trained Localizer learns those labels with the LM loss.
3. `localize`, `answerer` (SeViLA's `finetune`: the Localizer frozen, the Answerer trained on its key frames): the
   refined Localizer scores the frames of every train and val question once; the Answerer for each k is fine-tuned
   from the backbone on the Localizer's top-k frames of each question, in time order, after `Frame {i}: `, and
   validated on the same kind of frames of the val questions.
`sevila_<k>f` = that Answerer + the Localizer. The ablations (registry.SEVILA_ABLATIONS) drop one piece each: the
Localizer without pre-training, the Localizer refined on the labels of an Answerer fine-tuned on uniform frames
(`uniform_answerer`, this project's recipe before), and the uniform-trained Answerer reading the full Localizer's
frames.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from vila.data.dataset import Batcher, load_split
from vila.device import autocast, device, to_device
from vila.evaluation.stats import key_frame_auc
from vila.io import atomic_dir, read_json, sha256_file, stable_hash, write_json
from vila.models.build import derive, load_model, save_model
from vila.models.localizer import frame_logits, pseudo_label_loss, top_k_in_time_order
from vila.models.modeling import ViLAModel
from vila.models.registry import LOCALIZERS, SEVILA_ABLATIONS, SEVILA_K, SEVILA_PRETRAINED, sevila_name
from vila.models.registry import sevila_answerer as answerer_name
from vila.paths import Paths
from vila.training.backbone import check_features
from vila.training.fit import fit_and_save, fit_reader, fit_uniform, place_for_training

log = logging.getLogger(__name__)
LOCALIZED_SPLITS = ("train", "val")  # the splits whose Localizer scores the Answerer trains and validates on
PRETRAINED = SEVILA_PRETRAINED
LABELLERS = {"zero_shot": "backbone", "uniform_answerer": answerer_name(SEVILA_K, uniform=True)}  # -> their model


def check_keyframes(params: dict[str, Any], frames: int) -> None:
    if frames not in params["sevila"]["frames"]:
        raise ValueError(f"--frames {frames}: not in sevila.frames {params['sevila']['frames']}")


def run_uniform_answerer(params: dict[str, Any]) -> None:
    fit_uniform(params, SEVILA_K, answerer_name(SEVILA_K, uniform=True), frame_prefix=True)


def run_localize(params: dict[str, Any]) -> None:
    """The trained Localizer's score of every frame of every train and val question (one LLM pass per frame),
    cached for the Answerers of every k, and of the evaluation split's questions, which every SeViLA model with
    this Localizer then reads instead of scoring them again (evaluate checks the Localizer's weights match)."""
    from vila.evaluation.evaluate import frame_scores
    from vila.models.localizer import localizer_digest

    paths = Paths.from_params(params)
    check_features(paths, paths.model("backbone"))
    source = paths.model(MAIN_LOCALIZER)
    model, tokenizer = load_model(source)
    model.to(device())
    meta: dict[str, Any] = {"localizer": str(source), "localizer_sha256": sha256_file(source / "model.safetensors"),
                            "localizer_weights_sha256": localizer_digest(model),
                            "score": "the Localizer's 'yes' logit at the first decoder step, one LLM pass per frame"}
    scores = {}
    for split in dict.fromkeys((*LOCALIZED_SPLITS, params["evaluate"]["split"])):
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
    from vila.evaluation.evaluate import localized_scores

    return top_k_in_time_order(torch.from_numpy(localized_scores(paths, split, items)), k).numpy()


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
        rows["frame_index"] = b["frame_index"].flatten()[:, None]  # row i*t + j reads frame j, at its own time
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
MAIN_LOCALIZER = "sevila_localizer"  # the full recipe's (registry.LOCALIZERS)


def labeller_model(paths: Paths, labeller: str, total: int) -> tuple[ViLAModel, Any, Any]:
    """(the Answerer that labels frames, its tokenizer, its folder): the zero-shot backbone (no QA fine-tuning; it
    reads frames as it was pretrained, without frame marks) or the Answerer fine-tuned on uniform frames."""
    if labeller not in LABELLERS:
        raise ValueError(f"--labeller {labeller}: one of {', '.join(LABELLERS)}")
    source = paths.model(LABELLERS[labeller])
    model, tokenizer = load_model(source)
    if labeller == "zero_shot":
        model = derive(model, frames=1, sampled_frames=total, selector=None, distill=False)
    return model, tokenizer, source


def run_pseudolabel(params: dict[str, Any], labeller: str) -> None:
    paths = Paths.from_params(params)
    check_features(paths, paths.model("backbone"))
    answerer, tokenizer, source = labeller_model(paths, labeller, params["data"]["frames"])
    answerer.to(device())
    labels, quality = {}, {}
    for split in PSEUDO_LABELLED:
        qa = load_split(paths, split, features=True)
        labels[split] = single_frame_correct(answerer, Batcher(tokenizer, qa), params["evaluate"]["batch_size"])
        quality[split] = label_quality(qa.items, labels[split])
    train = labels["train"]
    meta: dict[str, Any] = {
        "labeller": labeller, "answerer": str(source), "answerer_sha256": sha256_file(source / "model.safetensors"),
        "questions": int(train.shape[0]), "frames": int(train.shape[1]), "yes_rate": float(train.mean()),
        "questions_without_yes": int((~train.any(1)).sum()),
        "rule": "yes = the Answerer reading this frame alone picks the right option",
        "val": {"questions": int(labels["val"].shape[0]), "yes_rate": float(labels["val"].mean()),
                **({"against_keyframes": quality["val"]} if quality["val"] else {})}}
    if quality["train"]:
        meta["against_keyframes"] = quality["train"]
    with atomic_dir(paths.pseudo_labels(labeller)) as out:
        for split, lab in labels.items():
            np.save(out / f"{split}.npy", lab)
        write_json(out / "meta.json", meta)
    q = quality["train"]
    log.info("pseudolabel (%s): %d questions x %d frames, %.1f%% yes%s", labeller, *train.shape, 100 * train.mean(),
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
            logits = frame_logits(model, b["vit_tokens"], b["qformer_ids"], b["qformer_mask"], b["localizer_ids"],
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


def localizer_model(paths: Paths, params: dict[str, Any], pretrained: bool) -> tuple[ViLAModel, Any]:
    """A Localizer to train, on the backbone (whose Answerer path it never uses): from the moment-retrieval
    pre-trained Localizer, or from the backbone's Q-Former."""
    backbone, tokenizer = load_model(paths.model("backbone"))
    torch.manual_seed(params["seed"])
    model = derive(backbone, selector="localizer", frames=SEVILA_K, sampled_frames=params["data"]["frames"])
    if pretrained:
        trained, _ = load_model(paths.model(PRETRAINED))
        model.localizer.load_state_dict(trained.localizer.state_dict())
    else:
        init_localizer_from_backbone(model, backbone)
    place_for_training(model, params)
    for name, p in model.named_parameters():  # only the Localizer learns; ViT, LLM and the rest are frozen
        p.requires_grad_(name.startswith("localizer."))
    return model, tokenizer


def fit_localizer(params: dict[str, Any], model: ViLAModel, tokenizer: Any, name: str, train_b: Batcher,
                  val_b: Batcher, labels: np.ndarray, val_labels: np.ndarray) -> None:
    """Train a Localizer on yes/no labels per frame [questions, T] (LM loss), frames_per_step random frames of each
    question per step; validated by ranking the val questions' "yes" frames first (yes_ranking_auc) on one fixed
    draw of frames_per_step frames per question (the training draw's size)."""
    cfg, total = params["sevila"]["localizer"], params["data"]["frames"]
    for batcher, lab, what in ((train_b, labels, "train"), (val_b, val_labels, "val")):
        if lab.shape != (len(batcher.qa), total):
            raise ValueError(f"{name}: {what} labels of shape {lab.shape}, expected ({len(batcher.qa)}, {total})")
    per_step = min(cfg["frames_per_step"], total)
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
        return pseudo_label_loss(model, batch["vit_tokens"], batch["qformer_ids"], batch["qformer_mask"],
                                    batch["localizer_ids"], batch["localizer_mask"], batch["frame_labels"])

    def validate() -> float:
        return yes_ranking_auc(model, val_b, val_frames, val_frame_labels, params["evaluate"]["batch_size"])

    trainable = [p for p in model.parameters() if p.requires_grad]
    fit_and_save(model, tokenizer, params, cfg, name, (load, loss), [{"params": trainable}], train_b, val_b,
                 eval_fn=validate, chance=0.5)


def moment_labels(items: list[dict[str, Any]], total: int) -> np.ndarray:
    """[clips, T] bool: the frames each moment-retrieval query names (synthqa's generator labels them)."""
    labels = np.zeros((len(items), total), dtype=bool)
    for i, it in enumerate(items):
        labels[i, it["relevant_frames"]] = True
    return labels


def run_localizer_pretrain(params: dict[str, Any]) -> None:
    """SeViLA's step 1: the Localizer learns moment retrieval (is this frame what the query names?) on the dataset's
    moment-retrieval set, from the backbone's Q-Former; validated on the last sevila.pretrain_val_clips clips."""
    paths = Paths.from_params(params)
    check_features(paths, paths.model("backbone"))
    moments = paths.annotations("moments")
    if not moments.exists():
        raise FileNotFoundError(f"{moments}: no moment-retrieval set for SeViLA's Localizer pre-training ({params['dataset']} "
                                "has none; synthqa generates one, QVHighlights is SeViLA's)")
    qa = load_split(paths, "moments", features=True)
    held = params["sevila"]["pretrain_val_clips"]
    if not 0 < held < len(qa):
        raise ValueError(f"sevila.pretrain_val_clips: {held} of the {len(qa)} moment clips; leave some to train on")
    labels = moment_labels(qa.items, params["data"]["frames"])
    cut = len(qa) - held
    train_qa, val_qa = qa.subset(np.arange(cut)), qa.subset(np.arange(cut, len(qa)))
    model, tokenizer = localizer_model(paths, params, pretrained=False)
    fit_localizer(params, model, tokenizer, PRETRAINED, Batcher(tokenizer, train_qa, localizer=True),
                  Batcher(tokenizer, val_qa, localizer=True), labels[:cut], labels[cut:])


def run_localizer(params: dict[str, Any], recipe: str) -> None:
    """SeViLA's self-refinement: a Localizer (registry.LOCALIZERS[recipe]: pre-trained or not) learns the
    pseudo-labels of its labeller on the training questions, validated on the val questions' labels."""
    if recipe not in LOCALIZERS:
        raise ValueError(f"--recipe {recipe}: one of {', '.join(LOCALIZERS)}")
    spec = LOCALIZERS[recipe]
    paths = Paths.from_params(params)
    check_features(paths, paths.model("backbone"))
    source = paths.pseudo_labels(spec["labeller"])
    meta = read_json(source / "meta.json")
    labeller = paths.model(LABELLERS[spec["labeller"]])
    if meta["answerer_sha256"] != sha256_file(labeller / "model.safetensors"):
        raise ValueError(f"{source}: made by another {labeller.name}; rerun its pseudolabel stage")
    model, tokenizer = localizer_model(paths, params, pretrained=spec["pretrained"])
    train_b = Batcher(tokenizer, load_split(paths, "train", features=True), localizer=True)
    val_b = Batcher(tokenizer, load_split(paths, "val", features=True), localizer=True)
    fit_localizer(params, model, tokenizer, recipe, train_b, val_b, np.load(source / "train.npy"),
                  np.load(source / "val.npy"))


def assemble(params: dict[str, Any], name: str, answerer: str, localizer: str) -> None:
    """A SeViLA model: an Answerer (its Q-Former reads the key frames) + a trained Localizer (picks them)."""
    paths = Paths.from_params(params)
    source = paths.model(answerer)
    model, tokenizer = load_model(source)
    trained, _ = load_model(paths.model(localizer))
    model = derive(model, selector="localizer", frames=model.config.frames, sampled_frames=params["data"]["frames"])
    model.localizer.load_state_dict(trained.localizer.state_dict())
    with atomic_dir(paths.model(name)) as out:
        save_model(model, tokenizer, out)
        write_json(out / "sevila.json", {"answerer": str(source), "localizer": str(paths.model(localizer))})
    log.info("%s: %s + the Localizer of %s", name, answerer, localizer)


def run_sevila(params: dict[str, Any], frames: int) -> None:
    """sevila_<k>f = the k-frame Answerer trained on the Localizer's frames + the Localizer (the whole recipe)."""
    check_keyframes(params, frames)
    assemble(params, sevila_name(frames), answerer_name(frames), MAIN_LOCALIZER)


def run_sevila_ablation(params: dict[str, Any], ablation: str) -> None:
    """One of registry.SEVILA_ABLATIONS: its Answerer + its Localizer."""
    if ablation not in SEVILA_ABLATIONS:
        raise ValueError(f"--ablation {ablation}: one of {', '.join(SEVILA_ABLATIONS)}")
    assemble(params, ablation, *SEVILA_ABLATIONS[ablation])
