"""The `download` stage.

synthqa: generate the clips (PyAV) and unified annotations, and write stats.json.
Real datasets: nothing is fetched at run time. Verify what the user placed under data/<dataset>/
(official annotation files, videos), convert the annotations to the unified format, and say exactly
what is missing and where it goes.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from vila.data import synthqa
from vila.data.video import write_clip
from vila.io import atomic_dir, write_json
from vila.paths import Paths

log = logging.getLogger(__name__)
SPLITS = ("train", "val", "test")


def generate_synthqa(params: dict[str, Any], out: Path) -> dict[str, Any]:
    cfg = params["data"]["synthqa"]
    stats: dict[str, Any] = {"generator": cfg, "frames": synthqa.FRAMES, "splits": {}}
    all_items = []
    for split in SPLITS:
        clips = synthqa.generate_split(split, cfg["questions"][split], cfg["seed"], cfg["distractors"])
        (out / "videos").mkdir(parents=True, exist_ok=True)
        items = []
        rng = np.random.default_rng([cfg["seed"], 7, sum(map(ord, split))])
        for i, clip in enumerate(tqdm(clips, desc=f"synthqa {split}: writing clips", mininterval=2.0)):
            item = synthqa.unified_item(clip, split, i)
            write_clip(out / "videos" / f"{item['video']}.mp4", synthqa.render_clip(clip, cfg["size"], rng))
            items.append(item)
        write_json(out / "annotations" / f"{split}.json", items)
        stats["splits"][split] = synthqa.split_stats(items)
        all_items += items
    stats.update(synthqa.split_stats(all_items))
    return stats


def run(params: dict[str, Any]) -> None:
    paths = Paths.from_params(params)
    with atomic_dir(paths.dataset_dir) as out:
        if params["dataset"] == "synthqa":
            stats = generate_synthqa(params, out)
            write_json(out / "stats.json", stats)
            log.info(
                "synthqa: %d questions; uniform-4 key-frame coverage %.3f; reachable under one-frame-per-segment "
                "%.3f; answer positions %s",
                stats["questions"], stats["uniform4_keyframe_coverage"], stats["segment_reachable_fraction"],
                stats["answer_position_fraction"],
            )
        else:
            from vila.data.real import prepare_real_dataset

            stats = prepare_real_dataset(params["dataset"], paths.raw, out)
            write_json(out / "stats.json", stats)
