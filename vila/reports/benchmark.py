"""The benchmark card (reports/benchmark.html): what the embedded benchmark's questions are like, from
work/<dataset>/dataset/stats.json (written by `download`) and the teachers' eval JSONs: the split sizes and seeds,
the answer balance, the key-frame and key-shot recall of uniform, random and the question-blind selectors at each k
per split and type, their key-frame AUC, and the accuracy of the uniform teachers per type."""

from __future__ import annotations

from typing import Any

import pandas as pd

from vila.models.registry import teacher_name
from vila.reports.common import NA, fmt


def splits_table(stats: dict[str, Any]) -> pd.DataFrame:
    """Per split: its seed, size, type counts, answer balance and uniform-4's key-shot coverage."""
    rows = []
    for split, s in stats.get("splits", {}).items():
        if "questions" not in s:  # the moment-retrieval set
            rows.append({"split": split, "seed": s.get("seed", NA), "questions": f"{s['clips']} clips (moment queries)",
                         "types": f"{s['queries_naming_two_colours']} queries name two colours",
                         "answer positions A/B/C/D": NA, "uniform-4 key-shot coverage": NA})
            continue
        rows.append({
            "split": split, "seed": s.get("seed", NA), "questions": s["questions"],
            "types": ", ".join(f"{t} {n}" for t, n in s["type_counts"].items()),
            "answer positions A/B/C/D": " / ".join(f"{v:.2f}" for v in s["answer_position_fraction"].values()),
            "uniform-4 key-shot coverage": fmt(s.get("uniform4_event_coverage"), 3, 1.0)})
    return pd.DataFrame(rows).set_index("split") if rows else pd.DataFrame({"split": [NA]}).set_index("split")


def blind_recall_table(stats: dict[str, Any], split: str, measure: str) -> pd.DataFrame:
    """One split: per selector and k, the recall (`measure`: "keyframe" = the eval contract's key-frame recall,
    "event" = the share of key shots seen) over all questions and per type, with each statistic's key-frame AUC."""
    recall = stats.get("question_blind_selection", {}).get(split)
    if not recall:
        return pd.DataFrame({"selector": [NA]}).set_index("selector")
    rows = []
    for selector, by_k in recall.items():
        auc = by_k.get("auc")
        for k, values in by_k.items():
            if k == "auc":
                continue
            row = {"selector": selector, "k": k}
            row.update({t: fmt(v, 3, 1.0) for t, v in values[measure].items()})
            row["key-frame AUC"] = fmt(auc["all"], 3, 1.0) if auc else NA
            rows.append(row)
    return pd.DataFrame(rows).set_index(["selector", "k"])


def teachers_table(evals: dict[str, Any], frames: list[int]) -> pd.DataFrame:
    """The uniform teachers' accuracy per type (the benchmark's difficulty at each frame budget)."""
    rows = []
    for n in sorted(frames):
        ev = evals.get(teacher_name(n))
        row: dict[str, Any] = {"model": teacher_name(n)}
        if ev:
            row.update({k: fmt(v) for k, v in ev["accuracy"].items()})
            row["key-shot recall"] = fmt(ev.get("selection", {}).get("key_event_recall"), 3, 1.0)
        rows.append(row)
    return pd.DataFrame(rows).set_index("model").fillna(NA)
