"""The `seeds` stage: the seed study's summary.

Every model the comparisons use is trained and evaluated at `seed` (Table 1's models) and at each of
`seeds_study` (under study/seeds/<seed>/, the same stages at `--seed`). For each model: accuracy at every seed,
mean and sample sd across seeds; for every comparison, each seed's paired difference; for each claim of
compare.CLAIMS, the difference, its 95% interval and the verdict at every seed, and one verdict across seeds:
"holds" only when it holds at every seed, "does not hold" only when it fails at every seed (the interval
excludes zero the other way), otherwise "inconclusive". Written to study/results/<dataset>/comparisons.json in
the comparisons contract (the default seed's comparisons, with `seeds` filled in and the verdicts across seeds),
so a check reads one file; reports/seeds.html renders it.
"""

from __future__ import annotations

import copy
import logging
from typing import Any

import numpy as np

from vila.io import read_json, write_json
from vila.paths import Paths

log = logging.getLogger(__name__)


def study_seeds(params: dict[str, Any]) -> list[int]:
    return [params["seed"], *params["seeds_study"]]


def seed_paths(params: dict[str, Any], seed: int) -> Paths:
    return Paths.from_params(params).for_seed(None if seed == params["seed"] else seed)


def across_seeds(verdicts: list[str]) -> str:
    """One verdict from every seed's: unanimous or inconclusive."""
    if verdicts and all(v == "holds" for v in verdicts):
        return "holds"
    if verdicts and all(v == "does not hold" for v in verdicts):
        return "does not hold"
    return "inconclusive"


def mean_sd(values: list[float]) -> tuple[float, float | None]:
    """Mean and sample standard deviation (None for one value)."""
    arr = np.asarray(values, dtype=float)
    return float(arr.mean()), (float(arr.std(ddof=1)) if len(arr) > 1 else None)


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
        models[name] = row
    index = {s: {(c["a"], c["b"], c["metric"]): c for c in per_seed[s]["comparisons"]["comparisons"]} for s in seeds}
    for c in out["comparisons"]:
        key = (c["a"], c["b"], c["metric"])
        c["seeds"] = {str(s): index[s][key]["diff"] for s in seeds if key in index[s]}
    claims_at = {s: {c["claim"]: c for c in per_seed[s]["comparisons"]["claims"]} for s in seeds}
    for claim in out["claims"]:
        missing = [s for s in seeds if claim["claim"] not in claims_at[s]]
        if missing:
            raise ValueError(f"comparisons.json of seed(s) {missing}: no claim {claim['claim']!r}; rerun their compare")
        at = {s: claims_at[s][claim["claim"]] for s in seeds}
        mean, sd = mean_sd([c["diff"] for c in at.values()])
        claim.update(seeds={str(s): c["diff"] for s, c in at.items()},
                     seed_ci95={str(s): c["ci95"] for s, c in at.items()},
                     seed_verdicts={str(s): c["verdict"] for s, c in at.items()},
                     diff_mean=mean, diff_sd=sd, verdict=across_seeds([c["verdict"] for c in at.values()]))
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
    summary = summarise({s: load_seed(params, s) for s in study_seeds(params)}, params["seed"])
    write_json(paths.study_comparisons_json, summary)
    for c in summary["claims"]:
        log.info("claim %r over seeds %s: %+.1f +- %s points; %s", c["claim"], summary["seeds_study"], 100 * c["diff_mean"],
                 "n/a" if c["diff_sd"] is None else f"{100 * c['diff_sd']:.1f}", c["verdict"])
