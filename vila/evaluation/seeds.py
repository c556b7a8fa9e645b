"""The `seeds` stage: the seed study's summary.

Every model the claims use is trained and evaluated at `seed` (Table 1's models) and at each of `seeds_study`
(under study/seeds/<seed>/, the same stages at `--seed`). A study seed changes both the training seed and the
backbone's: the embedded backbone stands in for released pretrained weights, so a seed also asks whether a verdict
would hold with another pretrained backbone. For each model: accuracy at every seed, mean and sample sd across
seeds. For each claim of compare.CLAIMS: the paired difference, its interval and verdict at every seed, and one set
of verdicts across seeds from the per-seed differences d_1..d_S alone: their mean with a Student-t 95% interval
(mean +- t_{S-1} sd / sqrt(S)) and a one-sample t-test's p-value (the paper's four claims Holm-adjusted together).
The estimand is the expected difference over training runs and backbones, on this test split; every seed's
difference already carries its own question-sampling noise, so the seeds' spread holds both. The t-interval is
valid with few seeds; a bootstrap over 3 seeds is not (tests/test_stats.py: coverage by simulation). Magnitude
(against the paper's gain) and non-inferiority (the student against its teacher) are read off the same interval.
Written to study/results/<dataset>/comparisons.json in the comparisons contract (the default seed's comparisons,
with `seeds` filled in and the verdicts across seeds), so a check reads one file; reports/seeds.html renders it.
"""

from __future__ import annotations

import copy
import logging
from typing import Any

import numpy as np

from vila.evaluation.compare import FAMILY, LEVEL, adjust_family
from vila.evaluation.stats import magnitude, noninferiority, t_interval, verdict
from vila.io import read_json, write_json
from vila.paths import Paths

log = logging.getLogger(__name__)
RULE = ("mean of the per-seed paired differences, Student-t 95% interval over the seeds (the paper's four claims: "
        "one-sample t-test p-values, Holm-adjusted)")


def study_seeds(params: dict[str, Any]) -> list[int]:
    return [params["seed"], *params["seeds_study"]]


def seed_paths(params: dict[str, Any], seed: int) -> Paths:
    return Paths.from_params(params).for_seed(None if seed == params["seed"] else seed)


def mean_sd(values: list[float]) -> tuple[float, float | None]:
    """Mean and sample standard deviation (None for one value)."""
    arr = np.asarray(values, dtype=float)
    return float(arr.mean()), (float(arr.std(ddof=1)) if len(arr) > 1 else None)


def t_test_p(values: list[float]) -> float:
    """Two-sided one-sample t-test of "the mean difference is 0" (1.0 when every value is 0)."""
    from scipy.stats import ttest_1samp

    x = np.asarray(values, dtype=float)
    if np.allclose(x, x[0]):
        return 1.0 if x[0] == 0 else 0.0
    return float(ttest_1samp(x, 0.0).pvalue)


def over_seeds(claim: dict[str, Any], diffs: list[float]) -> dict[str, Any]:
    """A claim's verdicts across seeds from its per-seed differences (module docstring)."""
    mean, ci = t_interval(diffs)
    out: dict[str, Any] = {"seeds_diff_mean": mean, "seeds_ci95": list(ci), "p_value": t_test_p(diffs),
                           "verdict": noninferiority(ci, claim["margin"]) if claim.get("test") == "noninferiority"
                           else verdict(ci)}
    if claim.get("paper") is not None:
        out["magnitude"] = magnitude([100 * x for x in ci], claim["paper"])
    return out


def summarise(per_seed: dict[int, dict[str, Any]], first: int) -> dict[str, Any]:
    """per_seed: seed -> {"evals": name -> eval JSON, "comparisons": that seed's comparisons.json}; `first`: the
    default seed, whose comparisons the result extends."""
    seeds = [first, *sorted(s for s in per_seed if s != first)]
    out = copy.deepcopy(per_seed[first]["comparisons"])
    names = sorted(set.intersection(*(set(r["evals"]) for r in per_seed.values())))
    models = {}
    for name in names:
        row: dict[str, Any] = {}
        for metric in ("overall", "mean"):
            values = {s: per_seed[s]["evals"][name]["accuracy"].get(metric) for s in seeds}
            if any(v is None for v in values.values()):
                continue
            mean, sd = mean_sd(list(values.values()))
            row[metric] = {"seeds": {str(s): v for s, v in values.items()}, "mean": mean, "sd": sd}
        for metric in ("keyframe_recall", "key_event_recall"):  # how well a selecting model found the key frames
            values = {s: per_seed[s]["evals"][name].get("selection", {}).get(metric) for s in seeds}
            if all(v is not None for v in values.values()):
                mean, sd = mean_sd(list(values.values()))
                row[metric] = {"seeds": {str(s): v for s, v in values.items()}, "mean": mean, "sd": sd}
        models[name] = row
    index = {s: {(c["a"], c["b"], c["metric"]): c for c in per_seed[s]["comparisons"]["comparisons"]} for s in seeds}
    for c in out["comparisons"]:
        key = (c["a"], c["b"], c["metric"])
        c["seeds"] = {str(s): index[s][key]["diff"] for s in seeds if key in index[s]}
    claims_at = {s: {c["claim"]: c for c in per_seed[s]["comparisons"]["claims"]} for s in seeds}
    claims = []
    for claim in out["claims"]:
        at = {s: claims_at[s][claim["claim"]] for s in seeds if claim["claim"] in claims_at[s]}
        if len(at) < len(seeds):  # a model of the claim is not in the study (an ablation: seed 0 only)
            continue
        diffs = [c["diff"] for c in at.values()]
        mean, sd = mean_sd(diffs)
        claim.update(seeds={str(s): c["diff"] for s, c in at.items()},
                     seed_ci95={str(s): c["ci95"] for s, c in at.items()},
                     seed_verdicts={str(s): c["verdict"] for s, c in at.items()},
                     diff_mean=mean, diff_sd=sd, seed_rule=RULE, **over_seeds(claim, diffs))
        claims.append(claim)
    for c in claims:  # the per-claim fields of the default seed that the study's own verdicts replace
        for key in ("p_holm", "verdict_unadjusted"):
            c.pop(key, None)
    adjust_family(claims)
    return {**out, "claims": claims, "seeds_study": seeds, "models": models,
            "family": {"claims": FAMILY, "adjustment": "Holm", "level": LEVEL, "rule": RULE}}


def load_seed(params: dict[str, Any], seed: int) -> dict[str, Any]:
    paths = seed_paths(params, seed)
    if not paths.comparisons_json.exists():
        raise FileNotFoundError(f"{paths.comparisons_json}: seed {seed} of the study has no comparisons; run "
                                "`snakemake --cores all reproduce_seeds` (or `dvc repro study/dvc.yaml`)")
    return {"evals": {p.stem: read_json(p) for p in sorted(paths.eval_dir.glob("*.json"))},
            "comparisons": read_json(paths.comparisons_json)}


def run(params: dict[str, Any]) -> None:
    paths = Paths.from_params(params)
    summary = summarise({s: load_seed(params, s) for s in study_seeds(params)}, params["seed"])
    write_json(paths.study_comparisons_json, summary)
    for c in summary["claims"]:
        log.info("claim %r over seeds %s: %+.1f +- %.1f points, t-interval [%+.1f, %+.1f]: %s", c["claim"],
                 summary["seeds_study"], 100 * c["diff_mean"], 100 * (c["diff_sd"] or 0.0), 100 * c["seeds_ci95"][0],
                 100 * c["seeds_ci95"][1], c["verdict"])
