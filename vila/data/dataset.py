"""Questions joined with the decode and feature caches, and batching for the models."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from vila.data.convert import read_unified
from vila.data.prompts import llm_prompt, localizer_prompt, qformer_prompt
from vila.io import read_json
from vila.paths import MOMENTS_SPLIT, Paths


@dataclass
class QASplit:
    """The questions of one split and, per question, the row of its clip in the caches."""

    name: str
    items: list[dict[str, Any]]
    rows: np.ndarray
    frames: np.ndarray | None = None  # uint8 [clips, T, H, W, 3] (memory-mapped)
    features: np.ndarray | None = None  # float16 [clips, T, N, D] frozen-ViT tokens (memory-mapped)

    def __len__(self) -> int:
        return len(self.items)

    def subset(self, idx: np.ndarray) -> QASplit:
        """The questions at `idx` (the same caches)."""
        return QASplit(self.name, [self.items[i] for i in idx], self.rows[idx], self.frames, self.features)

    @property
    def sampled_frames(self) -> int:
        """Frames per clip on the sampling grid (the caches' second axis)."""
        cache = self.features if self.features is not None else self.frames
        if cache is None:
            raise ValueError(f"split {self.name}: loaded without frames or features, so it has no sampling grid")
        return int(cache.shape[1])


def clip_id(item: dict[str, Any]) -> str:
    """The decode cache's key of a question's clip: its video, and its span where it has one (questions on
    one video with different spans read different frames; those with the same span share a clip)."""
    if item.get("start") is None and item.get("end") is None:
        return item["video"]
    return f"{item['video']}@{item.get('start')}-{item.get('end')}"


def load_split(paths: Paths, split: str, frames: bool = False, features: bool = False) -> QASplit:
    items = read_unified(paths.annotations(split), moments=split == MOMENTS_SPLIT)
    index = read_json(paths.frames_dir / f"{split}.index.json")
    skipped = set(read_json(paths.frames_dir / "skipped.json").get(split, {}))
    items = [it for it in items if clip_id(it) not in skipped]  # counted and listed by preprocess
    missing = sorted({clip_id(it) for it in items if clip_id(it) not in index})
    if missing:
        raise KeyError(f"{paths.frames_dir / f'{split}.index.json'}: no decoded frames for clips {missing[:5]}")
    rows = np.array([index[clip_id(it)] for it in items], dtype=np.int64)
    qa = QASplit(split, items, rows)
    if frames:
        qa.frames = np.load(paths.frames_dir / f"{split}.npy", mmap_mode="r")
    if features:
        qa.features = np.load(paths.features_dir / f"{split}.npy", mmap_mode="r")
    return qa


class Batcher:
    """Tokenises every question once and cuts batches (with the frames each model reads)."""

    def __init__(self, tokenizer: Any, qa: QASplit, localizer: bool = False) -> None:
        """localizer: also SeViLA's Localizer prompt per question (localizer_ids/localizer_mask in each batch)."""
        self.qa = qa
        # InstructBLIP's Q-Former has its own (BERT) tokenizer; the embedded model shares one
        qformer_tokenizer = getattr(tokenizer, "qformer_tokenizer", tokenizer)
        q = qformer_tokenizer([qformer_prompt(it) for it in qa.items], padding=True, return_tensors="pt")
        p = tokenizer([llm_prompt(it) for it in qa.items], padding=True, return_tensors="pt")
        self.qformer_ids, self.qformer_mask = q.input_ids, q.attention_mask
        self.input_ids, self.attention_mask = p.input_ids, p.attention_mask
        self.localizer_ids = self.localizer_mask = None
        if localizer:
            loc = tokenizer([localizer_prompt(it) for it in qa.items], padding=True, return_tensors="pt")
            self.localizer_ids, self.localizer_mask = loc.input_ids, loc.attention_mask
        # -1: no answer (a moment-retrieval query of SeViLA's Localizer pre-training: its labels are per frame)
        self.labels = torch.tensor([it.get("answer", -1) for it in qa.items])
        self.num_options = torch.tensor([it["num_option"] for it in qa.items])

    def batch(self, idx: np.ndarray, frame_idx: np.ndarray | None = None, features: bool = True,
              frames: bool = False) -> dict[str, Any]:
        """Tensors for questions `idx`; `frame_idx` [B, F] picks frames of the grid (all when None)."""
        t_idx = torch.as_tensor(idx)
        qlen = int(self.qformer_mask[t_idx].sum(1).max())
        plen = int(self.attention_mask[t_idx].sum(1).max())
        out: dict[str, Any] = {
            "qformer_ids": self.qformer_ids[t_idx, :qlen],
            "qformer_mask": self.qformer_mask[t_idx, :qlen],
            "input_ids": self.input_ids[t_idx, :plen],
            "attention_mask": self.attention_mask[t_idx, :plen],
            "num_options": self.num_options[t_idx],
            "labels": self.labels[t_idx],
        }
        if self.localizer_ids is not None:
            llen = int(self.localizer_mask[t_idx].sum(1).max())
            out["localizer_ids"] = self.localizer_ids[t_idx, :llen]
            out["localizer_mask"] = self.localizer_mask[t_idx, :llen]
        rows = self.qa.rows[idx]
        # the grid positions of the frames handed over (the time signal reads them)
        grid = np.arange(self.qa.sampled_frames)
        out["frame_index"] = torch.from_numpy(np.ascontiguousarray(
            np.broadcast_to(grid, (len(idx), len(grid))) if frame_idx is None else frame_idx)).long()
        if features:
            feats = self.qa.features[rows] if frame_idx is None else self.qa.features[rows[:, None], frame_idx]
            out["vit_tokens"] = torch.from_numpy(np.ascontiguousarray(feats)).float()
        if frames:
            fr = self.qa.frames[rows] if frame_idx is None else self.qa.frames[rows[:, None], frame_idx]
            out["frames"] = torch.from_numpy(np.ascontiguousarray(fr))
        return out
