"""Accuracy overall and per category, the way each benchmark reports it.

STAR (and synthqa, which mirrors it): categories Interaction, Sequence, Prediction, Feasibility from
the qid prefix; the headline `mean` is the mean of the four category accuracies.
NExT-QA: fine types from the qid prefix ({type}_{video}_{qid}); groups Causal (CW, CH), Temporal
(TN, TC, TP), Descriptive (DL, DC, DO); `mean` is the mean of the three groups.
How2QA, TVQA, VLEP: overall accuracy only.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Mapping
from typing import Any

from vila.data.registry import DATASETS

STAR_TYPES = ("Interaction", "Sequence", "Prediction", "Feasibility")
NEXTQA_GROUPS = {"Causal": ("CW", "CH"), "Temporal": ("TN", "TC", "TP"), "Descriptive": ("DL", "DC", "DO")}


def headline_key(columns: Iterable[str]) -> str:
    """Which accuracy is the headline: the mean of the categories where the dataset has them (STAR's, NExT-QA's
    groups), else the overall accuracy. Every table, metric and verdict reads it from here."""
    return "mean" if "mean" in columns else "overall"


def headline(accuracy: Mapping[str, float]) -> float:
    """A model's headline figure (headline_key)."""
    return accuracy[headline_key(accuracy)]


def question_type(dataset: str, item: Mapping[str, Any]) -> str | None:
    if DATASETS[dataset].scoring in ("star", "nextqa"):
        return str(item.get("type") or str(item["qid"]).split("_")[0])
    return None


def score(dataset: str, items: list[Mapping[str, Any]], predictions: Mapping[str, int]) -> dict[str, float]:
    """Accuracies in [0, 1]. Every question needs a prediction and every prediction a question."""
    qids = [str(it["qid"]) for it in items]
    if len(set(qids)) != len(qids):
        dup = sorted({q for q in qids if qids.count(q) > 1})[:5]
        raise ValueError(f"annotations: duplicate qids {dup}")
    unknown = sorted(set(predictions) - set(qids))
    if unknown:
        raise KeyError(f"predictions: {len(unknown)} qids not in the annotations, e.g. {unknown[:5]}")
    missing = [q for q in qids if q not in predictions]
    if missing:
        raise KeyError(f"predictions: no prediction for {len(missing)} questions, e.g. {missing[:5]}")
    if not items:
        raise ValueError("annotations: no questions to score")
    hits: dict[str, list[bool]] = {}
    overall = []
    for it in items:
        pred = predictions[str(it["qid"])]
        if not isinstance(pred, int) or isinstance(pred, bool) or not 0 <= pred < int(it["num_option"]):
            raise ValueError(f"predictions[{it['qid']!r}]: {pred!r} is not an option index in [0, {it['num_option']})")
        ok = pred == int(it["answer"])
        overall.append(ok)
        qtype = question_type(dataset, it)
        if qtype is not None:
            hits.setdefault(qtype, []).append(ok)
    result = {"overall": sum(overall) / len(overall)}
    per_type = {t: sum(v) / len(v) for t, v in hits.items()}
    scoring = DATASETS[dataset].scoring
    if scoring == "star":
        unknown_types = sorted(set(per_type) - set(STAR_TYPES))
        if unknown_types:
            raise ValueError(f"annotations: unknown STAR question types {unknown_types} (from qid prefix or `type`)")
        result.update(per_type)
        present = [per_type[t] for t in STAR_TYPES if t in per_type]
        result["mean"] = sum(present) / len(present)
    elif scoring == "nextqa":
        known = {t for group in NEXTQA_GROUPS.values() for t in group}
        unknown_types = sorted(set(per_type) - known)
        if unknown_types:
            raise ValueError(f"annotations: unknown NExT-QA types {unknown_types} (expected {sorted(known)})")
        result.update(per_type)
        groups = {}
        for group, types in NEXTQA_GROUPS.items():
            flat = [h for t in types for h in hits.get(t, [])]
            if flat:
                groups[group] = sum(flat) / len(flat)
        result.update(groups)
        result["mean"] = sum(groups.values()) / len(groups)
    return result


def score_cli(dataset: str, annotations: str, predictions: str) -> None:
    from vila.data.convert import read_unified
    from vila.io import read_json

    items = read_unified(annotations)
    preds = read_json(predictions, "a JSON object mapping qid -> option index")
    if not isinstance(preds, dict):
        raise ValueError(f"{predictions}: expected a JSON object mapping qid -> option index")
    json.dump(score(dataset, items, preds), sys.stdout, indent=2, sort_keys=True)
    sys.stdout.write("\n")
