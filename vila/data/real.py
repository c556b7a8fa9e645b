"""Real datasets on local disk: verify, convert and locate videos. Nothing is downloaded.

Layout under data/<dataset>/ (data/ is tracked by data.dvc and shared through the team's remote):
  annotations/   the official files under their official names (vila/data/registry.py)
  videos/        one file per video id (<id>.mp4/.webm/.mkv/.avi); NExT-QA: as map_vid_vidorID.json maps
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from vila.data.convert import convert, read_unified
from vila.data.registry import DATASETS
from vila.io import read_json

log = logging.getLogger(__name__)
VIDEO_EXTENSIONS = (".mp4", ".webm", ".mkv", ".avi")
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


def prepare_real_dataset(dataset: str, raw: Path, out: Path) -> dict[str, Any]:
    ann = raw / "annotations"
    if not ann.is_dir():
        raise FileNotFoundError(
            f"{ann}: not found. Put the official {dataset} files there ({', '.join(DATASETS[dataset].official_files.values())}) "
            f"and the videos in {raw / 'videos'}/. Get them from: {DATASETS[dataset].where}. "
            f"Then `dvc add data` and `dvc push` to share them.")
    counts = convert(dataset, ann, out / "annotations")
    stats: dict[str, Any] = {"questions": counts, "videos": {}}
    for split in counts:
        items = read_unified(out / "annotations" / f"{split}.json")
        videos = sorted({it["video"] for it in items})
        present = [v for v in videos if locate_video(raw, dataset, v).exists()]
        stats["videos"][split] = {"referenced": len(videos), "present": len(present)}
        if len(present) < len(videos):
            missing = sorted(set(videos) - set(present))
            log.warning("%s %s: %d of %d videos missing under %s (e.g. %s). Get them from: %s", dataset, split,
                        len(missing), len(videos), raw / "videos", missing[:3], DATASETS[dataset].where)
    if not any(s["present"] for s in stats["videos"].values()):
        raise FileNotFoundError(f"{raw / 'videos'}: no videos of {dataset} found. Get them from: {DATASETS[dataset].where}")
    return stats
