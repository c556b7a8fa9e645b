"""One answerer, every selector: each selector picks k of a clip's T sampled frames, and the same frozen model,
the reader (`reader_<k>f`), reads the chosen frames. Table 1 mixes, in every row, how well a variant selects and
how well its own answerer reads what it selected; here only the selection differs.

Three stages:
- `reader` (one job per k of selection.frames): the shared answerer, trained to read whatever frames a selector may
  hand it, from question-blind frame sets only (READ_MIX): each training question, each step, is read with the
  uniform grid (one random frame per interval, as the teachers train) or k random frames, drawn at random. No set is
  drawn with a relevance signal (the teacher's, which ViLA's Prompter is distilled towards, would make ViLA's and
  the oracle's picks more familiar to the reader than SeViLA's); on synthqa v2 random sets hold a key shot often
  enough (k = 4: about a quarter of them) for the reader to learn to read one. Its val questions are read with one
  fixed draw of the same mix; the one loop and convergence rule, train.teacher's optimiser settings.
- `scores` (one job per source of selection.scorers): a per-frame relevance score of every val and test question,
  cached in work/<dataset>/scores/<source>.npz, with its key-frame AUC in results/<dataset>/scores/<source>.json.
  Sources: `backbone`, the image-text match probability of (frame, question) from the backbone's grounding head
  (GroundingHeads.match_probability: BLIP-2's first-stage ITM), the score the training-free selectors read;
  `sevila_<k>f`, SeViLA's Localizer "yes" logit (one LLM pass per frame); a ViLA variant, its Frame-Prompter's
  gate score. A model's own choice is also recorded, and how often its rule on the cached scores reproduces it
  (up to frames of exactly equal score).
- `select` (one job per selector and k of selection.frames): the selector's frames for every test question, the
  shared answerer's accuracy on them, key-frame recall; hyper-parameters of the training-free rules chosen on val
  by the same answerer's accuracy (the mean over question types), every candidate's val figure written with it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from vila.data.dataset import Batcher, QASplit, load_split
from vila.data.metrics import headline, score
from vila.device import autocast, device, to_device
from vila.evaluation.evaluate import frame_scores
from vila.evaluation.stats import key_frame_auc
from vila.io import atomic_file, read_json, write_json
from vila.models.registry import reader_name
from vila.paths import Paths
from vila.selection import rules
from vila.selection.registry import SELECTORS, candidates, score_source

log = logging.getLogger(__name__)
SCORED_SPLITS = ("val", "test")  # val: hyper-parameters chosen on it; test: the study's figures
RULE_OF_SELECTOR = {"segment": "segment_argmax", "topk": "topk", "localizer": "topk"}  # a model's config.selector


READ_MIX = ("uniform", "random")  # question-blind frame sets only


def mixed_frames(n: int, total: int, k: int, rng: np.random.Generator, middles: bool = False) -> np.ndarray:
    """[n, k] one question-blind frame set per question, each of a kind drawn uniformly from READ_MIX.
    middles: the uniform kind takes the intervals' middles (validation) instead of a random frame in each."""
    from vila.data.sampling import uniform_indices

    kinds = rng.integers(0, len(READ_MIX), n)
    grid = uniform_indices(total, k, None if middles else rng, n)
    out = np.empty((n, k), np.int64)
    for i, kind in enumerate(kinds):
        out[i] = grid[i] if READ_MIX[kind] == "uniform" else rules.random_frames(total, k, rng)
    return out


def run_reader(params: dict[str, Any], frames: int) -> None:
    """Train the selection study's shared answerer for budget k = `frames` (module docstring)."""
    k = frames
    from vila.training.fit import fit_reader

    if k not in params["selection"]["frames"]:
        raise ValueError(f"--frames {k}: not in selection.frames {params['selection']['frames']}")
    paths = Paths.from_params(params)
    total = params["data"]["frames"]
    n_val = len(load_split(paths, "val"))
    val_read = mixed_frames(n_val, total, k, np.random.default_rng([params["selection"]["random_seed"], k]),
                            middles=True)
    fit_reader(params, k, reader_name(k), lambda idx, rng: mixed_frames(len(idx), total, k, rng), val_read,
               out_dir=paths.reader(k))


# ---- scores ------------------------------------------------------------------------------------------------


def batches(n: int, size: int, desc: str) -> Any:
    return tqdm([np.arange(s, min(n, s + size)) for s in range(0, n, size)], desc=desc, leave=False, mininterval=2.0)


@torch.no_grad()
def itm_scores(backbone: Any, heads: Any, batcher: Batcher, batch_size: int, desc: str) -> np.ndarray:
    """[n, T] P(frame shows what the question names): the grounding head on the backbone Q-Former's queries of
    (frame, question), every frame of the cache."""
    dev = next(backbone.parameters()).device
    out = []
    for idx in batches(len(batcher.qa), batch_size, desc):
        b = to_device(batcher.batch(idx, None, features=True), dev)
        with autocast(dev):
            queries = backbone.qformer_queries(b["vit_tokens"], b["qformer_ids"], b["qformer_mask"])
            out.append(heads.match_probability(queries).float().cpu().numpy())
    return np.concatenate(out)


def mean_auc(scores: np.ndarray, items: list[dict[str, Any]]) -> float | None:
    """Mean over questions of the key-frame AUC of their scores (None without key-frame annotations)."""
    if not items or "keyframes" not in items[0]:
        return None
    aucs = [key_frame_auc(s, it["keyframes"]) for s, it in zip(scores, items, strict=True)]
    defined = [a for a in aucs if not np.isnan(a)]
    return float(np.mean(defined)) if defined else None


def run_scores(params: dict[str, Any], source: str) -> None:
    from vila.models.build import load_model

    paths = Paths.from_params(params)
    bs = params["evaluate"]["batch_size"]
    model, tokenizer = load_model(paths.model(source))
    model.to(device())
    splits = {s: load_split(paths, s, frames=model.selects_before_vit, features=True) for s in SCORED_SPLITS}
    arrays: dict[str, np.ndarray] = {}
    meta: dict[str, Any] = {"dataset": params["dataset"], "source": source, "key_frame_auc": {}}
    if source == "backbone":
        from vila.models.grounding import load_grounding_heads

        heads = load_grounding_heads(model, paths.model(source)).to(device())
        meta.update(score="P(the frame shows what the question names): the backbone's grounding head (image-text "
                          "match) on its Q-Former's queries of (frame, question)", rule=None)
        for split, qa in splits.items():
            arrays[split] = itm_scores(model, heads, Batcher(tokenizer, qa), bs, f"scores backbone ITM {split}")
    else:
        kind = model.config.selector
        if kind is None:
            raise ValueError(f"selection.scorers: {source} is a uniform model; it has no frame scores")
        meta.update(score="SeViLA's Localizer: the LLM's 'yes' logit, one pass per frame" if kind == "localizer"
                    else f"ViLA's Frame-Prompter gate score ({model.config.gate} gate)",
                    rule=RULE_OF_SELECTOR[kind], model_frames=int(model.config.frames), reproduces_model_choice={})
        pick = rule(RULE_OF_SELECTOR[kind], {})
        for split, qa in splits.items():
            s, own = frame_scores(model, Batcher(tokenizer, qa, localizer=kind == "localizer"), bs,
                                  f"scores {source} {split}")
            arrays[split], arrays[f"{split}_chosen"] = s, own
            ours = np.stack([pick(row, own.shape[1]) for row in s])
            # Up to frames of exactly equal score (a clip's empty frames are identical: so are their features and
            # scores, and torch's top-k may take either of two equal ones); those the answerer cannot tell apart.
            same = np.sort(np.take_along_axis(s, ours, 1), 1) == np.sort(np.take_along_axis(s, own, 1), 1)
            meta["reproduces_model_choice"][split] = float(same.all(1).mean())
    for split, qa in splits.items():
        arrays[f"{split}_qids"] = np.array([it["qid"] for it in qa.items])
        meta["key_frame_auc"][split] = mean_auc(arrays[split], qa.items)
    target = paths.scores(source)
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(target) as tmp, open(tmp, "wb") as f:
        np.savez(f, **arrays)
    write_json(paths.scores_meta(source), meta)
    log.info("scores %s: key-frame AUC %s", source, meta["key_frame_auc"])


# ---- select ------------------------------------------------------------------------------------------------


def load_scores(paths: Paths, source: str, qa: QASplit) -> np.ndarray:
    """The cached scores of one split, checked against the split's questions (same questions, same order)."""
    path = paths.scores(source)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no cached frame scores of {source}; run the scores stage "
                                f"(vila scores --source {source})")
    with np.load(path) as z:
        scores, qids = z[qa.name], z[f"{qa.name}_qids"].tolist()
    if qids != [it["qid"] for it in qa.items]:
        raise ValueError(f"{path}: scores {qa.name} are for other questions than {qa.name}'s annotations; rerun the "
                         f"scores stage")
    return scores


def rule(name: str, hp: dict[str, Any]) -> Callable[[np.ndarray, int], np.ndarray]:
    """scores [T], k -> k frame indices: one of rules.py's functions at a setting of its hyper-parameters."""
    fn = getattr(rules, name)
    return lambda s, k: fn(s, k, **hp)


def choose(selector: str, k: int, qa: QASplit, scores: np.ndarray | None, hp: dict[str, Any], total: int,
           rng: np.random.Generator | None = None, model_rule: str | None = None) -> np.ndarray:
    """[n, k] frames of every question of a split, in time order, by the selector's kind (registry.KINDS).
    `model_rule`: how the scores' model picks (a trained selector's scores are read by its own rule, at budget k)."""
    entry, n = SELECTORS[selector], len(qa)
    if entry.kind == "grid":
        return np.tile(rules.uniform(total, k), (n, 1))
    if entry.kind == "chance":
        assert rng is not None
        return np.stack([rules.random_frames(total, k, rng) for _ in range(n)])
    if entry.kind == "pixels":
        from vila.data.synthqa import BLIND_STATISTICS, top_k_random_ties

        if rng is None or qa.frames is None:
            raise ValueError(f"selector {selector}: needs the split's decoded frames and a random generator (ties)")
        stat = BLIND_STATISTICS[entry.rule]
        return np.stack([top_k_random_ties(stat(np.asarray(qa.frames[row])), k, rng) for row in qa.rows])
    if entry.kind == "ground_truth":
        if qa.items and "keyframes" not in qa.items[0]:
            raise ValueError(f"selector {selector}: the {qa.name} annotations have no key frames (synthqa has them)")
        return np.stack([rules.oracle(it["keyframes"], total, k) for it in qa.items])
    name = entry.rule or model_rule
    if scores is None or name is None:
        raise ValueError(f"selector {selector}: needs frame scores and a rule to read them")
    pick = rule(name, hp)
    return np.stack([pick(row, k) for row in scores])


def accuracy_of(params: dict[str, Any], model: Any, batcher: Batcher, read: np.ndarray,
                desc: str) -> tuple[dict[str, float], dict[str, int]]:
    """The answerer reading frames `read` [n, k]: (accuracy per type, qid -> chosen option)."""
    from vila.evaluation.evaluate import predict

    preds, _ = predict(model, batcher, params["evaluate"]["batch_size"], desc=desc, read=read)
    predictions = {it["qid"]: int(p) for it, p in zip(batcher.qa.items, preds, strict=True)}
    return score(params["dataset"], batcher.qa.items, predictions), predictions


def run_select(params: dict[str, Any], selector: str, frames: int) -> None:
    """One selector's k = `frames` frames of every question of the evaluation split, read by reader_<k>f."""
    k = frames
    from vila.evaluation.evaluate import eval_result
    from vila.models.build import load_model

    cfg = params["selection"]
    paths = Paths.from_params(params)
    total = params["data"]["frames"]
    answerer = reader_name(k)
    model, tokenizer = load_model(paths.reader(k))
    model.to(device())
    source = score_source(selector, k, params)
    model_rule = read_json(paths.scores_meta(source))["rule"] if source and source != "backbone" else None
    split = params["evaluate"]["split"]
    qa = load_split(paths, split, features=True, frames=SELECTORS[selector].reads_pixels)
    grid = candidates(selector, cfg)
    tuning: list[dict[str, Any]] = []
    best = grid[0]
    if len(grid) > 1:  # chosen on val by the shared answerer; the same frames are evaluated once
        val = load_split(paths, "val", features=True)
        val_scores = load_scores(paths, source, val) if source else None
        batcher, seen = Batcher(tokenizer, val), {}
        for hp in tqdm(grid, desc=f"select {selector} {k}f: choosing on val", mininterval=2.0):
            read = choose(selector, k, val, val_scores, hp, total, model_rule=model_rule)
            key = read.tobytes()
            if key not in seen:
                seen[key] = accuracy_of(params, model, batcher, read, "val")[0]
            tuning.append({**hp, "val_accuracy": seen[key]})
        best = grid[int(np.argmax([headline(t["val_accuracy"]) for t in tuning]))]  # the first of equals
    scores = load_scores(paths, source, qa) if source else None
    rng = np.random.default_rng([cfg["random_seed"], k])
    read = choose(selector, k, qa, scores, best, total, rng, model_rule)
    _, predictions = accuracy_of(params, model, Batcher(tokenizer, qa), read, f"select {selector} {k}f")
    extra: dict[str, Any] = {"answerer": answerer, "selector": selector, "scores": source, "hyperparameters": best}
    if tuning:
        extra["tuning"] = {"split": "val", "by": "accuracy (mean of types)", "candidates": tuning}
    result = eval_result(params, f"select_{selector}_{k}f", k, total, qa.items, predictions, read, paths.reader(k),
                         **extra)
    write_json(paths.selection_json(selector, k), result)
    summary = result.get("selection")
    log.info("select %s %df (answerer %s%s): %s %.4f%s", selector, k, answerer, f", {best}" if best else "", split,
             headline(result["accuracy"]), f", key-frame recall {summary['keyframe_recall']:.3f}" if summary else "")
