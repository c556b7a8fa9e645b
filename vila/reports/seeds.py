"""The seed study's report: every model's accuracy at every seed, each claim at every seed and over seeds."""

from __future__ import annotations

from typing import Any

import pandas as pd

from vila.reports.common import NA, fmt, interval_text


def seeds_models_table(summary: dict[str, Any], names: list[str]) -> pd.DataFrame:
    """The seed study, per model: mean +- sd across seeds of the accuracy (mean of types, and overall), and every
    seed's value."""
    rows = {}
    for name in names:
        row = summary["models"].get(name, {})
        out: dict[str, str] = {}
        for metric, label in (("mean", "Avg"), ("overall", "overall")):
            m = row.get(metric)
            if m is None:
                out[f"{label} mean +- sd"] = NA
                continue
            out[f"{label} mean +- sd"] = f"{fmt(m['mean'])} +- {fmt(m['sd'])}"
            if metric == "mean":
                out.update({f"seed {s}": fmt(v) for s, v in m["seeds"].items()})
        rows[name] = out
    return pd.DataFrame.from_dict(rows, orient="index")


def seeds_claims_table(summary: dict[str, Any]) -> pd.DataFrame:
    """Each claim: the paired difference and interval at every seed, their mean +- sd, and the verdicts across seeds
    from the per-seed differences (their mean with a Student-t interval; the paper's four Holm-adjusted)."""
    rows = []
    for c in summary["claims"]:
        row = {"claim": c["claim"], "comparison": f"{c['a']} - {c['b']} ({c['metric']})"}
        for s, diff in c["seeds"].items():
            row[f"seed {s}"] = f"{interval_text(diff, c['seed_ci95'][s])}: {c['seed_verdicts'][s]}"
        row["mean +- sd"] = f"{100 * c['diff_mean']:+.1f} +- {fmt(c['diff_sd'])}"
        row["mean [95% t-interval over seeds]"] = interval_text(c["seeds_diff_mean"], c["seeds_ci95"])
        row["p (Holm)"] = f"{c['p_value']:.3g}" + (f" ({c['p_holm']:.3g})" if "p_holm" in c else "")
        row["verdict across seeds"] = c["verdict"] + (f", magnitude {c['magnitude']}" if c.get("magnitude") else "")
        rows.append(row)
    return pd.DataFrame(rows)
