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

from vila.data.video import VideoError, read_grid
from vila.io import atomic_dir, read_json, write_json
from vila.paths import Paths

log = logging.getLogger(__name__)
SPLITS = ("train", "val", "test")


def video_path(paths: Paths, dataset: str, video: str) -> Path:
    if dataset == "synthqa":
        return paths.dataset_dir / "videos" / f"{video}.mp4"
    from vila.data.real import locate_video

    return locate_video(paths.raw, dataset, video)


def frame_size(params: dict[str, Any]) -> int:
    if params["dataset"] == "synthqa":
        return params["data"]["synthqa"]["size"]
    from vila.models.presets import PRESETS

    return PRESETS[params["model"]["preset"]]["vision_config"]["image_size"]


class Clips(torch.utils.data.Dataset):
    """Decoded grid of each clip, or the reason it could not be decoded (handled by the caller)."""

    def __init__(self, paths: Paths, dataset: str, spans: dict[str, tuple[Any, Any]], count: int, size: int) -> None:
        self.paths, self.dataset, self.spans, self.count, self.size = paths, dataset, spans, count, size
        self.videos = sorted(spans)

    def __len__(self) -> int:
        return len(self.videos)

    def __getitem__(self, i: int) -> tuple[str, np.ndarray | str]:
        video = self.videos[i]
        try:
            path = video_path(self.paths, self.dataset, video)
            return video, read_grid(path, self.count, *self.spans[video], size=self.size)
        except VideoError as e:
            return video, str(e)


def _as_is(item: tuple[str, np.ndarray | str]) -> tuple[str, np.ndarray | str]:
    return item


def run(params: dict[str, Any]) -> None:
    paths = Paths.from_params(params)
    count, size = params["data"]["frames"], frame_size(params)
    on_bad = params["data"]["on_bad_video"]
    skipped: dict[str, dict[str, str]] = {}
    with atomic_dir(paths.frames_dir) as out:
        for split in SPLITS:
            ann = paths.annotations(split)
            if not ann.exists():
                log.info("preprocess: no %s split (%s absent); skipped", split, ann)
                continue
            items = read_json(ann)
            spans: dict[str, tuple[float | None, float | None]] = {}
            for it in items:  # one clip per video+span; questions on the same clip share it
                spans.setdefault(it["video"], (it.get("start"), it.get("end")))
            clips = Clips(paths, params["dataset"], spans, count, size)
            cache = np.lib.format.open_memmap(
                out / f"{split}.npy", mode="w+", dtype=np.uint8, shape=(len(clips), count, size, size, 3)
            )
            index, bad = {}, {}
            workers = params["data"]["workers"]
            loader = torch.utils.data.DataLoader(clips, batch_size=None, num_workers=workers, collate_fn=_as_is,
                                                 prefetch_factor=2 if workers else None)
            for video, frames in tqdm(loader, total=len(clips), desc=f"preprocess {split}: decoding",
                                      mininterval=2.0):
                if isinstance(frames, str):
                    if on_bad == "error":
                        raise VideoError(f"{frames} (question video '{video}' in {ann}; set data.on_bad_video: "
                                         "skip to skip such videos, counted and listed in skipped.json)")
                    bad[video] = frames
                    continue
                cache[len(index)] = frames
                index[video] = len(index)
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
