"""The seed study: the verdict across seeds, mean and sd, and a real run of `reproduce_seeds` on the smoke DAG."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import jsonschema
import pytest
import yaml

from tests.conftest import ROOT, run
from vila.seeds import across_seeds, summarise


def test_the_verdict_across_seeds_is_unanimous_or_inconclusive():
    assert across_seeds(["holds", "holds", "holds"]) == "holds"
    assert across_seeds(["holds", "inconclusive", "holds"]) == "inconclusive"
    assert across_seeds(["does not hold", "does not hold"]) == "does not hold"
    assert across_seeds(["holds", "does not hold"]) == "inconclusive"
    assert across_seeds([]) == "inconclusive"


def _claim(diff: float, lo: float, hi: float, verdict: str) -> dict:
    return {"claim": "c", "a": "vila_4f", "b": "sevila_4f", "metric": "mean", "paper": 2.2, "diff": diff,
            "ci95": [lo, hi], "verdict": verdict}


def test_summary_gives_every_seed_and_the_sample_sd():
    per_seed = {s: {"evals": {"vila_4f": {"accuracy": {"overall": acc, "mean": acc - 0.01}}},
                    "comparisons": {"claims": [_claim(d, d - 0.05, d + 0.05, v)]}}
                for s, acc, d, v in ((0, 0.70, 0.10, "holds"), (1, 0.80, 0.02, "inconclusive"), (2, 0.75, 0.09, "holds"))}
    for s, comp in ((0, 0.10), (1, 0.02), (2, 0.09)):
        per_seed[s]["comparisons"]["comparisons"] = [{"a": "vila_4f", "b": "sevila_4f", "metric": "mean", "diff": comp}]
    out = summarise(per_seed, 0)
    assert out["seeds_study"] == [0, 1, 2] and out["comparisons"][0]["seeds"] == {"0": 0.10, "1": 0.02, "2": 0.09}
    acc = out["models"]["vila_4f"]["overall"]
    assert acc["seeds"] == {"0": 0.70, "1": 0.80, "2": 0.75}
    assert acc["mean"] == pytest.approx(0.75) and acc["sd"] == pytest.approx(0.05)  # sqrt(((.05)^2*2)/2)
    claim = out["claims"][0]
    assert claim["diff_mean"] == pytest.approx(0.07) and claim["diff_sd"] == pytest.approx(0.0435889894)
    assert claim["verdict"] == "inconclusive" and claim["seed_verdicts"]["1"] == "inconclusive"
    assert claim["seed_ci95"]["2"] == [pytest.approx(0.04), pytest.approx(0.14)]
    per_seed[1]["comparisons"]["claims"][0]["verdict"] = "holds"
    assert summarise(per_seed, 0)["claims"][0]["verdict"] == "holds"


def test_a_stage_shared_by_every_seed_refuses_another_seed():
    """`vila --seed 1 backbone` would overwrite the backbone every seed shares: refused, before any work."""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "vila.cli", "--seed", "1", "backbone"], cwd=ROOT, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode != 0 and "does not depend on the training seed" in out.stderr


@pytest.mark.slow
def test_reproduce_seeds_trains_every_model_again_at_the_study_seed_only(smoke_dag: Path, tmp_path):
    """The smoke DAG ran `all reproduce_seeds` (seeds_study [1]). On a project that has Table 1's outputs only,
    `reproduce_seeds` plans only the seed-study twins and `seeds`: the default seed's models are reused as they
    are, the backbone and caches shared. The seed-1 outputs follow the contracts; a second invocation does nothing."""
    params = yaml.safe_load((smoke_dag / "params.yaml").read_text())
    assert params["seeds_study"] == [1]
    project = tmp_path / "p"
    shutil.copytree(smoke_dag, project, symlinks=True, ignore=shutil.ignore_patterns("seeds.html"))
    shutil.rmtree(project / "study")
    plan = run(["snakemake", "-n", "--cores", "2", "reproduce_seeds"], project).stdout
    rules = set(re.findall(r"^(?:local)?rule (\w+):", plan, re.M)) - {"reproduce_seeds"}
    assert rules and all(r.endswith("_seeds") or r == "seeds" for r in rules), rules
    assert {"student_seeds", "localizer_seeds", "compare_seeds", "seeds"} <= rules
    assert not (smoke_dag / "study/seeds/1/models/synthqa/backbone").exists()
    schema = json.loads((ROOT / "workflow/schemas/eval.schema.json").read_text())
    for name in ("uniform_32f", "vila_4f", "vila_2f", "sevila_4f"):
        seed1 = json.loads((smoke_dag / f"study/seeds/1/results/synthqa/eval/{name}.json").read_text())
        seed0 = json.loads((smoke_dag / f"results/synthqa/eval/{name}.json").read_text())
        jsonschema.validate(seed1, schema)
        assert seed1["seed"] == 1 and seed0["seed"] == 0 and seed1["variant"] == name
        assert seed1["checkpoint"] == f"study/seeds/1/models/synthqa/{name}"
    w0 = (smoke_dag / "models/synthqa/vila_4f/model.safetensors").read_bytes()
    w1 = (smoke_dag / "study/seeds/1/models/synthqa/vila_4f/model.safetensors").read_bytes()
    assert w0 != w1  # the seed reached the training
    summary = json.loads((smoke_dag / "study/results/synthqa/comparisons.json").read_text())
    jsonschema.validate(summary, json.loads((ROOT / "workflow/schemas/comparisons.schema.json").read_text()))
    assert summary["seeds_study"] == [0, 1]
    assert all(set(c["seeds"]) == {"0", "1"} for c in summary["comparisons"])
    vila = json.loads((smoke_dag / "results/synthqa/eval/vila_4f.json").read_text())
    assert summary["models"]["vila_4f"]["overall"]["seeds"]["0"] == vila["accuracy"]["overall"]
    assert {c["a"] for c in summary["claims"]} == {"vila_4f", "vila_2f"}
    assert all(set(c["seed_verdicts"]) == {"0", "1"} for c in summary["claims"])
    page = (smoke_dag / "reports/seeds.html").read_text()
    assert "seed 1" in page and "verdict across seeds" in page
    again = run(["snakemake", "-n", "--cores", "1", "reproduce_seeds", "all"], smoke_dag).stdout
    assert "Nothing to be done" in again
