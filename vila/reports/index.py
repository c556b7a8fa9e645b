"""reports/index.html: the page a reader opens first. A reproducibility summary in the form of the ML
Reproducibility Challenge's reports: scope (which claims), method, results (each claim: the paper's figure, the
measured one with its interval and verdict), what was easy and what was hard, deviations from the paper, and the
cost in time; with a link to every report."""

from __future__ import annotations

import html
from typing import Any

import pandas as pd

from vila.paths import Paths
from vila.reports.common import NA, interval_text
from vila.reports.training import load_training_metrics, trained_models

# Every report, with what it shows: (file, title, the command that renders it).
REPORT_PAGES = (
    ("table1.html", "Table 1: every model's accuracy by question type, the claims, every paired comparison",
     "make reproduce"),
    ("table2.html", "Table 2: accuracy against the number of frames read", "make reproduce"),
    ("speed.html", "Speed: latency, per-step breakdown, FLOPs at Flan-T5-XL size, memory", "make reproduce"),
    ("training.html", "Training: every model's validation curve and whether it converged", "make reproduce"),
    ("benchmark.html", "The benchmark card: the splits, what question-blind selectors find, the teachers per type",
     "make reproduce"),
    ("seeds.html", "The seed study: the claims' models at every seed (training and backbone), each claim over seeds",
     "make reproduce-seeds"),
    ("selection.html", "The selection study: every selector read by one reader", "make reproduce-selection"),
)


def links_html() -> str:
    """A link to every report, with the command that renders it (the seed and selection studies' are their own
    targets: this page does not depend on them, so whether they exist yet is not part of it)."""
    items = "".join(f'<li><a href="{page}">{html.escape(title)}</a> (<code>{command}</code>)</li>'
                    for page, title, command in REPORT_PAGES)
    return f"<ul>{items}</ul>"


def results_table(comparisons: dict[str, Any] | None) -> pd.DataFrame:
    """Each claim of comparisons.json (seed 0): the paper's figure where it states one, the measured difference
    with its 95% paired interval, its verdict and magnitude."""
    rows = []
    for m in (comparisons or {}).get("claims", []):
        rows.append({
            "claim": m["claim"], "group": m["group"],
            "paper": NA if m.get("paper") is None else f"{m['paper']:+.1f} points",
            "measured": f"{m['a']} - {m['b']} ({m['metric']})",
            "difference, points [95% CI]": interval_text(m["diff"], m["ci95"]),
            "verdict": m["verdict"] + (f", magnitude {m['magnitude']}" if m.get("magnitude") else ""),
        })
    if not rows:
        return pd.DataFrame({"claim": [NA]}).set_index("claim")
    return pd.DataFrame(rows).set_index("claim")


def cost_table(params: dict[str, Any], paths: Paths) -> pd.DataFrame:
    """What the trained models cost: epochs and seconds of each (its metrics.json), converged or not, and the sum."""
    metrics = load_training_metrics(params, paths)
    rows = [{"model": name, "epochs": m["epochs_run"], "seconds": round(m["seconds"], 1),
             "converged": "yes" if m.get("converged") else "NO",
             "left chance": {True: "yes", False: "NO"}.get(m.get("learned"), NA)}
            for name, m in ((n, metrics.get(n)) for n in trained_models(params)) if m]
    if rows:
        rows.append({"model": "all trained models", "epochs": sum(r["epochs"] for r in rows),
                     "seconds": round(sum(r["seconds"] for r in rows), 1),
                     "converged": f"{sum(r['converged'] == 'yes' for r in rows)} of {len(rows)}",
                     "left chance": f"{sum(r['left chance'] == 'yes' for r in rows)} of {len(rows)}"})
    return pd.DataFrame(rows).set_index("model") if rows else pd.DataFrame({"model": [NA]}).set_index("model")
