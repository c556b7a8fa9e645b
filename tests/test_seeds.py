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
from vila.evaluation.seeds import summarise


def _claim(diff: float, lo: float, hi: float, verdict: str) -> dict:
    return {"claim": "c", "group": "paper", "a": "vila_4f", "b": "sevila_4f", "metric": "overall", "paper": 2.2,
            "diff": diff, "ci95": [lo, hi], "verdict": verdict}


ITEMS = [{"qid": f"q{i}", "answer": 0, "type": "t"} for i in range(100)]  # the questions every seed answers


def _eval(right: int, acc_mean: float | None = None) -> dict:
    """An eval JSON whose first `right` of the 100 questions are answered right."""
    preds = {it["qid"]: 0 if i < right else 1 for i, it in enumerate(ITEMS)}
    acc = right / 100
    return {"accuracy": {"overall": acc, "mean": acc if acc_mean is None else acc_mean}, "predictions": preds}


def _study(rights: dict[int, tuple[int, int]]) -> dict:
    """seed -> (vila_4f right, sevila_4f right): each seed's evals and its own comparisons."""
    per_seed = {}
    for s, (a, b) in rights.items():
        d = (a - b) / 100
        per_seed[s] = {"evals": {"vila_4f": _eval(a), "sevila_4f": _eval(b)},
                       "comparisons": {"claims": [_claim(d, d - 0.05, d + 0.05, "holds" if d - 0.05 > 0 else "inconclusive")],
                                       "comparisons": [{"a": "vila_4f", "b": "sevila_4f", "metric": "overall", "diff": d}]}}
    return per_seed


def test_summary_gives_every_seed_the_sample_sd_and_the_t_interval_verdict():
    per_seed = _study({0: (70, 60), 1: (80, 78), 2: (75, 66)})
    out = summarise(per_seed, 0)
    assert out["seeds_study"] == [0, 1, 2] and out["comparisons"][0]["seeds"] == {"0": 0.10, "1": 0.02, "2": 0.09}
    acc = out["models"]["vila_4f"]["overall"]
    assert acc["seeds"] == {"0": 0.70, "1": 0.80, "2": 0.75}
    assert acc["mean"] == pytest.approx(0.75) and acc["sd"] == pytest.approx(0.05)  # sqrt(((.05)^2*2)/2)
    claim = out["claims"][0]
    assert claim["diff_mean"] == pytest.approx(0.07) and claim["diff_sd"] == pytest.approx(0.0435889894)
    assert claim["seed_verdicts"]["1"] == "inconclusive" and claim["seed_ci95"]["2"] == [pytest.approx(0.04), pytest.approx(0.14)]
    # mean 0.07 +- t_2(0.975) 4.303 x 0.0436 / sqrt(3): [-0.038, +0.178], an interval that holds 0
    assert claim["seeds_ci95"] == [pytest.approx(0.07 - 0.108282, abs=1e-4), pytest.approx(0.07 + 0.108282, abs=1e-4)]
    assert claim["verdict"] == "inconclusive" and claim["magnitude"] == "consistent"  # the paper's 2.2 inside
    assert "Student-t" in claim["seed_rule"]


def test_the_verdict_over_seeds_holds_when_every_seed_agrees_closely():
    out = summarise(_study({0: (70, 60), 1: (71, 60), 2: (69, 60), 3: (70, 61), 4: (70, 59)}), 0)
    claim = out["claims"][0]
    assert claim["seeds_ci95"][0] > 0 and claim["verdict"] == "holds" and claim["magnitude"] == "larger"


def test_a_stage_shared_by_every_seed_refuses_another_seed(tmp_path):
    """`vila --seed 1 preprocess` would overwrite the decode cache every seed shares: refused, before any work (in a
    workspace of its own: a stage command takes the workspace's runner lock)."""
    import shutil
    import subprocess
    import sys

    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    out = subprocess.run([sys.executable, "-m", "vila.cli", "--seed", "1", "preprocess"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode != 0 and "does not depend on the training seed" in out.stderr


@pytest.mark.slow
def test_reproduce_seeds_trains_every_model_again_at_the_study_seed_only(smoke_dag: Path, tmp_path):
    """The smoke DAG ran `all reproduce_seeds` (seeds_study [1]). On a project that has Table 1's outputs only,
    `reproduce_seeds` plans only the seed-study twins and `seeds`: the default seed's models are reused as they
    are, the decode cache shared, the backbone drawn again. The seed-1 outputs follow the contracts; a second
    invocation does nothing."""
    params = yaml.safe_load((smoke_dag / "params.yaml").read_text())
    assert params["seeds_study"] == [1]
    project = tmp_path / "p"
    shutil.copytree(smoke_dag, project, symlinks=True, ignore=shutil.ignore_patterns("seeds.html"))
    shutil.rmtree(project / "study")
    plan = run(["snakemake", "-n", "--cores", "2", "reproduce_seeds"], project).stdout
    rules = set(re.findall(r"^(?:local)?rule (\w+):", plan, re.M)) - {"reproduce_seeds"}
    assert rules and all(r.endswith("_seeds") or r == "seeds" for r in rules), rules
    assert {"backbone_seeds", "student_seeds", "localizer_seeds", "compare_seeds", "seeds"} <= rules
    # the claims' models only: the 4- and 32-frame teachers (the smoke profile has no others), no ablation's
    assert "study/seeds/1/models/synthqa/uniform_4f" in plan and "sevila_localizer_no_pretrain" not in plan
    # each seed has its own backbone (the stand-in for released weights is drawn again too)
    b0 = (smoke_dag / "models/synthqa/backbone/model.safetensors").read_bytes()
    b1 = (smoke_dag / "study/seeds/1/models/synthqa/backbone/model.safetensors").read_bytes()
    assert b0 != b1
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
    study = set(summary["models"])  # the claims' models, at every seed; the ablations are seed 0's only
    assert {"uniform_4f", "uniform_32f", "vila_4f", "vila_2f", "vila_4f_relevance", "sevila_4f"} <= study
    assert "sevila_4f_no_loc_pretrain" not in study
    assert all(set(c["seeds"]) == ({"0", "1"} if {c["a"], c["b"]} <= study else {"0"}) for c in summary["comparisons"])
    vila = json.loads((smoke_dag / "results/synthqa/eval/vila_4f.json").read_text())
    assert summary["models"]["vila_4f"]["overall"]["seeds"]["0"] == vila["accuracy"]["overall"]
    assert {c["a"] for c in summary["claims"]} == {"vila_4f", "vila_2f", "sevila_4f", "vila_4f_relevance"}
    assert all(set(c["seed_verdicts"]) == {"0", "1"} and "seeds_ci95" in c for c in summary["claims"])
    assert not any(c["group"] == "ablation" for c in summary["claims"])  # ablations: seed 0 only
    page = (smoke_dag / "reports/seeds.html").read_text()
    assert "seed 1" in page and "verdict across seeds" in page
    again = run(["snakemake", "-n", "--cores", "1", "reproduce_seeds", "all"], smoke_dag).stdout
    assert "Nothing to be done" in again
