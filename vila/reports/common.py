"""What every report shares: loading the results contracts, number formats, figure embedding, the model order.
A missing variant or figure shows as "n/a", never as a guess."""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Any

import numpy as np

from vila.data.metrics import STAR_TYPES
from vila.data.registry import DATASETS, split_roles
from vila.io import read_json, read_yaml
from vila.models.registry import speedup_key
from vila.paths import Paths

NA = "n/a"


ROOT_LOCK = Path("requirements.lock")  # the pinned environment of the figures (reports render from the project root)


STAR_COLUMNS = {t: t[:3] for t in STAR_TYPES}  # the paper's abbreviations: Int, Seq, Pre, Fea


NEXTQA_COLUMNS = {"Temporal": "Tem", "Causal": "Cau", "Descriptive": "Des"}


COLUMNS = {"star": STAR_COLUMNS, "nextqa": NEXTQA_COLUMNS, "overall": {}}  # a dataset's scoring -> Table 1's


def paper_key(dataset: str) -> str:
    """The dataset's key in paper-figures.yaml."""
    return DATASETS[dataset].paper


def columns(dataset: str) -> dict[str, str]:
    """Table 1's per-type columns of a dataset: accuracy key -> the paper's short name."""
    return COLUMNS[DATASETS[dataset].scoring]


def split_roles_of(params: dict[str, Any], stats: dict[str, Any]) -> dict[str, str]:
    """What train/val/test are on this run's dataset, in words: as `download` recorded them (stats.json), else as
    the registry defines them."""
    return stats.get("roles") or split_roles(params["dataset"], params["data"]["validation"]["fraction"])


def reported_questions(params: dict[str, Any]) -> str:
    """The reported split's questions as the reports name them: "test" (synthqa) or "official val" (STAR...)."""
    d = DATASETS[params["dataset"]]
    split = params["evaluate"]["split"]
    return f"official {d.reported}" if d.carved and split == "test" else split


def splits_html(params: dict[str, Any], stats: dict[str, Any]) -> str:
    """One sentence: which split every figure is on, which chose the weights, which trained them."""
    roles = split_roles_of(params, stats)
    counts = stats.get("questions") if isinstance(stats.get("questions"), dict) else \
        {s: v.get("questions") for s, v in stats.get("splits", {}).items()}  # synthqa's card: per split

    def role(split: str) -> str:
        n = counts.get(split)
        return f"<i>{split}</i> = {roles[split]}" + (f" ({n:,} questions)" if isinstance(n, int) else "")

    return (f"<p><b>Splits</b>: the figures are on {role(params['evaluate']['split'])}; every model's weights were "
            f"chosen on {role('val')} by the convergence rule; models trained on {role('train')}.</p>")


# ---- loading ----
def load_stats(paths: Any) -> dict[str, Any]:
    """The dataset card `download` wrote (work/<dataset>/dataset/stats.json), or {} before it ran."""
    return read_json(paths.stats) if paths.stats.exists() else {}


def load_eval(paths: Paths) -> dict[str, dict[str, Any]]:
    """variant -> its eval JSON (vila/paths.py: the run's eval folder)."""
    out = {}
    for path in sorted(paths.eval_dir.glob("*.json")):
        out[path.stem] = read_json(path)
    return out


def load_speed(paths: Paths) -> dict[str, Any] | None:
    path = paths.speed_json
    return read_json(path) if path.exists() else None


def fmt(x: Any, digits: int = 1, scale: float = 100.0) -> str:
    if x is None or (isinstance(x, float) and not np.isfinite(x)):
        return NA
    return f"{x * scale:.{digits}f}"


def variant_order(params: dict[str, Any]) -> list[str]:
    from vila.models.registry import model_names

    return model_names(params)


def speedup_text(speed: dict[str, Any] | None, name: str, ref: str) -> str:
    if not speed or ref not in speed.get("latency_ms", {}):
        return NA
    if name == ref:
        return "1.00x"
    su = speed.get("speedup", {}).get(speedup_key(name, ref))
    return f"{su:.2f}x" if su else NA


def speed_text(c: dict[str, Any]) -> str:
    """A paper claim's speed-up: measured end to end (the run-to-run range) and counted at full size, each with its
    verdict against the paper's."""
    sp = c.get("speed")
    if not sp:
        return NA
    measured = NA if sp["measured"] is None else f"{sp['measured']:.2f}x" + (
        f" [{sp['measured_range95'][0]:.2f}, {sp['measured_range95'][1]:.2f}]" if sp.get("measured_range95") else "")
    flops = NA if sp["flops_ratio_flant5xl"] is None else f"{sp['flops_ratio_flant5xl']:.2f}x"
    return (f"{measured} ({sp['measured_verdict'] or NA}); FLOPs {flops} ({sp['flops_verdict'] or NA}); "
            f"paper {sp['paper']:.1f}x")


def load_comparisons(paths: Paths) -> dict[str, Any] | None:
    path = paths.comparisons_json
    return read_json(path) if path.exists() else None


def interval_text(diff: float, ci: list[float]) -> str:
    return f"{100 * diff:+.1f} [{100 * ci[0]:+.1f}, {100 * ci[1]:+.1f}]"


# ---- figures ----
def png(fig: Any) -> str:
    """An <img> with the figure as an embedded base64 PNG."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return f'<img alt="figure" src="data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}"/>'


def load_paper_figures(path: str | Path) -> dict[str, Any]:
    return read_yaml(path, "the paper's reference figures")
