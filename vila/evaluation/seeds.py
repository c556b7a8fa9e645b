"""The `seeds` stage: the seed study's summary.

Every model the comparisons use is trained and evaluated at `seed` (Table 1's models) and at each of
`seeds_study` (under study/seeds/<seed>/, the same stages at `--seed`). For each model: accuracy at every seed,
mean and sample sd across seeds; for every comparison, each seed's paired difference; for each claim of
compare.CLAIMS, the difference, its 95% interval and the verdict at every seed, and one verdict across seeds from
the pooled evidence: the mean over seeds of the paired difference, with a 95% two-level bootstrap interval
(resample the seeds, then the test questions; stats.Resamples.pooled), and the verdict of that interval. (A rule
such as "holds at every seed" gets stricter the more seeds one runs; the pooled interval gets narrower.) Written
to study/results/<dataset>/comparisons.json in the comparisons contract (the default seed's comparisons, with
`seeds` filled in and the verdicts across seeds), so a check reads one file; reports/seeds.html renders it.
"""

from __future__ import annotations

import copy
import logging
from typing import Any

import numpy as np

from vila.evaluation.compare import answered_by_all, correctness
from vila.evaluation.stats import Resamples, verdict
from vila.io import read_json, write_json
from vila.paths import Paths

log = logging.getLogger(__name__)


def study_seeds(params: dict[str, Any]) -> list[int]:
    return [params["seed"], *params["seeds_study"]]


def seed_paths(params: dict[str, Any], seed: int) -> Paths:
    return Paths.from_params(params).for_seed(None if seed == params["seed"] else seed)


def mean_sd(values: list[float]) -> tuple[float, float | None]:
    """Mean and sample standard deviation (None for one value)."""
    arr = np.asarray(values, dtype=float)
    return float(arr.mean()), (float(arr.std(ddof=1)) if len(arr) > 1 else None)


def summarise(per_seed: dict[int, dict[str, Any]], first: int, items: list[dict[str, Any]], resamples: int,
              boot_seed: int) -> dict[str, Any]:
    """per_seed: seed -> {"evals": name -> eval JSON, "comparisons": that seed's comparisons.json}; `first`: the
    default seed, whose comparisons the result extends; items: the split's annotations (the pooled intervals)."""
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
        models[name] = row
    index = {s: {(c["a"], c["b"], c["metric"]): c for c in per_seed[s]["comparisons"]["comparisons"]} for s in seeds}
    for c in out["comparisons"]:
        key = (c["a"], c["b"], c["metric"])
        c["seeds"] = {str(s): index[s][key]["diff"] for s in seeds if key in index[s]}
    # every seed's answers to the questions every model of every seed answered
    evals = {(s, n): per_seed[s]["evals"][n] for s in seeds for n in names}
    common = answered_by_all({f"seed {s}/{n}": ev for (s, n), ev in evals.items()}, items)
    boot = Resamples([str(it.get("type", "all")) for it in common], resamples, boot_seed)
    claims_at = {s: {c["claim"]: c for c in per_seed[s]["comparisons"]["claims"]} for s in seeds}
    for claim in out["claims"]:
        missing = [s for s in seeds if claim["claim"] not in claims_at[s]]
        if missing:
            raise ValueError(f"comparisons.json of seed(s) {missing}: no claim {claim['claim']!r}; rerun their compare")
        at = {s: claims_at[s][claim["claim"]] for s in seeds}
        mean, sd = mean_sd([c["diff"] for c in at.values()])
        a = np.stack([correctness(evals[s, claim["a"]], common) for s in seeds])
        b = np.stack([correctness(evals[s, claim["b"]], common) for s in seeds])
        pooled, ci = boot.pooled(a, b, claim["metric"], seed=boot_seed)
        claim.update(seeds={str(s): c["diff"] for s, c in at.items()},
                     seed_ci95={str(s): c["ci95"] for s, c in at.items()},
                     seed_verdicts={str(s): c["verdict"] for s, c in at.items()},
                     diff_mean=mean, diff_sd=sd, pooled_diff=pooled, pooled_ci95=list(ci), verdict=verdict(ci),
                     verdict_rule="the pooled 95% two-level bootstrap interval (seeds, then questions) excludes zero")
    return {**out, "seeds_study": seeds, "models": models}


def load_seed(params: dict[str, Any], seed: int) -> dict[str, Any]:
    paths = seed_paths(params, seed)
    if not paths.comparisons_json.exists():
        raise FileNotFoundError(f"{paths.comparisons_json}: seed {seed} of the study has no comparisons; run "
                                "`snakemake --cores all reproduce_seeds` (or `dvc repro study/dvc.yaml`)")
    return {"evals": {p.stem: read_json(p) for p in sorted(paths.eval_dir.glob("*.json"))},
            "comparisons": read_json(paths.comparisons_json)}


def run(params: dict[str, Any]) -> None:
    paths = Paths.from_params(params)
    items = read_json(paths.annotations(params["evaluate"]["split"]))
    summary = summarise({s: load_seed(params, s) for s in study_seeds(params)}, params["seed"], items,
                        params["compare"]["resamples"], params["compare"]["seed"])
    write_json(paths.study_comparisons_json, summary)
    for c in summary["claims"]:
        log.info("claim %r over seeds %s: %+.1f +- %s points, pooled %+.1f [%+.1f, %+.1f]: %s", c["claim"],
                 summary["seeds_study"], 100 * c["diff_mean"], "n/a" if c["diff_sd"] is None else f"{100 * c['diff_sd']:.1f}",
                 100 * c["pooled_diff"], 100 * c["pooled_ci95"][0], 100 * c["pooled_ci95"][1], c["verdict"])
