"""Real datasets on local disk: verify, convert, assign the splits' roles and locate videos. Nothing is downloaded.

Layout under data/ (tracked whole by data.dvc and shared through the team's remote):
  <dataset>/annotations/   the official files under their official names (vila/data/registry.py)
  <dataset>/videos/        one file per video id (<id>.mp4/.webm/.mkv/.avi); NExT-QA: as map_vid_vidorID.json maps
  qvhighlights/            SeViLA's moment-retrieval set (annotations/highlight_train_release.jsonl, videos/)

The download stage writes, under work/<dataset>/dataset/: official/<split>.json (each official file converted) and
annotations/{train,val,test,moments}.json, the splits every stage reads by role (registry.py's docstring).
"""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from vila.data.convert import convert, convert_qvhighlights, read_unified
from vila.data.registry import DATASETS, MOMENTS_FILE, MOMENTS_SOURCE, MOMENTS_WHERE, split_roles
from vila.io import read_json, write_json
from vila.paths import MOMENTS_SPLIT, SPLITS

log = logging.getLogger(__name__)
VIDEO_EXTENSIONS = (".mp4", ".webm", ".mkv", ".avi")
UNKNOWN_TOKENS_WARN = 0.01  # above this share of <unk> tokens in questions and options, the tokenizer is warned about


def _nextqa_map(raw: Path) -> dict[str, str]:
    path = raw / "annotations" / "map_vid_vidorID.json"
    return {str(k): str(v) for k, v in read_json(path).items()} if path.exists() else {}


def locate_video(raw: Path, dataset: str, video: str) -> Path:
    stem = _nextqa_map(raw).get(video, video) if dataset == "nextqa" else video
    for ext in VIDEO_EXTENSIONS:
        path = raw / "videos" / f"{stem}{ext}"
        if path.exists():
            return path
    return raw / "videos" / f"{stem}.mp4"  # reported as missing by the decoder with this name


def carve_out(items: list[dict[str, Any]], fraction: float, seed: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(kept, held out): `fraction` of the items' videos, drawn with `seed`, and every question on them held out,
    so that no clip is both trained and validated on. Items keep their order."""
    videos = sorted({it["video"] for it in items})
    n = max(1, round(fraction * len(videos)))
    if n >= len(videos):
        raise ValueError(f"data.validation.fraction: {fraction} of official train's {len(videos)} videos leaves none "
                         "to train on")
    held = {videos[i] for i in np.random.default_rng(seed).permutation(len(videos))[:n]}
    return [it for it in items if it["video"] not in held], [it for it in items if it["video"] in held]


def unknown_share(tok: Any, texts: list[str]) -> tuple[int, int, Counter]:
    """(tokens, <unk> tokens, the words read as <unk>) of `texts` under a tokenizer."""
    unk, total, unknown, words = tok.unk_token_id, 0, 0, Counter()
    for text in texts:
        seq = tok(text, add_special_tokens=False).input_ids
        total += len(seq)
        if unk is not None and unk in seq:
            unknown += seq.count(unk)
            words.update(w for w in text.split() if unk in tok(w, add_special_tokens=False).input_ids)
    return total, unknown, words


def tokenizer_coverage(weights: str, items: list[dict[str, Any]]) -> dict[str, Any]:
    """How the weights' tokenizers read the questions and options: the share of <unk> tokens (a warning above
    UNKNOWN_TOKENS_WARN, with the words not known; the language model's tokenizer and the Q-Former's), and an error
    when different options of a question become the same tokens for the language model (it could not tell them
    apart)."""
    from transformers import AutoTokenizer

    options = [[it[f"a{i}"] for i in range(it["num_option"])] for it in items]
    texts = [t for it, opts in zip(items, options, strict=True) for t in (it["question"], *opts)]
    report: dict[str, Any] = {}
    for name, path in (("language_model", Path(weights)), ("qformer", Path(weights) / "qformer_tokenizer")):
        tok = AutoTokenizer.from_pretrained(path, local_files_only=True)
        total, unknown, words = unknown_share(tok, texts)
        share = unknown / max(total, 1)
        if share > UNKNOWN_TOKENS_WARN:
            log.warning("model.weights: %s: %.1f%% of the question and option tokens are unknown to its %s tokenizer "
                        "(e.g. %s)", weights, 100 * share, name, [w for w, _ in words.most_common(8)])
        report[name] = {"tokens": total, "unknown": unknown, "unknown_share": round(share, 6),
                        "unknown_words": dict(words.most_common(20))}
        if name == "language_model":
            same = [it["qid"] for it, opts in zip(items, options, strict=True) if len(set(opts)) == len(opts) and
                    len({tuple(tok(o, add_special_tokens=False).input_ids) for o in opts}) < len(opts)]
            if same:
                raise ValueError(f"model.weights: {weights}: its tokenizer reads different options as the same tokens "
                                 f"in {len(same)} questions (e.g. {same[:3]}; unknown words "
                                 f"{[w for w, _ in words.most_common(8)]}): the model could not tell them apart. Use "
                                 "the tokenizer the weights were trained with")
    return report


def moment_set(params: dict[str, Any], raw_root: Path, out: Path) -> int:
    """SeViLA's moment-retrieval set (QVHighlights) as the `moments` split, on data.frames' grid."""
    src = raw_root / MOMENTS_SOURCE / "annotations" / MOMENTS_FILE
    if not src.is_file():
        raise FileNotFoundError(f"{src}: not found. SeViLA's Localizer is pre-trained on moment retrieval before it "
                                f"learns {params['dataset']}: put {MOMENTS_WHERE}")
    items = convert_qvhighlights(src, params["data"]["frames"])
    write_json(out / "annotations" / f"{MOMENTS_SPLIT}.json", items)
    return len(items)


def prepare_real_dataset(params: dict[str, Any], raw_root: Path, out: Path) -> dict[str, Any]:
    """Convert the official files, write the splits by role (train less the carve-out, the carve-out, the reported
    split) and SeViLA's moment set, check the videos and the tokenizer; returns stats.json's content."""
    dataset, info = params["dataset"], DATASETS[params["dataset"]]
    raw, ann = raw_root / dataset, raw_root / dataset / "annotations"
    if not ann.is_dir():
        raise FileNotFoundError(
            f"{ann}: not found. Put the official {dataset} files there ({', '.join(info.official_files.values())}) "
            f"and the videos in {raw / 'videos'}/. Get them from: {info.where}. "
            f"Then `dvc add data` and `dvc push` to share them.")
    official = convert(dataset, ann, out / "official")
    needed = {"train", info.reported}
    if absent := sorted(info.official_files[s] for s in needed - set(official)):
        raise FileNotFoundError(f"{ann}: {', '.join(absent)} not found: {dataset}'s models train on official train and "
                                f"are reported on official {info.reported}. Get them from: {info.where}")
    validation = params["data"]["validation"]
    train, val = carve_out(read_unified(out / "official" / "train.json"), validation["fraction"], validation["seed"])
    roles = {"train": train, "val": val, "test": read_unified(out / "official" / f"{info.reported}.json")}
    for split, items in roles.items():
        write_json(out / "annotations" / f"{split}.json", items)
    log.info("%s: train %d questions, val %d (a carve-out of official train, %d videos), test %d (official %s)",
             dataset, len(train), len(val), len({it["video"] for it in val}), len(roles["test"]), info.reported)
    stats: dict[str, Any] = {"questions": {s: len(items) for s, items in roles.items()}, "official": official,
                             "roles": split_roles(dataset, validation["fraction"]), "validation": validation,
                             "videos": {}}
    stats["questions"][MOMENTS_SPLIT] = moment_set(params, raw_root, out)
    for split in (*SPLITS, MOMENTS_SPLIT):
        source = (raw_root / MOMENTS_SOURCE, MOMENTS_SOURCE) if split == MOMENTS_SPLIT else (raw, dataset)
        items = read_unified(out / "annotations" / f"{split}.json", moments=split == MOMENTS_SPLIT)
        videos = sorted({it["video"] for it in items})
        present = [v for v in videos if locate_video(*source, v).exists()]
        stats["videos"][split] = {"referenced": len(videos), "present": len(present)}
        if len(present) < len(videos):
            missing = sorted(set(videos) - set(present))
            log.warning("%s %s: %d of %d videos missing under %s (e.g. %s). Get them from: %s", dataset, split,
                        len(missing), len(videos), source[0] / "videos", missing[:3],
                        MOMENTS_WHERE if split == MOMENTS_SPLIT else info.where)
    if not any(stats["videos"][s]["present"] for s in SPLITS):
        raise FileNotFoundError(f"{raw / 'videos'}: no videos of {dataset} found. Get them from: {info.where}")
    stats["tokenizer"] = tokenizer_coverage(params["model"]["weights"], [it for items in roles.values() for it in items])
    return stats
