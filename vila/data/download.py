"""The `download` stage.

synthqa: generate the clips (PyAV) and unified annotations, and write stats.json.
Real datasets: nothing is fetched at run time. Verify what the user placed under data/<dataset>/
(official annotation files, videos), convert the annotations to the unified format, and say exactly
what is missing and where it goes.
"""

from __future__ import annotations

import hashlib
import logging
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from vila.data import synthqa
from vila.data.video import VideoError, decode_grid, psnr, write_clip
from vila.io import atomic_dir, write_json
from vila.paths import CLIP_SPLITS, Paths

log = logging.getLogger(__name__)
# Decoded clips must reproduce the rendered frames. The bound is measured on synthqa v2 (three objects in every
# 32 px frame; video.X264_OPTIONS): correct decodes of crf-0 4:4:4 clips give 58-62 dB per clip (60 clips; the
# whole benchmark's minimum is in stats.json), a clip decoded one frame off at most 14 dB; with 4:2:0 chroma even a
# correct decode gave only 25-27 dB. 45 dB passes every correct decode with a wide margin and fails any shifted,
# garbled or 4:2:0-blurred one.
MIN_CLIP_PSNR_DB = 45.0
CLIP_WORKERS = 2  # the download stage's threads (vila/pipeline/stages.py)


def frames_sha256(frames: np.ndarray) -> str:
    """Checksum of uint8 frames [T, H, W, 3]: the bytes in C order, with the shape (pure numpy, any machine)."""
    h = hashlib.sha256(repr(frames.shape).encode())
    h.update(np.ascontiguousarray(frames, dtype=np.uint8).tobytes())
    return h.hexdigest()


def verify_clip(path: Path, rendered: np.ndarray, decoder: str, shown: Path) -> dict[str, Any]:
    """Decode a written clip and check it reproduces the rendered frames: every decoded frame nearest to its
    own rendered frame (which frame is which), and the PSNR over the clip. Errors name the clip as `shown`."""
    decoded = decode_grid(path, len(rendered), decoder=decoder)
    d = decoded.frames.reshape(len(rendered), 1, -1).astype(np.float32)
    r = rendered.reshape(1, len(rendered), -1).astype(np.float32)
    mse = ((d - r) ** 2).mean(-1)  # [decoded t, rendered s]
    for t in range(len(rendered)):
        if mse[t].min() < mse[t, t]:
            raise VideoError(f"{shown}: decoded frame {t} is closer to rendered frame {int(mse[t].argmin())} than to "
                             f"its own (decoded with {decoded.decoder})")
    quality = psnr(rendered, decoded.frames)
    if quality < MIN_CLIP_PSNR_DB:
        raise VideoError(f"{shown}: decoded with {decoded.decoder}, the clip reproduces its rendered frames at "
                         f"{quality:.1f} dB PSNR, below the {MIN_CLIP_PSNR_DB} dB every correct decode reaches")
    return {"rendered_sha256": frames_sha256(rendered), "decoded_sha256": frames_sha256(decoded.frames),
            "psnr_db": round(quality, 3), "decoder": decoded.decoder}


def digest(hexes: list[str]) -> str:
    return hashlib.sha256("".join(hexes).encode()).hexdigest()


def write_and_verify(path: Path, rendered: np.ndarray, decoder: str, shown: Path) -> dict[str, Any]:
    write_clip(path, rendered)
    return verify_clip(path, rendered, decoder, shown)


def generate_synthqa(params: dict[str, Any], out: Path, final: Path) -> dict[str, Any]:
    """Write the clips and annotations of every split (the QA splits and the moment-retrieval set) into `out`
    (renamed to `final` when the stage succeeds), and return the benchmark card (stats.json). Each split has its own
    seed (the test split's serves nothing else). The clips are rendered in order (one generator per split draws every
    clip's noise), then encoded and checked by CLIP_WORKERS processes: the same files and checksums for any count."""
    cfg = params["data"]["synthqa"]
    stats: dict[str, Any] = {"generator_version": synthqa.GENERATOR_VERSION, "generator": cfg,
                             "test_seed": cfg["seeds"]["test"], "frames": synthqa.FRAMES, "splits": {},
                             "question_blind_selection": {}, "checksums": {}}
    checksums: dict[str, dict[str, Any]] = {}
    qa_items = []
    (out / "videos").mkdir(parents=True, exist_ok=True)
    with ProcessPoolExecutor(CLIP_WORKERS, mp_context=multiprocessing.get_context("fork")) as pool:
        for split in CLIP_SPLITS:
            seed, count = cfg["seeds"][split], cfg["questions"][split]
            if split == "moments":
                clips: list[Any] = synthqa.generate_moments(count, seed)
                items = [synthqa.moment_item(c, i) for i, c in enumerate(clips)]
            else:
                clips = synthqa.generate_split(split, count, seed)
                items = [synthqa.unified_item(c, split, i) for i, c in enumerate(clips)]
            rng = np.random.default_rng([seed, 7])
            written, blind = [], []
            for item, clip in zip(items, clips, strict=True):
                rendered = synthqa.render_frames(clip.frames, cfg["size"], rng)
                if split != "moments":
                    blind.append(synthqa.blind_statistics(rendered))
                path = out / "videos" / f"{item['video']}.mp4"
                shown = final / "videos" / path.name
                written.append(pool.submit(write_and_verify, path, rendered, params["data"]["decoder"], shown))
            for item, job in zip(tqdm(items, desc=f"synthqa {split}: writing clips", mininterval=2.0), written,
                                 strict=True):
                checksums[item["video"]] = job.result()
            write_json(out / "annotations" / f"{split}.json", items)
            stats["checksums"][split] = checksum_summary([checksums[it["video"]] for it in items])
            if split == "moments":
                stats["splits"][split] = moment_stats(items, seed)
                continue
            stats["splits"][split] = {"seed": seed, **synthqa.split_stats(items)}
            stats["question_blind_selection"][split] = synthqa.blind_selection_recall(items, blind, BLIND_KS, seed)
            qa_items += items
    stats.update(synthqa.split_stats(qa_items))
    write_json(out / "checksums.json", checksums)
    return stats


BLIND_KS = (2, 4)  # the frame budgets of the question-blind selectors' recall in the benchmark card


def moment_stats(items: list[dict[str, Any]], seed: int) -> dict[str, Any]:
    relevant = [len(it["relevant_frames"]) for it in items]
    return {"seed": seed, "clips": len(items), "relevant_frames_mean": float(np.mean(relevant)),
            "queries_naming_two_colours": sum("together" in it["question"] for it in items)}


def checksum_summary(clips: list[dict[str, Any]]) -> dict[str, Any]:
    """A split's checksums: rendered frames (identical on every machine), decoded frames (the same where the
    encoder and decoder are), the worst PSNR, and which decoder served how many clips."""
    decoders = sorted({c["decoder"] for c in clips})
    return {
        "rendered_frames_sha256": digest([c["rendered_sha256"] for c in clips]),
        "decoded_frames_sha256": digest([c["decoded_sha256"] for c in clips]),
        "min_psnr_db": min(c["psnr_db"] for c in clips),
        "decoded_by": {d: sum(c["decoder"] == d for c in clips) for d in decoders},
    }


def run(params: dict[str, Any]) -> None:
    paths = Paths.from_params(params)
    with atomic_dir(paths.dataset_dir) as out:
        if params["dataset"] == "synthqa":
            stats = generate_synthqa(params, out, paths.dataset_dir)
            write_json(out / "stats.json", stats)
            for split, c in stats["checksums"].items():
                log.info("synthqa %s: rendered frames sha256 %s; decoded %s (%s), every clip >= %.1f dB PSNR", split,
                         c["rendered_frames_sha256"][:16], c["decoded_frames_sha256"][:16], c["decoded_by"],
                         c["min_psnr_db"])
            log.info(
                "synthqa v%d: %d questions; uniform-4 key-frame coverage %.3f, key-shot coverage %.3f; every key "
                "shot reachable under one-frame-per-segment %.3f; answer positions %s",
                stats["generator_version"], stats["questions"], stats["uniform4_keyframe_coverage"],
                stats["uniform4_event_coverage"], stats["segment_reachable_fraction"], stats["answer_position_fraction"],
            )
        else:
            from vila.data.real import prepare_real_dataset

            stats = prepare_real_dataset(params, paths.raw_root, out)
            write_json(out / "stats.json", stats)
