"""The `summary` stage: the few figures DVC reads as metrics, one small file per model.

The eval JSONs (with their chosen-frame samples and per-question predictions) and speed.json (latency per batch
size, breakdown, FLOPs, memory) are what reports and checks read, hundreds of values. DVC reads
results/<dataset>/metrics/<model>.json instead: the same four keys for every model (METRIC_KEYS), so
`dvc metrics show` and `dvc metrics diff` print a row per model and a column per key.
"""

from __future__ import annotations

import logging
from typing import Any

from vila.data.metrics import headline
from vila.io import atomic_dir, read_json, write_json
from vila.models.registry import SPEED_REFERENCE, speedup_key
from vila.paths import Paths

log = logging.getLogger(__name__)
METRIC_KEYS = ("accuracy", "accuracy_mean", "keyframe_recall", f"speedup_vs_{SPEED_REFERENCE}")


def model_metrics(ev: dict[str, Any], speed: dict[str, Any] | None) -> dict[str, float | None]:
    """One model's row: overall accuracy, the headline (mean of types), key-frame recall where the dataset has key
    frames, and the end-to-end speed-up against the paper's reference (None where not measured)."""
    ratio = (speed or {}).get("speedup", {}).get(speedup_key(ev["variant"], SPEED_REFERENCE))
    if ev["variant"] == SPEED_REFERENCE and speed:
        ratio = 1.0
    return dict(zip(METRIC_KEYS, (ev["accuracy"]["overall"], headline(ev["accuracy"]),
                                  ev.get("selection", {}).get("keyframe_recall"),
                                  None if ratio is None else round(ratio, 3)), strict=True))


def run(params: dict[str, Any]) -> None:
    paths = Paths.from_params(params)
    evals = {p.stem: read_json(p) for p in sorted(paths.eval_dir.glob("*.json"))}
    speed = read_json(paths.speed_json) if paths.speed_json.exists() else None
    with atomic_dir(paths.metrics_dir) as out:
        for name, ev in evals.items():
            write_json(out / f"{name}.json", model_metrics(ev, speed))
    log.info("summary: %d models%s -> %s", len(evals), " with their speed-ups" if speed else "", paths.metrics_dir)
