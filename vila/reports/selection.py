"""The selection study's report: every selector read by one reader, its recall, its cost, the paired intervals
between selectors."""

from __future__ import annotations

import html
from typing import Any

import pandas as pd

from vila.data.metrics import headline
from vila.io import read_json
from vila.paths import Paths
from vila.reports.common import NA, fmt, interval_text
from vila.selection.registry import SELECTORS


# ---- the selection study (vila/selection/study.py) ----
def selectors_html(params: dict[str, Any]) -> str:
    """What each selector of the run reads and how it picks, from its registry entry (vila/selection/registry.py)."""
    return "; ".join(f"<i>{name}</i>: {html.escape(SELECTORS[name].what)}" for name in params["selection"]["selectors"])


def load_selection(paths: Paths) -> dict[str, dict[str, Any]]:
    """select_<selector>_<k>f -> its eval-contract JSON (the selection study's results folder, vila/paths.py)."""
    return {(d := read_json(p))["variant"]: d for p in sorted(paths.selection_dir.glob("*.json"))}


def load_score_meta(paths: Paths) -> dict[str, dict[str, Any]]:
    return {p.stem: read_json(p) for p in sorted(paths.scores_meta_dir.glob("*.json"))}


def selection_cost(source: str | None, speed: dict[str, Any] | None, uniform: str,
                   selects_before_vit: bool) -> tuple[float | None, float | None]:
    """(ms per batch of speed's breakdown batch, full-size FLOPs per question) of the selection step alone, from
    speed.json's per-step figures: the ITM score is the ViT and the Q-Former on every sampled frame (the uniform
    T-frame model's vit + qformer steps; the head's one linear map is left out); a trained selector's is its
    model's vit + select steps (the fast design, `selects_before_vit`, encodes only the chosen frames with the ViT:
    its select step alone). A blind selector runs no model: 0 FLOPs, latency n/a. `uniform`: the uniform model
    that reads every sampled frame."""
    if source is None:
        return None, 0.0
    if not speed:
        return None, None
    name, steps = (uniform, ("vit", "qformer")) if source == "backbone" else (source, ("vit", "select"))
    if selects_before_vit:
        steps = ("select",)
    ms = speed.get("breakdown_ms", {}).get(name)
    flops = speed.get("flops_breakdown", {}).get("flant5xl", {}).get(name)
    return (sum(ms[s] for s in steps) if ms else None), (float(sum(flops[s] for s in steps)) if flops else None)


def selection_table(params: dict[str, Any], paths: Paths, speed: dict[str, Any] | None) -> pd.DataFrame:
    """One row per (selector, k): the shared answerer's accuracy, key-frame recall, the score's AUC on val,
    the chosen hyper-parameters and the selection step's cost."""
    from vila.config import student_settings
    from vila.models.registry import references
    from vila.selection.registry import score_source

    selected, metas = load_selection(paths), load_score_meta(paths)
    rows = []
    for k in params["selection"]["frames"]:
        for selector in params["selection"]["selectors"]:
            ev = selected.get(f"select_{selector}_{k}f")
            source = score_source(selector, k, params)
            auc = metas.get(source, {}).get("key_frame_auc", {}).get("val") if source else None
            fast = source in params["variants"] and student_settings(params, source)["selector_input"] == "patch_embed"
            ms, flops = selection_cost(source, speed, references(params)[0], fast)
            acc = ev["accuracy"] if ev else {}
            rows.append({
                "k": k, "selector": selector,
                "accuracy (mean of types)": fmt(headline(acc)) if ev else NA,
                "accuracy (overall)": fmt(acc.get("overall")) if ev else NA,
                "keyframe recall": fmt(ev.get("selection", {}).get("keyframe_recall"), 3, 1.0) if ev else NA,
                "scores": source or "none",
                "score AUC (val)": fmt(auc, 3, 1.0) if source else "-",
                "hyper-parameters (val)": ", ".join(f"{a}={b}" for a, b in ev["hyperparameters"].items()) or "-"
                if ev else NA,
                f"selection ms (batch {(speed or {}).get('breakdown_batch_size', NA)})": NA if ms is None else f"{ms:.1f}",
                "selection GFLOPs/question (flant5xl)": NA if flops is None else f"{flops / 1e9:.4g}",
                "answerer": ev["answerer"] if ev else NA,
            })
    return pd.DataFrame(rows).set_index(["k", "selector"])


def selection_pairs_table(params: dict[str, Any], paths: Paths, items: list[dict[str, Any]], k: int) -> pd.DataFrame:
    """Every pair of selectors at budget k, read by the same answerer on the same test questions: the paired
    difference of the mean-of-types accuracy (row minus column) with its 95% bootstrap interval (compare.resamples,
    compare.seed); * marks a difference whose interval excludes zero (resolved)."""
    from vila.evaluation.compare import answered_by_all, correctness
    from vila.evaluation.stats import Resamples

    selected = load_selection(paths)
    evals = {sel: selected[f"select_{sel}_{k}f"] for sel in params["selection"]["selectors"]
             if f"select_{sel}_{k}f" in selected}
    if len(evals) < 2:
        return pd.DataFrame({"selector": [NA]}).set_index("selector")
    common = answered_by_all(evals, items)
    metric = "mean" if len({it.get("type") for it in common}) > 1 else "overall"
    boot = Resamples([str(it.get("type", "all")) for it in common], params["compare"]["resamples"],
                     params["compare"]["seed"])
    right = {sel: correctness(ev, common) for sel, ev in evals.items()}
    table: dict[str, dict[str, str]] = {}
    names = list(evals)
    for i, a in enumerate(names):
        table[a] = {}
        for b in names:
            if names.index(b) <= i:
                table[a][b] = ""
                continue
            diff, ci = boot.paired(right[a], right[b], metric)
            table[a][b] = interval_text(diff, list(ci)) + (" *" if ci[0] > 0 or ci[1] < 0 else "")
    return pd.DataFrame.from_dict(table, orient="index")


def selection_figure_recall(params: dict[str, Any], paths: Paths) -> Any:
    """Accuracy against key-frame recall, one panel per k; oracle and uniform drawn as the bounds."""
    import matplotlib.pyplot as plt

    selected = load_selection(paths)
    budgets = params["selection"]["frames"]
    fig, axes = plt.subplots(1, len(budgets), figsize=(5.2 * len(budgets), 3.8), squeeze=False)
    for ax, k in zip(axes[0], budgets, strict=True):
        for selector in params["selection"]["selectors"]:
            ev = selected.get(f"select_{selector}_{k}f")
            if not ev or "keyframe_recall" not in ev.get("selection", {}):
                continue
            x, y = ev["selection"]["keyframe_recall"], 100 * headline(ev["accuracy"])
            if SELECTORS[selector].kind in ("ground_truth", "grid"):  # the ceiling and the baseline: reference lines
                ax.axhline(y, color="grey", ls="--" if SELECTORS[selector].kind == "ground_truth" else ":", lw=1)
            ax.scatter([x], [y], s=50, zorder=3)
            ax.annotate(selector, (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
        ax.set_title(f"k = {k}: reader_{k}f reads each selector's frames", fontsize=9)
        ax.set_xlabel("key-frame recall")
        ax.set_ylabel("accuracy, mean of types (%)")
        ax.grid(alpha=0.3)
    return fig
