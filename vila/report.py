"""The `report` stage: papermill executes one parameterised notebook per report and nbconvert
renders it to self-contained HTML (input cells hidden, images embedded, no external scripts).

The notebooks stay thin: the tables and figures are built by the functions below, which read only
the results contracts (results/<dataset>/eval/*.json, speed.json), the DVCLive logs and the decode
cache. A missing variant or figure shows as "n/a", never as a guess.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import html
import io
import json
import logging
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from vila.io import atomic_file, sha256_file, stable_hash
from vila.paths import Paths

log = logging.getLogger(__name__)
REPORTS = ("table1", "table2", "speed", "training")
NA = "n/a"
ROOT_LOCK = Path("requirements.lock")  # the pinned environment of the figures (reports render from the project root)
STAR_COLUMNS = {"Interaction": "Int", "Sequence": "Seq", "Prediction": "Pre", "Feasibility": "Fea"}
NEXTQA_COLUMNS = {"Temporal": "Tem", "Causal": "Cau", "Descriptive": "Des"}
PAPER_KEY = {"synthqa": "STAR", "star": "STAR", "nextqa": "NExT-QA", "how2qa": "How2QA", "tvqa": "TVQA", "vlep": "VLEP"}


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


# ---- tables ----
def table1(params: dict[str, Any], evals: dict[str, Any], speed: dict[str, Any] | None,
           paper: dict[str, Any]) -> pd.DataFrame:
    dataset = params["dataset"]
    cols = NEXTQA_COLUMNS if dataset == "nextqa" else STAR_COLUMNS if dataset in ("star", "synthqa") else {}
    key = PAPER_KEY[dataset]
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
        row["speed-up (measured)"] = NA
        rows.append(row)
    uniform_ref = f"uniform_{params['data']['frames']}f"
    for name in variant_order(params):
        ev = evals.get(name)
        acc = ev["accuracy"] if ev else {}
        row = {"model": name, "frames": ev["frames"] if ev else NA, "source": f"measured ({dataset})"}
        for full, short in cols.items():
            row[short] = fmt(acc.get(full))
        row["Avg"] = fmt(acc.get("mean", acc.get("overall")))
        row["overall"] = fmt(acc.get("overall"))
        row["keyframe recall"] = fmt(ev.get("selection", {}).get("keyframe_recall"), 3, 1.0) if ev else NA
        row[f"speed-up vs {uniform_ref}"] = speedup_text(speed, name, uniform_ref)
        row["speed-up vs sevila_4f"] = speedup_text(speed, name, "sevila_4f")
        rows.append(row)
    return pd.DataFrame(rows).set_index("model").fillna(NA)


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
    """Each claim: the paired difference and interval at every seed, their mean +- sd, and the verdict across seeds
    from the pooled evidence (the mean difference with its two-level bootstrap interval)."""
    rows = []
    for c in summary["claims"]:
        row = {"claim": c["claim"], "comparison": f"{c['a']} - {c['b']} ({c['metric']})"}
        for s, diff in c["seeds"].items():
            row[f"seed {s}"] = f"{interval_text(diff, c['seed_ci95'][s])}: {c['seed_verdicts'][s]}"
        row["mean +- sd"] = f"{100 * c['diff_mean']:+.1f} +- {fmt(c['diff_sd'])}"
        row["pooled [95% CI, seeds then questions]"] = interval_text(c["pooled_diff"], c["pooled_ci95"])
        row["verdict across seeds"] = c["verdict"]
        rows.append(row)
    return pd.DataFrame(rows)


def load_comparisons(results: Path) -> dict[str, Any] | None:
    path = results / "comparisons.json"
    return json.loads(path.read_text()) if path.exists() else None


def interval_text(diff: float, ci: list[float]) -> str:
    return f"{100 * diff:+.1f} [{100 * ci[0]:+.1f}, {100 * ci[1]:+.1f}]"


def speed_verdict(measured: float | None, paper: float) -> str:
    if measured is None:
        return NA
    if measured >= paper:
        return "holds"
    return f"faster, below the paper's {paper:.1f}x" if measured > 1 else "does not hold (not faster)"


def claims_table(comparisons: dict[str, Any] | None, speed: dict[str, Any] | None, paper: dict[str, Any]) -> pd.DataFrame:
    """Per claim (vila/compare.py's CLAIMS: the paper's against SeViLA, the equal-budget ones, the SeViLA ablation):
    the paper's figures where it states them, the measured difference with its 95% paired bootstrap interval and
    verdict, and for the paper's claims the measured speed-up with its verdict and the FLOPs ratio at Flan-T5-XL
    size (machine-independent)."""
    from vila.compare import CLAIMS

    measured = {c["claim"]: c for c in (comparisons or {}).get("claims", [])}
    xl = (speed or {}).get("flops", {}).get("flant5xl", {})
    rows = []
    for c in CLAIMS:
        sev = vil = None
        if "paper" in c:
            bench, col = c["paper"]
            sev, vil = paper.get("sevila", {}).get(bench, {}).get(col), paper.get("vila", {}).get(bench, {}).get(col)
        m = measured.get(c["claim"])
        su = m["speedup"] if m else None
        ratio = xl[c["b"]] / xl[c["a"]] if c.get("paper_speedup") and c["b"] in xl and c["a"] in xl else None
        rows.append({
            "claim": c["claim"],
            "group": c["group"],
            "paper: SeViLA -> ViLA": NA if sev is None or vil is None else f"{sev:.1f} -> {vil:.1f} ({vil - sev:+.1f})",
            "measured": f"{c['a']} - {c['b']} ({c['metric']})",
            "difference, points [95% CI]": interval_text(m["diff"], m["ci95"]) if m else NA,
            "accuracy verdict": m["verdict"] if m else NA,
            "test questions for +-2 points": str(m["n_for_half_width_2pt"]) if m and "n_for_half_width_2pt" in m else NA,
            "speed-up vs b (CPU)": f"{su:.2f}x" if su else NA,
            "speed verdict": speed_verdict(su, c["paper_speedup"]) if c.get("paper_speedup") else NA,
            "FLOPs ratio (flant5xl)": f"{ratio:.2f}x" if ratio else NA,
        })
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
            "accuracy (mean of types)": fmt(ev["accuracy"].get("mean", ev["accuracy"]["overall"])) if ev else NA,
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


# ---- the selection study (vila/selector_study.py) ----
def load_selection(results: Path) -> dict[str, dict[str, Any]]:
    """select_<selector>_<k>f -> its eval-contract JSON (results/<dataset>/selection/*.json)."""
    return {(d := json.loads(p.read_text()))["variant"]: d for p in sorted((results / "selection").glob("*.json"))}


def load_score_meta(results: Path) -> dict[str, dict[str, Any]]:
    return {p.stem: json.loads(p.read_text()) for p in sorted((results / "scores").glob("*.json"))}


def selection_cost(selector: str, source: str | None, speed: dict[str, Any] | None,
                   total: int) -> tuple[float | None, float | None]:
    """(ms per batch of speed's breakdown batch, full-size FLOPs per question) of the selection step alone, from
    speed.json's per-step figures: the ITM score is the ViT and the Q-Former on every sampled frame (the uniform
    T-frame model's vit + qformer steps; the head's one linear map is left out); a trained selector's is its
    model's vit + select steps (the fast design's vit step encodes only the chosen frames: its select step alone).
    A blind selector runs no model: 0 FLOPs, latency n/a."""
    if source is None:
        return None, 0.0
    if not speed:
        return None, None
    name, steps = (f"uniform_{total}f", ("vit", "qformer")) if source == "backbone" else (source, ("vit", "select"))
    if source.endswith("_fast"):
        steps = ("select",)
    ms = speed.get("breakdown_ms", {}).get(name)
    flops = speed.get("flops_breakdown", {}).get("flant5xl", {}).get(name)
    return (sum(ms[s] for s in steps) if ms else None), (float(sum(flops[s] for s in steps)) if flops else None)


def selection_table(params: dict[str, Any], results: Path, speed: dict[str, Any] | None) -> pd.DataFrame:
    """One row per (selector, k): the shared answerer's accuracy, key-frame recall, the score's AUC on val,
    the chosen hyper-parameters and the selection step's cost."""
    from vila.selection import score_source

    selected, metas = load_selection(results), load_score_meta(results)
    total = params["data"]["frames"]
    rows = []
    for k in params["selection"]["frames"]:
        for selector in params["selection"]["selectors"]:
            ev = selected.get(f"select_{selector}_{k}f")
            source = score_source(selector, k, params)
            auc = metas.get(source, {}).get("key_frame_auc", {}).get("val") if source else None
            ms, flops = selection_cost(selector, source, speed, total)
            acc = ev["accuracy"] if ev else {}
            rows.append({
                "k": k, "selector": selector,
                "accuracy (mean of types)": fmt(acc.get("mean", acc.get("overall"))) if ev else NA,
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


def selection_pairs_table(params: dict[str, Any], results: Path, items: list[dict[str, Any]], k: int) -> pd.DataFrame:
    """Every pair of selectors at budget k, read by the same answerer on the same test questions: the paired
    difference of the mean-of-types accuracy (row minus column) with its 95% bootstrap interval (compare.resamples,
    compare.seed); * marks a difference whose interval excludes zero (resolved)."""
    from vila.compare import answered_by_all, correctness
    from vila.stats import Resamples

    selected = load_selection(results)
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


def selection_figure_recall(params: dict[str, Any], results: Path) -> Any:
    """Accuracy against key-frame recall, one panel per k; oracle and uniform drawn as the bounds."""
    import matplotlib.pyplot as plt

    selected = load_selection(results)
    budgets = params["selection"]["frames"]
    fig, axes = plt.subplots(1, len(budgets), figsize=(5.2 * len(budgets), 3.8), squeeze=False)
    for ax, k in zip(axes[0], budgets, strict=True):
        for selector in params["selection"]["selectors"]:
            ev = selected.get(f"select_{selector}_{k}f")
            if not ev or "selection" not in ev:
                continue
            x, y = ev["selection"]["keyframe_recall"], 100 * ev["accuracy"].get("mean", ev["accuracy"]["overall"])
            if selector in ("oracle", "uniform"):
                ax.axhline(y, color="grey", ls="--" if selector == "oracle" else ":", lw=1)
            ax.scatter([x], [y], s=50, zorder=3)
            ax.annotate(selector, (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
        ax.set_title(f"k = {k}: reader_{k}f reads each selector's frames", fontsize=9)
        ax.set_xlabel("key-frame recall")
        ax.set_ylabel("accuracy, mean of types (%)")
        ax.grid(alpha=0.3)
    return fig


# ---- figures ----
def png(fig: Any) -> str:
    """An <img> with the figure as an embedded base64 PNG."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return f'<img alt="figure" src="data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}"/>'


def accuracy_vs_frames_figure(params: dict[str, Any], evals: dict[str, Any]) -> Any:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.5))
    xs, ys = [], []
    for n in params["train"]["teacher"]["frames"]:
        ev = evals.get(f"uniform_{n}f")
        if ev:
            xs.append(n)
            ys.append(100 * ev["accuracy"].get("mean", ev["accuracy"]["overall"]))
    ax.plot(xs, ys, "o-", label="uniform sampling")
    for name in [*params["variants"], *(f"sevila_{k}f" for k in params["sevila"]["frames"])]:
        ev = evals.get(name)
        if ev:
            ax.scatter([ev["frames"]], [100 * ev["accuracy"].get("mean", ev["accuracy"]["overall"])], marker="*", s=120,
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
    items = {it["qid"]: it for it in json.loads(paths.annotations(params["evaluate"]["split"]).read_text())}
    index = json.loads((paths.frames_dir / f"{params['evaluate']['split']}.index.json").read_text())
    frames = np.load(paths.frames_dir / f"{params['evaluate']['split']}.npy", mmap_mode="r")
    uniform = (evals.get("uniform_4f") or {}).get("selection", {}).get("chosen", {})
    from vila.data.dataset import clip_id
    from vila.evaluation import interleave_types

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


def trained_models(params: dict[str, Any]) -> list[str]:
    """Every model the DAG trains with validation, in table order (sevila_<k>f are assembled from trained parts)."""
    from vila.config import model_kinds

    trained = [n for n, kind in model_kinds(params).items() if kind in ("teacher", "student")]
    return [*trained, "sevila_answerer_uniform_4f", "sevila_localizer",
            *(f"sevila_answerer_{k}f" for k in params["sevila"]["frames"])]


def load_training_metrics(params: dict[str, Any], paths: Paths, selection: bool = False) -> dict[str, dict[str, Any]]:
    """name -> metrics.json of every trained model of Table 1 that exists (selection: the selection study's readers)."""
    dirs = {f"reader_{k}f": paths.reader(k) for k in params["selection"]["frames"]} if selection else \
        {name: paths.model(name) for name in trained_models(params)}
    return {name: json.loads((d / "metrics.json").read_text()) for name, d in dirs.items() if (d / "metrics.json").exists()}


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
        ok = m.get("converged")
        ax.set_title(f"{name}: " + ("converged" if ok else f"NOT CONVERGED ({m.get('stopped_by', NA)})"),
                     fontsize=8, color="black" if ok else "red")
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
    names = [f"reader_{k}f" for k in params["selection"]["frames"]] if selection else trained_models(params)
    for name in names:
        m = metrics.get(name)
        if m is None:
            rows.append({"model": name, **dict.fromkeys(("converged", "stopped by", "best epoch", "epochs run",
                                                         "best val acc %", "steps", "seconds"), NA)})
            continue
        rows.append({"model": name, "converged": "yes" if m.get("converged") else "NO",
                     "stopped by": m.get("stopped_by", NA), "best epoch": m["best_epoch"], "epochs run": m["epochs_run"],
                     "best val acc %": fmt(m["best_val_accuracy"]), "steps": m["steps"], "seconds": m["seconds"]})
    return pd.DataFrame(rows).set_index("model")


# ---- provenance ----
STAGE_PARAMS = {
    "table1": ["dataset", "seed", "train", "variants", "sevila", "evaluate", "speed"],
    "table2": ["dataset", "seed", "train.teacher", "variants", "evaluate"],
    "speed": ["speed", "variants", "sevila.frames", "train.teacher.frames", "data.frames"],
    "training": ["train", "variants", "sevila", "backbone", "selection.frames"],
}


def provenance_html(params: dict[str, Any], name: str, paths: Paths) -> str:
    from vila.config import lookup

    def git(*args: str) -> str:
        out = subprocess.run(["git", *args], capture_output=True, text=True, check=False)
        return out.stdout.strip() if out.returncode == 0 else NA

    commit = git("rev-parse", "--short", "HEAD")
    dirty = git("status", "--porcelain", "--untracked-files=no")
    versions = {p: _version(p) for p in ("torch", "transformers", "peft", "snakemake", "dvc", "papermill", "decord2", "av")}
    lock = ROOT_LOCK.read_text() if ROOT_LOCK.exists() else ""
    versions["requirements.lock"] = hashlib.sha256(lock.encode()).hexdigest()[:12] if lock else NA
    used = {k: lookup(params, k) for k in STAGE_PARAMS.get(name, [])}
    data_hash = sha256_file(paths.stats)[:12] if paths.stats.exists() else NA
    try:
        import torch

        device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"CPU ({platform.processor() or platform.machine()})"
        kernels = f"ATen {torch.backends.cpu.get_cpu_capability()}; cpu_isa: {params.get('cpu_isa', NA)}"
    except ImportError:
        device = kernels = NA
    rows = [
        ("git commit", f"{commit}{' (dirty)' if dirty and dirty != NA else ''}"),
        ("params hash", stable_hash(params)),
        ("params this report depends on", f"<code>{html.escape(json.dumps(used, sort_keys=True))}</code>"),
        ("data hash (dataset stats.json sha256)", data_hash),
        ("frame checksums (sha256)", frame_checksums_html(paths)),
        ("decoders", decoders_html(paths)),
        ("packages", ", ".join(f"{k} {v}" for k, v in versions.items())),
        ("python", platform.python_version()),
        ("device", device),
        ("CPU kernels", kernels),
        ("rendered", dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")),
    ]
    body = "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in rows)
    return f'<footer class="provenance"><h3>Provenance</h3><table>{body}</table></footer>'


def frame_checksums_html(paths: Paths) -> str:
    """Per split: the rendered frames' checksum (the same on every machine) and the decoded frames' one."""
    stats = json.loads(paths.stats.read_text()) if paths.stats.exists() else {}
    rows = [f"{split}: rendered {c['rendered_frames_sha256'][:16]}, decoded {c['decoded_frames_sha256'][:16]} "
            f"(every clip &ge; {c['min_psnr_db']:.1f} dB PSNR)" for split, c in stats.get("checksums", {}).items()]
    return "<br>".join(rows) or NA


def decoders_html(paths: Paths) -> str:
    """Which decoder served how many clips of each split (preprocess's decoding.json)."""
    path = paths.frames_dir / "decoding.json"
    if not path.exists():
        return NA
    summary = json.loads(path.read_text())
    counts = "; ".join(f"{split}: decord {c['decord']}, PyAV {c['pyav']}" for split, c in summary["clips"].items())
    return html.escape(f"data.decoder: {summary['decoder']}; {counts}")


def _version(pkg: str) -> str:
    try:
        return metadata.version(pkg)
    except metadata.PackageNotFoundError:
        return NA


# ---- rendering ----
STYLE = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:1180px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;font-size:13px;margin:0.6em 0}
th,td{border:1px solid #ccc;padding:3px 7px;text-align:right}
th{background:#f3f3f3}
img{max-width:100%}
footer.provenance{margin-top:3em;font-size:12px;color:#555}
footer.provenance td,footer.provenance th{text-align:left}
.jp-OutputPrompt,.jp-InputPrompt,.prompt{display:none}
"""


def render_html(notebook: Any, title: str, footer: str) -> str:
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(template_name="basic", exclude_input=True, exclude_input_prompt=True,
                            exclude_output_prompt=True, anchor_link_text="")
    body, _ = exporter.from_notebook_node(notebook)
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{STYLE}</style></head><body>{body}{footer}</body></html>\n")


def run(params: dict[str, Any], params_file: str = "params.yaml") -> None:
    render(REPORTS, params, params_file)


def render(names: tuple[str, ...], params: dict[str, Any], params_file: str = "params.yaml") -> None:
    """Render notebooks/<name>.ipynb -> reports/<name>.html from `params` (the notebooks reload them from
    `params_file`, the file `vila --params` named, so what a report shows and what its provenance says come from
    one file)."""
    import nbformat
    import papermill as pm

    paths = Paths.from_params(params)
    notebooks = Path("notebooks")
    for name in names:
        src = notebooks / f"{name}.ipynb"
        if not src.exists():
            raise FileNotFoundError(f"{src}: report notebook missing")
        with atomic_file(Path("reports") / f"{name}.executed.ipynb") as executed:
            pm.execute_notebook(
                str(src), str(executed), kernel_name="python3", progress_bar=False, log_output=False,
                parameters={"dataset": params["dataset"], "results_dir": str(paths.results),
                            "paper_figures": "paper-figures.yaml", "params_file": str(params_file)},
            )
            nb = nbformat.read(executed, as_version=4)
            title = f"{name}: {params['dataset']}"
            with atomic_file(Path("reports") / f"{name}.html") as out:
                out.write_text(render_html(nb, title, provenance_html(params, name, paths)))
        Path("reports", f"{name}.executed.ipynb").unlink(missing_ok=True)
        log.info("report: reports/%s.html", name)


def load_paper_figures(path: str | Path) -> dict[str, Any]:
    return yaml.safe_load(Path(path).read_text())
