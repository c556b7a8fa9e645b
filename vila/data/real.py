"""Real datasets on local disk: verify, convert and locate videos. Nothing is downloaded.

Layout under data/<dataset>/ (data/ is tracked by data.dvc and shared through the team's remote):
  annotations/   the official files under their official names (see convert.OFFICIAL_FILES)
  videos/        one file per video id (<id>.mp4/.webm/.mkv/.avi); NExT-QA: as map_vid_vidorID.json maps
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from vila.data.convert import OFFICIAL_FILES, convert
from vila.io import read_json

log = logging.getLogger(__name__)
VIDEO_EXTENSIONS = (".mp4", ".webm", ".mkv", ".avi")
WHERE_TO_GET = {
    "star": "STAR annotations (STAR_train.json, STAR_val.json) from the STAR benchmark site; videos: Charades v1 (480p) "
            "from the Allen AI Charades page",
    "nextqa": "NExT-QA train.csv/val.csv/test.csv and map_vid_vidorID.json from the NExT-QA repository; videos: "
              "NExTVideo from the link in that repository",
    "how2qa": "How2QA annotations from the VALUE benchmark release; the raw videos are not a public download: "
              "request them from the How2QA/HowTo100M authors",
    "tvqa": "TVQA annotations from the TVQA site; the raw frames/videos are granted by the TVQA authors on request",
    "vlep": "VLEP annotations from the VLEP repository; the videos (TV shows and YouTube vlogs) are granted by the "
            "authors on request",
}


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
            f"{ann}: not found. Put the official {dataset} files there ({', '.join(OFFICIAL_FILES[dataset].values())}) "
            f"and the videos in {raw / 'videos'}/. Get them from: {WHERE_TO_GET[dataset]}. "
            f"Then `dvc add data` and `dvc push` to share them.")
    counts = convert(dataset, ann, out / "annotations")
    stats: dict[str, Any] = {"questions": counts, "videos": {}}
    for split in counts:
        items = json.loads((out / "annotations" / f"{split}.json").read_text())
        videos = sorted({it["video"] for it in items})
        present = [v for v in videos if locate_video(raw, dataset, v).exists()]
        stats["videos"][split] = {"referenced": len(videos), "present": len(present)}
        if len(present) < len(videos):
            missing = sorted(set(videos) - set(present))
            log.warning("%s %s: %d of %d videos missing under %s (e.g. %s). Get them from: %s", dataset, split,
                        len(missing), len(videos), raw / "videos", missing[:3], WHERE_TO_GET[dataset])
    if not any(s["present"] for s in stats["videos"].values()):
        raise FileNotFoundError(f"{raw / 'videos'}: no videos of {dataset} found. Get them from: {WHERE_TO_GET[dataset]}")
    return stats
