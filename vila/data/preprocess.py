"""The `preprocess` stage: the decode cache.

Every clip is decoded once, on a fixed grid of `data.frames` frames (the middle frame of equal
intervals of [start, end]), into uint8 arrays, one per split. Models then sample from the grid:
uniform-N evaluation takes the middle grid frame of each of N intervals, training a random grid
frame per interval. Caching a fixed grid (rather than decoding per epoch) is what makes training
epochs free of video decoding; the price is that training-time frame jitter is limited to the grid.
For long real videos the grid is still `data.frames` frames (the count the models sample from), decoded
by `data.workers` DataLoader processes, one clip each, while this process writes them in order into the
memory-mapped cache: memory stays bounded by the clips in flight, whatever the dataset size.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from vila.data.convert import read_unified
from vila.data.dataset import clip_id
from vila.data.video import Decoded, VideoError, decode_grid
from vila.io import atomic_dir, write_json
from vila.paths import CLIP_SPLITS, MOMENTS_SPLIT, Paths

log = logging.getLogger(__name__)


def video_path(paths: Paths, dataset: str, video: str, split: str) -> Path:
    """synthqa's generated clip; a real dataset's video, or for its moment-retrieval split QVHighlights' (real.py)."""
    if dataset == "synthqa":
        return paths.dataset_dir / "videos" / f"{video}.mp4"
    from vila.data.real import locate_video
    from vila.data.registry import MOMENTS_SOURCE

    if split == MOMENTS_SPLIT:
        return locate_video(paths.raw_root / MOMENTS_SOURCE, MOMENTS_SOURCE, video)
    return locate_video(paths.raw, dataset, video)


class Clips(torch.utils.data.Dataset):
    """Decoded (and checked) grid of each clip, or the reason it could not be decoded (handled by the caller).

    `clips`: clip id -> (video, start, end), as `clip_id` names them."""

    def __init__(self, paths: Paths, dataset: str, split: str, clips: dict[str, tuple[str, Any, Any]], count: int,
                 size: int, decoder: str) -> None:
        self.paths, self.dataset, self.split, self.clips, self.count, self.size = paths, dataset, split, clips, count, size
        self.decoder = decoder
        self.ids = sorted(clips)

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> tuple[str, Decoded | str]:
        clip = self.ids[i]
        video, start, end = self.clips[clip]
        try:
            path = video_path(self.paths, self.dataset, video, self.split)
            return clip, decode_grid(path, self.count, start, end, size=self.size, decoder=self.decoder)
        except VideoError as e:
            return clip, str(e)


def _as_is(item: tuple[str, Decoded | str]) -> tuple[str, Decoded | str]:
    return item


def decoding_summary(decoder: str, served: dict[str, dict[str, str]], fallbacks: dict[str, str]) -> dict[str, Any]:
    """Which decoder served which clips (per split), and why decord did not serve the others."""
    counts = {split: {d: sum(v == d for v in by.values()) for d in ("decord", "pyav")} for split, by in served.items()}
    return {"decoder": decoder, "clips": counts, "pyav_clips": fallbacks}


def frame_size(params: dict[str, Any]) -> int:
    """Side of the cached frames: synthqa's rendered size, or the ViT's input size of the model preset."""
    from vila.models.presets import PRESETS

    if params["dataset"] == "synthqa":
        return params["data"]["synthqa"]["size"]
    return PRESETS[params["model"]["preset"]]["vision_config"]["image_size"]


def run(params: dict[str, Any]) -> None:
    """Decode every clip's `data.frames`-frame grid, resized to the model's frame size (frame_size)."""
    size = frame_size(params)
    paths = Paths.from_params(params)
    count = params["data"]["frames"]
    on_bad, decoder = params["data"]["on_bad_video"], params["data"]["decoder"]
    skipped: dict[str, dict[str, str]] = {}
    served: dict[str, dict[str, str]] = {}  # split -> video -> decoder
    fallbacks: dict[str, str] = {}  # clip -> why decord's frames were not used
    with atomic_dir(paths.frames_dir) as out:
        for split in CLIP_SPLITS:
            ann = paths.annotations(split)
            if not ann.exists():
                log.info("preprocess: no %s split (%s absent); skipped", split, ann)
                continue
            items = read_unified(ann, moments=split == MOMENTS_SPLIT)
            spans: dict[str, tuple[str, float | None, float | None]] = {}
            for it in items:  # one clip per video+span; questions on the same clip share it
                spans.setdefault(clip_id(it), (it["video"], it.get("start"), it.get("end")))
            clips = Clips(paths, params["dataset"], split, spans, count, size, decoder)
            cache = np.lib.format.open_memmap(
                out / f"{split}.npy", mode="w+", dtype=np.uint8, shape=(len(clips), count, size, size, 3)
            )
            index, bad, served[split] = {}, {}, {}
            workers = params["data"]["workers"]
            loader = torch.utils.data.DataLoader(clips, batch_size=None, num_workers=workers, collate_fn=_as_is,
                                                 prefetch_factor=2 if workers else None)
            for video, decoded in tqdm(loader, total=len(clips), desc=f"preprocess {split}: decoding",
                                       mininterval=2.0):
                if isinstance(decoded, str):
                    if on_bad == "error":
                        raise VideoError(f"{decoded} (question video '{video}' in {ann}; set data.on_bad_video: "
                                         "skip to skip such videos, counted and listed in skipped.json)")
                    bad[video] = decoded
                    continue
                cache[len(index)] = decoded.frames
                index[video] = len(index)
                served[split][video] = decoded.decoder
                if decoded.fallback_reason and decoder == "auto":
                    fallbacks[video] = decoded.fallback_reason
            cache.flush()
            del cache
            if bad:  # drop the unused tail rows so the cache holds exactly the indexed clips
                arr = np.load(out / f"{split}.npy", mmap_mode="r")[: len(index)].copy()
                np.save(out / f"{split}.npy", arr)
                log.warning("preprocess %s: skipped %d unreadable videos (listed in skipped.json)", split, len(bad))
            skipped[split] = bad
            write_json(out / f"{split}.index.json", index)
            log.info("preprocess %s: %d clips x %d frames at %dx%d", split, len(index), count, size, size)
        write_json(out / "skipped.json", {**skipped, "counts": {s: len(b) for s, b in skipped.items()}})
        summary = decoding_summary(decoder, served, fallbacks)
        write_json(out / "decoding.json", summary)
        log.info("preprocess: decoder %s; clips served by decord / PyAV: %s%s", decoder,
                 ", ".join(f"{s} {c['decord']} / {c['pyav']}" for s, c in summary["clips"].items()),
                 f"; PyAV for {len(fallbacks)} clips whose decord frames failed the check, e.g. "
                 f"{next(iter(fallbacks))}: {next(iter(fallbacks.values()))} (all in decoding.json)" if fallbacks else "")
