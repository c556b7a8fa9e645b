"""Table 1 (with the claims and every comparison), Table 2 (accuracy against frames) and the speed tables, and
their figures."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from vila.data.convert import read_unified
from vila.data.metrics import headline
from vila.io import read_json
from vila.models.registry import references, sevila_name, teacher_name
from vila.paths import Paths
from vila.reports.common import (
    NA,
    columns,
    fmt,
    interval_text,
    paper_key,
    speed_text,
    speedup_text,
    variant_order,
)


# ---- tables ----
def table1(params: dict[str, Any], evals: dict[str, Any], speed: dict[str, Any] | None,
           paper: dict[str, Any]) -> pd.DataFrame:
    dataset = params["dataset"]
    cols = columns(dataset)
    key = paper_key(dataset)
    rows = []
    for who, label in (("sevila", "SeViLA (paper)"), ("vila", "ViLA (paper)")):
        ref = paper.get(who, {}).get(key, {})
        sources = ref.get("source", {}) if isinstance(ref.get("source"), dict) else {}
        row = {"model": label, "frames": ref.get("frames", NA), "source": "paper"}
        for short in cols.values():
            v = ref.get(short)
            row[short] = NA if v is None else f"{v:.1f}" + (" (derived)" if sources.get(short) == "derived" else "")
        avg = ref.get("Avg", ref.get("Acc"))
        row["Avg"] = NA if avg is None else f"{avg:.1f}"
        row["overall"] = NA
        row["keyframe recall"] = NA
        row["key-shot recall"] = NA
        row["speed-up (measured)"] = NA
        rows.append(row)
    uniform_ref, sevila_ref = references(params)
    for name in variant_order(params):
        ev = evals.get(name)
        acc = ev["accuracy"] if ev else {}
        row = {"model": name, "frames": ev["frames"] if ev else NA, "source": f"measured ({dataset})"}
        for full, short in cols.items():
            row[short] = fmt(acc.get(full))
        row["Avg"] = fmt(headline(acc)) if ev else NA
        row["overall"] = fmt(acc.get("overall"))
        row["keyframe recall"] = fmt(ev.get("selection", {}).get("keyframe_recall"), 3, 1.0) if ev else NA
        row["key-shot recall"] = fmt(ev.get("selection", {}).get("key_event_recall"), 3, 1.0) if ev else NA
        row[f"speed-up vs {uniform_ref}"] = speedup_text(speed, name, uniform_ref)
        row[f"speed-up vs {sevila_ref}"] = speedup_text(speed, name, sevila_ref)
        rows.append(row)
    return pd.DataFrame(rows).set_index("model").fillna(NA)


def claims_table(comparisons: dict[str, Any] | None, speed: dict[str, Any] | None, paper: dict[str, Any]) -> pd.DataFrame:
    """Per claim of comparisons.json (vila/evaluation/compare.py: the paper's, equal budget, the extension, the
    ablations): the paper's figures where it states them, the measured difference with its 95% paired bootstrap
    interval, its verdict (direction, Holm-adjusted for the paper's four; non-inferiority for the student against
    its teacher), its magnitude against the paper's gain, and for the paper's claims the speed-up (measured end to
    end with its run-to-run range, and counted at Flan-T5-XL size) with its verdict against the paper's."""
    rows = []
    for m in (comparisons or {}).get("claims", []):
        rows.append({
            "claim": m["claim"],
            "group": m["group"],
            "measured": f"{m['a']} - {m['b']} ({m['metric']})" + (f"<br><i>{m['stand_in']}</i>" if m.get("stand_in") else ""),
            "paper's gain": NA if m.get("paper") is None else f"{m['paper']:+.1f}",
            "difference, points [95% CI]": interval_text(m["diff"], m["ci95"]),
            "p (Holm)": f"{m['p_value']:.3g}" + (f" ({m['p_holm']:.3g})" if "p_holm" in m else ""),
            "verdict": m["verdict"] + (f" (non-inferiority, margin {100 * m['margin']:.0f})" if m.get("margin") else ""),
            "magnitude": m.get("magnitude") or NA,
            "speed-up vs b: measured [range]; FLOPs": speed_text(m),
            "test questions for +-2 points": str(m.get("n_for_half_width_2pt", NA)),
        })
    if not rows:
        return pd.DataFrame({"claim": [NA]}).set_index("claim")
    return pd.DataFrame(rows).set_index("claim")


def comparisons_table(comparisons: dict[str, Any] | None, metric: str = "mean") -> pd.DataFrame:
    """Every model against each reference on one metric: difference in points, 95% interval, McNemar p."""
    rows: dict[str, dict[str, str]] = {}
    for c in (comparisons or {}).get("comparisons", []):
        if c["metric"] != metric:
            continue
        row = rows.setdefault(c["a"], {"model": c["a"]})
        row[f"vs {c['b']}, points [95% CI]"] = interval_text(c["diff"], c["ci95"])
        if "mcnemar_p" in c:
            row[f"vs {c['b']}, McNemar p"] = f"{c['mcnemar_p']:.3g}"
    if not rows:
        return pd.DataFrame({"model": [NA]}).set_index("model")
    return pd.DataFrame(list(rows.values())).set_index("model").fillna(NA)


def table2(params: dict[str, Any], evals: dict[str, Any]) -> pd.DataFrame:
    rows = []
    for name in variant_order(params):
        ev = evals.get(name)
        rows.append({
            "model": name,
            "frames read": ev["frames"] if ev else NA,
            "frames sampled": ev.get("sampled_frames", NA) if ev else NA,
            "accuracy (mean of types)": fmt(headline(ev["accuracy"])) if ev else NA,
            "accuracy (overall)": fmt(ev["accuracy"]["overall"]) if ev else NA,
            "keyframe recall": fmt(ev.get("selection", {}).get("keyframe_recall"), 3, 1.0) if ev else NA,
        })
    return pd.DataFrame(rows).set_index("model")


def speed_table(speed: dict[str, Any] | None, names: list[str]) -> pd.DataFrame:
    rows = []
    for name in names:
        row: dict[str, Any] = {"model": name}
        lat = (speed or {}).get("latency_ms", {}).get(name, {})
        for bs in (speed or {}).get("batch_sizes", []):
            v = lat.get(str(bs))
            row[f"batch {bs} median ms"] = f"{v['median']:.1f}" if v else NA
            row[f"batch {bs} p90 ms"] = f"{v['p90']:.1f}" if v else NA
        for preset in ("tiny", "flant5xl"):
            f = (speed or {}).get("flops", {}).get(preset, {}).get(name)
            row[f"{preset} GFLOPs/question"] = f"{f / 1e9:.3g}" if f else NA
        mem = (speed or {}).get("peak_memory_mb", {}).get(name)
        row["peak memory MB"] = f"{mem:.0f}" if mem is not None else NA
        rows.append(row)
    return pd.DataFrame(rows).set_index("model")


def flop_shares(speed: dict[str, Any] | None, name: str) -> pd.DataFrame:
    rows = []
    for preset in ("tiny", "flant5xl"):
        parts = (speed or {}).get("flops_breakdown", {}).get(preset, {}).get(name)
        if not parts:
            rows.append({"preset": preset, **{k: NA for k in ("vit", "select", "qformer", "llm")}})
            continue
        rows.append({"preset": preset, **{k: f"{100 * parts[k] / parts['total']:.1f}%" for k in ("vit", "select", "qformer", "llm")}})
    return pd.DataFrame(rows).set_index("preset")


def accuracy_vs_frames_figure(params: dict[str, Any], evals: dict[str, Any]) -> Any:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.5))
    xs, ys = [], []
    for n in params["train"]["teacher"]["frames"]:
        ev = evals.get(teacher_name(n))
        if ev:
            xs.append(n)
            ys.append(100 * headline(ev["accuracy"]))
    ax.plot(xs, ys, "o-", label="uniform sampling")
    for name in [*params["variants"], *(sevila_name(k) for k in params["sevila"]["frames"])]:
        ev = evals.get(name)
        if ev:
            ax.scatter([ev["frames"]], [100 * headline(ev["accuracy"])], marker="*", s=120,
                       label=name, zorder=3)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("frames read by the answering model")
    ax.set_ylabel("accuracy (%)")
    ax.axhline(100 / 4, color="grey", lw=0.8, ls=":", label="chance (4 options)")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    return fig


def breakdown_figure(speed: dict[str, Any] | None, names: list[str]) -> Any:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.2))
    parts = ("vit", "select", "qformer", "llm")
    bottom = np.zeros(len(names))
    for part in parts:
        vals = np.array([(speed or {}).get("breakdown_ms", {}).get(n, {}).get(part, 0.0) for n in names])
        ax.barh(names, vals, left=bottom, label=part)
        bottom += vals
    ax.set_xlabel(f"median ms per batch of {(speed or {}).get('breakdown_batch_size', NA)}")
    ax.legend(fontsize=8)
    ax.invert_yaxis()
    return fig


def selection_figure(params: dict[str, Any], evals: dict[str, Any], paths: Paths, variant: str = "vila_4f") -> Any:
    """For a few test questions: the 32-frame strip with key frames, uniform-4 frames and chosen frames marked."""
    import matplotlib.pyplot as plt

    ev = evals.get(variant)
    chosen = (ev or {}).get("selection", {}).get("chosen", {})
    if not chosen:
        return None
    items = {it["qid"]: it for it in read_unified(paths.annotations(params["evaluate"]["split"]))}
    index = read_json(paths.frames_dir / f"{params['evaluate']['split']}.index.json")
    frames = np.load(paths.frames_dir / f"{params['evaluate']['split']}.npy", mmap_mode="r")
    uniform = (evals.get(teacher_name(ev["frames"])) or {}).get("selection", {}).get("chosen", {})
    from vila.data.dataset import clip_id
    from vila.evaluation.evaluate import interleave_types

    known = [q for q in chosen if q in items]
    qids = interleave_types(known, {q: items[q].get("type", "") for q in known})[: params["report"]["selection_examples"]]
    t = frames.shape[1]
    fig, axes = plt.subplots(len(qids), 1, figsize=(12, 1.15 * len(qids) + 0.4), squeeze=False)
    for ax, qid in zip(axes[:, 0], qids, strict=True):
        it = items[qid]
        strip = np.concatenate(list(frames[index[clip_id(it)]]), axis=1)
        ax.imshow(strip)
        w = frames.shape[3]
        for k in it.get("keyframes", []):
            ax.add_patch(plt.Rectangle((k * w, 0), w - 1, frames.shape[2] - 1, fill=False, ec="lime", lw=2))
        for k in uniform.get(qid, []):
            ax.plot(k * w + w / 2, frames.shape[2] + 3, marker="^", color="orange", ms=5, clip_on=False)
        for k in chosen[qid]:
            ax.plot(k * w + w / 2, -4, marker="v", color="red", ms=6, clip_on=False)
        ok = "keyframes " + ",".join(map(str, it.get("keyframes", [])))
        ax.set_title(f"{qid}: {it['question']}  [{ok}]", fontsize=8, loc="left")
        ax.set_xticks([(i + 0.5) * w for i in range(0, t, 4)], [str(i) for i in range(0, t, 4)], fontsize=6)
        ax.set_yticks([])
    fig.suptitle(f"green box: key frame; red \u25bc: frames {variant} chose; orange \u25b2: uniform-4 frames", fontsize=9)
    return fig
