"""The `summary` stage: the few figures DVC reads as metrics.

The eval JSONs (with their chosen-frame samples) and speed.json (latency per batch size, breakdown, FLOPs,
memory) are what reports and checks read, hundreds of values; as DVC metrics they made `dvc metrics show`
and `dvc exp show` hundreds of columns wide. The metrics are this file instead: per variant accuracy
(overall and mean of the types) and key-frame recall, and the speed-ups, so they fit one screen.
"""

from __future__ import annotations

import logging
from typing import Any

from vila.io import read_json, write_json
from vila.paths import Paths

log = logging.getLogger(__name__)


def summarise(evals: dict[str, dict[str, Any]], speed: dict[str, Any] | None) -> dict[str, Any]:
    """variant -> {accuracy, accuracy_mean, keyframe_recall (where measured)}, and speedup -> ratio."""
    out: dict[str, Any] = {}
    for variant, ev in sorted(evals.items()):
        row = {"accuracy": ev["accuracy"]["overall"], "accuracy_mean": ev["accuracy"].get("mean", ev["accuracy"]["overall"])}
        if "keyframe_recall" in ev.get("selection", {}):
            row["keyframe_recall"] = ev["selection"]["keyframe_recall"]
        out[variant] = row
    if speed:
        out["speedup"] = {k: round(v, 3) for k, v in sorted(speed["speedup"].items())}
    return out


def run(params: dict[str, Any]) -> None:
    paths = Paths.from_params(params)
    evals = {p.stem: read_json(p) for p in sorted(paths.eval_dir.glob("*.json"))}
    speed = read_json(paths.speed_json) if paths.speed_json.exists() else None
    write_json(paths.results / "metrics.json", summarise(evals, speed))
    log.info("summary: %d variants%s -> %s", len(evals), " and the speed-ups" if speed else "",
             paths.results / "metrics.json")
