"""The training report: every trained model's validation curve and the convergence rule's verdict."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from vila.io import read_json
from vila.models.registry import reader_name
from vila.paths import Paths
from vila.reports.common import NA, fmt


def trained_models(params: dict[str, Any]) -> list[str]:
    """Every model the DAG trains with validation, in table order (sevila_<k>f are assembled from trained parts)."""
    from vila.models.registry import LOCALIZERS, SEVILA_K, SEVILA_PRETRAINED, model_kinds, sevila_answerer

    trained = [n for n, kind in model_kinds(params).items() if kind in ("teacher", "student")]
    return [*trained, SEVILA_PRETRAINED, *LOCALIZERS, *(sevila_answerer(k) for k in params["sevila"]["frames"]),
            sevila_answerer(SEVILA_K, uniform=True)]


def load_training_metrics(params: dict[str, Any], paths: Paths, selection: bool = False) -> dict[str, dict[str, Any]]:
    """name -> metrics.json of every trained model of Table 1 that exists (selection: the selection study's readers)."""
    dirs = {reader_name(k): paths.reader(k) for k in params["selection"]["frames"]} if selection else \
        {name: paths.model(name) for name in trained_models(params)}
    return {name: read_json(d / "metrics.json") for name, d in dirs.items() if (d / "metrics.json").exists()}


def training_curves_figure(params: dict[str, Any], paths: Paths, selection: bool = False) -> Any:
    """One panel per trained model: validation accuracy per epoch, its smoothed curve (the convergence rule's), the
    best epoch kept, and the verdict of the rule in the title (NOT CONVERGED in red)."""
    import matplotlib.pyplot as plt

    metrics = load_training_metrics(params, paths, selection)
    if not metrics:
        return None
    cols = 4
    rows = -(-len(metrics) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.3 * rows), squeeze=False, sharey=True)
    for ax in axes.flat[len(metrics):]:
        ax.axis("off")
    for ax, (name, m) in zip(axes.flat, metrics.items(), strict=False):
        curve = m.get("val_curve") or [h["val_accuracy"] for h in m.get("history", [])]
        epochs = np.arange(1, len(curve) + 1)
        ax.plot(epochs, 100 * np.array(curve, dtype=float), "o-", ms=3, lw=1, label="val accuracy")
        if m.get("smoothed_val_curve"):
            ax.plot(epochs, 100 * np.array(m["smoothed_val_curve"], dtype=float), "-", lw=2, alpha=0.6, label="smoothed")
        if m.get("best_epoch", -1) > 0 and curve:
            ax.axvline(m["best_epoch"], color="grey", ls=":", lw=1)
        ok, left = m.get("converged"), m.get("learned") is not False
        if m.get("chance") is not None:
            ax.axhline(100 * m["chance"], color="red", ls="--", lw=0.8, alpha=0.5)
        ax.set_title(f"{name}: " + ("converged" if ok else f"NOT CONVERGED ({m.get('stopped_by', NA)})")
                     + ("" if left else ", AT CHANCE"), fontsize=8, color="black" if ok and left else "red")
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=7)
    axes[0, 0].legend(fontsize=7)
    fig.supxlabel("epoch", fontsize=9)
    fig.supylabel("validation accuracy (%)", fontsize=9)
    fig.tight_layout()
    return fig


def convergence_table(params: dict[str, Any], paths: Paths, selection: bool = False) -> pd.DataFrame:
    """Per trained model: the convergence rule's verdict, what stopped it, best and last epoch, best val accuracy."""
    rows = []
    metrics = load_training_metrics(params, paths, selection)
    names = [reader_name(k) for k in params["selection"]["frames"]] if selection else trained_models(params)
    for name in names:
        m = metrics.get(name)
        if m is None:
            rows.append({"model": name, **dict.fromkeys(("converged", "left chance", "stopped by", "best epoch",
                                                         "epochs run", "best val %", "chance %", "steps", "seconds"), NA)})
            continue
        rows.append({"model": name, "converged": "yes" if m.get("converged") else "NO",
                     "left chance": {True: "yes", False: "NO"}.get(m.get("learned"), NA),
                     "stopped by": m.get("stopped_by", NA), "best epoch": m["best_epoch"], "epochs run": m["epochs_run"],
                     "best val %": fmt(m["best_val_accuracy"]), "chance %": fmt(m.get("chance")), "steps": m["steps"],
                     "seconds": m["seconds"]})
    return pd.DataFrame(rows).set_index("model")
