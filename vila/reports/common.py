"""What every report shares: loading the results contracts, number formats, figure embedding, the model order.
A missing variant or figure shows as "n/a", never as a guess."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from vila.data.registry import DATASETS

NA = "n/a"


ROOT_LOCK = Path("requirements.lock")  # the pinned environment of the figures (reports render from the project root)


STAR_COLUMNS = {"Interaction": "Int", "Sequence": "Seq", "Prediction": "Pre", "Feasibility": "Fea"}


NEXTQA_COLUMNS = {"Temporal": "Tem", "Causal": "Cau", "Descriptive": "Des"}


COLUMNS = {"star": STAR_COLUMNS, "nextqa": NEXTQA_COLUMNS, "overall": {}}  # a dataset's scoring -> Table 1's


def paper_key(dataset: str) -> str:
    """The dataset's key in paper-figures.yaml."""
    return DATASETS[dataset].paper


def columns(dataset: str) -> dict[str, str]:
    """Table 1's per-type columns of a dataset: accuracy key -> the paper's short name."""
    return COLUMNS[DATASETS[dataset].scoring]


# ---- loading ----
def load_eval(results: Path) -> dict[str, dict[str, Any]]:
    out = {}
    for path in sorted((results / "eval").glob("*.json")):
        out[path.stem] = json.loads(path.read_text())
    return out


def load_speed(results: Path) -> dict[str, Any] | None:
    path = results / "speed.json"
    return json.loads(path.read_text()) if path.exists() else None


def fmt(x: Any, digits: int = 1, scale: float = 100.0) -> str:
    if x is None or (isinstance(x, float) and not np.isfinite(x)):
        return NA
    return f"{x * scale:.{digits}f}"


def variant_order(params: dict[str, Any]) -> list[str]:
    from vila.config import model_names

    return model_names(params)


def speedup_text(speed: dict[str, Any] | None, name: str, ref: str) -> str:
    if not speed or ref not in speed.get("latency_ms", {}):
        return NA
    if name == ref:
        return "1.00x"
    su = speed.get("speedup", {}).get(f"{name}_vs_{ref}")
    return f"{su:.2f}x" if su else NA


def load_comparisons(results: Path) -> dict[str, Any] | None:
    path = results / "comparisons.json"
    return json.loads(path.read_text()) if path.exists() else None


def interval_text(diff: float, ci: list[float]) -> str:
    return f"{100 * diff:+.1f} [{100 * ci[0]:+.1f}, {100 * ci[1]:+.1f}]"


# ---- figures ----
def png(fig: Any) -> str:
    """An <img> with the figure as an embedded base64 PNG."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return f'<img alt="figure" src="data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}"/>'


def load_paper_figures(path: str | Path) -> dict[str, Any]:
    return yaml.safe_load(Path(path).read_text())
