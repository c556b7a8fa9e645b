"""The `compare` stage: every comparison the reports make, with its uncertainty, and a verdict per claim.

For each model against each reference (registry.references: the uniform 32-frame teacher, and SeViLA's sevila_4f, the
baseline of the paper's claims), and each selecting model against uniform sampling at its own frame budget
(uniform_<k>f): the accuracy difference overall, as the mean of the question types, and per type, with a 95% paired
bootstrap interval over the test questions and an exact McNemar p-value (vila/evaluation/stats.py).

The claims (CLAIMS), in four groups:
- "paper": the abstract's, the paper's ViLA (its losses: LM + QFormer-Distiller, the text-guided Prompter) against
  SeViLA by its whole recipe, each on the benchmark column it names (synthqa stands in: its four types mirror
  STAR's, Sequence stands in for NExT-QA's Temporal, overall accuracy for VLEP's). Each gets three verdicts:
  direction (`verdict`: the interval excludes 0; the four are one family, Holm-adjusted), magnitude (against the
  paper's gain: consistent when the interval holds it, else larger or smaller) and speed (the measured end-to-end
  ratio with its run-to-run range, and the full-size FLOP ratio, each against the paper's 3.0x or 4.2x);
- "equal budget": choosing k frames beats k uniform ones; and the distilled student reaches its teacher, a
  non-inferiority test with compare.noninferiority_margin set in params.yaml before the run;
- "extension": our relevance distillation, against the paper's ViLA and against SeViLA (never a paper claim);
- "ablation": what one piece of SeViLA's recipe or of ViLA is worth.
Written to results/<dataset>/comparisons.json (workflow/schemas/comparisons.schema.json, added fields allowed).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from vila.data.convert import read_unified
from vila.data.metrics import headline_key
from vila.evaluation.stats import (
    Resamples,
    bootstrap_p,
    holm,
    interval,
    magnitude,
    mcnemar_exact,
    noninferiority,
    verdict,
)
from vila.io import read_json, read_yaml, write_json
from vila.models.registry import references, speedup_key, teacher_name
from vila.paths import PAPER_FIGURES, Paths

log = logging.getLogger(__name__)
PAPER_BENCHMARK = {"STAR": "star", "NExT-QA": "nextqa", "VLEP": "vlep"}  # paper-figures.yaml key -> dataset
HEADLINE = "headline"  # a claim's metric: the dataset's headline (the mean of its types, else overall accuracy)
CLAIMS: tuple[dict[str, Any], ...] = (
    {"claim": "+2.2 on STAR average, with 3.0x speed-up", "group": "paper", "a": "vila_4f", "b": "sevila_4f",
     "metric": {"star": "mean", "synthqa": "mean"}, "paper": ("STAR", "Avg"), "paper_speedup": 3.0},
    {"claim": "+4.6 on STAR Interaction, with 3.0x speed-up", "group": "paper", "a": "vila_4f", "b": "sevila_4f",
     "metric": {"star": "Interaction", "synthqa": "Interaction"}, "paper": ("STAR", "Int"), "paper_speedup": 3.0},
    {"claim": "+3.3 on NExT-QA Temporal, with 3.0x speed-up", "group": "paper", "a": "vila_4f", "b": "sevila_4f",
     "metric": {"nextqa": "Temporal", "synthqa": "Sequence"}, "paper": ("NExT-QA", "Tem"), "paper_speedup": 3.0},
    {"claim": "2-frame ViLA beats 4-frame SeViLA on VLEP, with 4.2x speed-up", "group": "paper", "a": "vila_2f",
     "b": "sevila_4f", "metric": {"vlep": "overall", "synthqa": "overall"}, "paper": ("VLEP", "Acc"),
     "paper_speedup": 4.2},
    {"claim": "ViLA's 4 selected frames beat 4 uniform frames", "group": "equal budget", "a": "vila_4f",
     "b": "uniform_4f", "metric": HEADLINE},
    {"claim": "ViLA's 2 selected frames beat 2 uniform frames", "group": "equal budget", "a": "vila_2f",
     "b": "uniform_2f", "metric": HEADLINE},
    {"claim": "SeViLA's 4 key frames beat 4 uniform frames", "group": "equal budget", "a": "sevila_4f",
     "b": "uniform_4f", "metric": HEADLINE},
    {"claim": "the distilled 4-frame student reaches its 32-frame teacher", "group": "equal budget", "a": "vila_4f",
     "b": "uniform_32f", "metric": HEADLINE, "test": "noninferiority"},
    {"claim": "relevance distillation (ours) improves the paper's ViLA", "group": "extension",
     "a": "vila_4f_relevance", "b": "vila_4f", "metric": HEADLINE},
    {"claim": "ViLA with relevance distillation (ours) beats SeViLA", "group": "extension", "a": "vila_4f_relevance",
     "b": "sevila_4f", "metric": HEADLINE},
    {"claim": "SeViLA's Localizer pre-training (moment retrieval) helps", "group": "ablation", "a": "sevila_4f",
     "b": "sevila_4f_no_loc_pretrain", "metric": HEADLINE},
    {"claim": "SeViLA's zero-shot labeller beats labels from an Answerer fine-tuned on uniform frames",
     "group": "ablation", "a": "sevila_4f", "b": "sevila_4f_finetuned_labeller", "metric": HEADLINE},
    {"claim": "SeViLA's Answerer fine-tuned on the Localizer's frames beats the uniform-trained one reading them",
     "group": "ablation", "a": "sevila_4f", "b": "sevila_4f_uniform_answerer", "metric": HEADLINE},
    {"claim": "the QFormer-Distiller helps ViLA (against the LM loss alone)", "group": "ablation", "a": "vila_4f",
     "b": "vila_4f_no_distill", "metric": HEADLINE},
    {"claim": "the text-guided Frame-Prompter beats the released visual-only gate", "group": "ablation",
     "a": "vila_4f", "b": "vila_4f_visual_gate", "metric": HEADLINE},
)
FAMILY = "paper"  # the claims Holm-adjusted together
STUDY_GROUPS = ("paper", "equal budget", "extension")  # the claims the seed study repeats (ablations: seed 0 only)
LEVEL = 0.05


def claim_metric(claim: dict[str, Any], dataset: str, metrics: list[str]) -> str | None:
    """The accuracy column a claim reads on this dataset (None: the claim is about another benchmark)."""
    spec = claim["metric"]
    if spec == HEADLINE:
        return headline_key(metrics)
    metric = spec.get(dataset)
    return metric if metric in metrics else None


def stand_in(claim: dict[str, Any], dataset: str, metric: str) -> str | None:
    """What the dataset measures in place of the paper's benchmark column (synthqa), else None."""
    if "paper" not in claim or PAPER_BENCHMARK[claim["paper"][0]] == dataset:
        return None
    return f"{dataset}'s {metric} accuracy stands in for {claim['paper'][0]} {claim['paper'][1]}"


def speed_verdict(measured: float | None, low: float | None, paper: float) -> str | None:
    """A measured speed-up (and the low end of its run-to-run range, where there is one) against the paper's."""
    if measured is None:
        return None
    if (low if low is not None else measured) >= paper:
        return "at least the paper's"
    return "below the paper's" if measured > 1 else "not faster"


def speed_part(claim: dict[str, Any], speed: dict[str, Any] | None) -> dict[str, Any]:
    """The speed-up half of a paper claim: measured end to end here (median ratio, the middle 95% of the per-round
    ratios of the interleaved timing) and counted at full size (Flan-T5-XL FLOPs), each against the paper's."""
    key = speedup_key(claim["a"], claim["b"])
    su = (speed or {}).get("speedup", {}).get(key)
    spread = (speed or {}).get("speedup_range95", {}).get(key)
    xl = (speed or {}).get("flops", {}).get("flant5xl", {})
    flops = xl[claim["b"]] / xl[claim["a"]] if claim["a"] in xl and claim["b"] in xl else None
    paper = claim["paper_speedup"]
    return {"paper": paper, "measured": su, "measured_range95": spread,
            "measured_verdict": speed_verdict(su, spread[0] if spread else None, paper),
            "flops_ratio_flant5xl": flops, "flops_verdict": speed_verdict(flops, None, paper)}


def equal_budget_reference(name: str, ev: dict[str, Any], names: set[str]) -> str | None:
    """uniform_<k>f for a model that selects k of its sampled frames, where that uniform model was evaluated."""
    k, total = ev.get("frames"), ev.get("sampled_frames")
    ref = teacher_name(k) if k else ""
    return ref if k and total and k < total and ref in names and ref != name else None


def answered_by_all(evals: dict[str, dict[str, Any]], items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The split's questions every model answered (a video skipped by preprocess leaves its questions out)."""
    for name, ev in evals.items():
        if "predictions" not in ev:
            raise ValueError(f"eval/{name}.json: no `predictions` (qid -> chosen option); rerun its evaluate stage")
    common = set.intersection(*(set(ev["predictions"]) for ev in evals.values()))
    kept = [it for it in items if it["qid"] in common]
    if not kept:
        raise ValueError("the eval JSONs share no question of the split")
    return kept


def correctness(ev: dict[str, Any], items: list[dict[str, Any]]) -> np.ndarray:
    """[n] bool per question (in the order of `items`): was the model's chosen option the right one?"""
    return np.array([ev["predictions"][it["qid"]] == int(it["answer"]) for it in items])


def paper_gain(paper: dict[str, Any], bench: str, col: str) -> float | None:
    sev, vil = paper.get("sevila", {}).get(bench, {}).get(col), paper.get("vila", {}).get(bench, {}).get(col)
    return None if sev is None or vil is None else round(vil - sev, 2)


TARGET_HALF_WIDTH = 0.02  # the test split at which a paired difference's 95% interval would be +-2 points


def test_split_size(ci: tuple[float, float] | list[float], n: int) -> dict[str, Any]:
    """The interval's half-width at these n questions, and the n at which it would be TARGET_HALF_WIDTH: a paired
    bootstrap interval narrows as 1/sqrt(n) for a fixed per-question spread of the differences."""
    half = (ci[1] - ci[0]) / 2
    return {"half_width": half, "n_for_half_width_2pt": int(np.ceil(n * (half / TARGET_HALF_WIDTH) ** 2))}


def compare(evals: dict[str, dict[str, Any]], items: list[dict[str, Any]], speed: dict[str, Any] | None,
            paper: dict[str, Any], resamples: int, seed: int, references: tuple[str, ...], dataset: str,
            margin: float) -> dict[str, Any]:
    """Every model against each of `references` and against uniform sampling at its own budget, and every claim
    of CLAIMS whose two models were evaluated and whose column this dataset measures."""
    items = answered_by_all(evals, items)
    types = [str(it.get("type", "all")) for it in items]
    metrics = ["overall", "mean", *sorted(set(types))] if len(set(types)) > 1 else ["overall"]
    boot = Resamples(types, resamples, seed)
    correct = {name: correctness(ev, items) for name, ev in evals.items()}
    pairs = [(name, ref) for ref in references if ref in correct for name in correct if name != ref]
    pairs += [(name, ref) for name, ev in evals.items()
              if (ref := equal_budget_reference(name, ev, set(correct))) and (name, ref) not in pairs]
    comparisons = []
    for name, ref in pairs:
        for metric in metrics:
            diff, ci = boot.paired(correct[name], correct[ref], metric)
            row: dict[str, Any] = {"a": name, "b": ref, "metric": metric, "n": len(items), "diff": diff,
                                   "ci95": list(ci)}
            if metric != "mean":
                mask = np.ones(len(items), bool) if metric == "overall" else np.array(types) == metric
                row["mcnemar_p"] = mcnemar_exact(correct[name][mask], correct[ref][mask])
            comparisons.append(row)
    claims = [judge_claim(c, boot, correct, metrics, dataset, paper, speed, margin) for c in CLAIMS
              if c["a"] in correct and c["b"] in correct and claim_metric(c, dataset, metrics)]
    adjust_family(claims)
    return {"resamples": resamples, "bootstrap_seed": seed, "noninferiority_margin": margin,
            "family": {"claims": FAMILY, "adjustment": "Holm", "level": LEVEL}, "comparisons": comparisons,
            "claims": claims}


def judge_claim(c: dict[str, Any], boot: Resamples, correct: dict[str, np.ndarray], metrics: list[str], dataset: str,
                paper: dict[str, Any], speed: dict[str, Any] | None, margin: float) -> dict[str, Any]:
    """One claim's difference, interval, bootstrap p-value and verdicts (direction or non-inferiority; for a paper
    claim also magnitude and speed)."""
    metric = claim_metric(c, dataset, metrics)
    diff, replicates = boot.replicates(correct[c["a"]], correct[c["b"]], metric)
    ci = interval(replicates)
    test = c.get("test", "superiority")
    row: dict[str, Any] = {
        "claim": c["claim"], "group": c["group"], "test": test, "a": c["a"], "b": c["b"], "metric": metric,
        "stand_in": stand_in(c, dataset, metric), "n": int(len(correct[c["a"]])), "diff": diff, "ci95": list(ci),
        "p_value": bootstrap_p(replicates),
        "verdict": noninferiority(ci, margin) if test == "noninferiority" else verdict(ci),
        **test_split_size(ci, len(correct[c["a"]])),
    }
    if test == "noninferiority":
        row["margin"] = margin
    if "paper" in c:
        gain = paper_gain(paper, *c["paper"])
        row["paper"] = gain
        row["magnitude"] = None if gain is None else magnitude([100 * x for x in ci], gain)
        row["speed"] = speed_part(c, speed)
        row["speedup"] = row["speed"]["measured"]
        row["paper_speedup"] = c["paper_speedup"]
    return row


def adjust_family(claims: list[dict[str, Any]]) -> None:
    """The paper's claims are one family: Holm-adjust their p-values; a direction verdict stands only where the
    adjusted p-value is under LEVEL (the unadjusted interval's verdict is kept beside it)."""
    family = [c for c in claims if c["group"] == FAMILY]
    for c, p in zip(family, holm([c["p_value"] for c in family]), strict=True):
        c["p_holm"] = p
        c["verdict_unadjusted"] = c["verdict"]
        if p >= LEVEL:
            c["verdict"] = "inconclusive"


def run(params: dict[str, Any]) -> None:
    paths = Paths.from_params(params)
    split = params["evaluate"]["split"]
    evals = {p.stem: read_json(p) for p in sorted(paths.eval_dir.glob("*.json"))}
    items = read_unified(paths.annotations(split))
    speed = read_json(paths.speed_json) if paths.speed_json.exists() else None
    paper = read_yaml(PAPER_FIGURES, "the paper's reference figures")
    cfg = params["compare"]
    out = {"dataset": params["dataset"], "split": split,
           **compare(evals, items, speed, paper, cfg["resamples"], cfg["seed"], references(params), params["dataset"],
                     cfg["noninferiority_margin"])}
    write_json(paths.comparisons_json, out)
    for c in out["claims"]:
        log.info("claim %r: %s - %s %s %+.1f points [%+.1f, %+.1f]: %s%s", c["claim"], c["a"], c["b"], c["metric"],
                 100 * c["diff"], 100 * c["ci95"][0], 100 * c["ci95"][1], c["verdict"],
                 f" (magnitude {c['magnitude']}, speed {c['speed']['measured_verdict']})" if "speed" in c else "")
