"""Paired statistics: bootstrap intervals against closed forms, McNemar against a hand computation, verdicts,
and the comparisons.json contract."""

from __future__ import annotations

import json
import math

import jsonschema
import numpy as np
import pytest

from tests.conftest import ROOT
from vila.evaluation.compare import compare
from vila.evaluation.stats import Resamples, mcnemar_exact, metric_values, verdict


def paired(n_a_only: int, n_b_only: int, n_both: int, n_neither: int) -> tuple[np.ndarray, np.ndarray]:
    a = np.array([1] * n_a_only + [0] * n_b_only + [1] * n_both + [0] * n_neither, bool)
    b = np.array([0] * n_a_only + [1] * n_b_only + [1] * n_both + [0] * n_neither, bool)
    return a, b


def test_bootstrap_interval_of_a_paired_difference_matches_the_normal_closed_form():
    # d_i = a_i - b_i is +1 on 60 questions, -1 on 20, 0 on 320: mean 0.1, sd sqrt(80/400 - 0.01)
    a, b = paired(60, 20, 100, 220)
    n = len(a)
    diff, (lo, hi) = Resamples(["t"] * n, 40_000, 0).paired(a, b, "overall")
    se = math.sqrt(80 / 400 - 0.1**2) / math.sqrt(n)
    assert diff == pytest.approx(0.1)
    assert lo == pytest.approx(0.1 - 1.96 * se, abs=0.004) and hi == pytest.approx(0.1 + 1.96 * se, abs=0.004)


def test_bootstrap_matches_brute_force_enumeration_of_every_resample():
    """n = 4 questions: all 4^4 resamples, each equally likely; the percentiles of our Monte Carlo bootstrap
    converge to those of the exact bootstrap distribution."""
    a, b = paired(2, 1, 1, 0)
    grid = np.array(np.meshgrid(*[range(4)] * 4)).reshape(4, -1).T  # every resample
    exact = (a[grid].mean(1) - b[grid].mean(1))
    _, (lo, hi) = Resamples(["t"] * 4, 200_000, 1).paired(a, b, "overall")
    assert lo == pytest.approx(np.percentile(exact, 2.5), abs=1e-9)
    assert hi == pytest.approx(np.percentile(exact, 97.5), abs=1e-9)


def test_mean_of_types_weighs_each_type_equally():
    correct = np.array([1, 1, 1, 0, 0, 1], bool)  # type x: 3/4 right, type y: 1/2 right
    types = ["x", "x", "x", "x", "y", "y"]
    assert metric_values(correct, types, "mean") == pytest.approx((0.75 + 0.5) / 2)
    assert metric_values(correct, types, "overall") == pytest.approx(4 / 6)
    assert metric_values(correct, types, "y") == pytest.approx(0.5)


def test_exact_mcnemar_matches_a_hand_computation():
    a, b = paired(8, 2, 30, 10)
    # 10 discordant questions split 8/2: p = 2 * (C(10,0) + C(10,1) + C(10,2)) / 2^10 = 2 * 56 / 1024
    assert mcnemar_exact(a, b) == pytest.approx(0.109375)
    assert mcnemar_exact(*paired(5, 5, 3, 3)) == 1.0
    assert mcnemar_exact(*paired(0, 0, 3, 3)) == 1.0


@pytest.mark.parametrize(("ci", "seeds", "expected"), [
    ((0.01, 0.05), (), "holds"),
    ((-0.01, 0.05), (), "inconclusive"),
    ((-0.05, -0.01), (), "does not hold"),
    ((0.01, 0.05), (0.02, -0.01), "inconclusive"),  # one seed points the other way
    ((0.0, 0.05), (), "inconclusive"),  # touching zero is not excluding it
])
def test_verdict_flips_as_the_interval_crosses_zero(ci, seeds, expected):
    assert verdict(ci, seed_diffs=seeds) == expected


def test_comparisons_follow_the_contract_and_name_each_claim():
    rng = np.random.default_rng(0)
    types = ["Interaction", "Sequence", "Prediction", "Feasibility"]
    items = [{"qid": f"{types[i % 4]}_{i}", "answer": int(rng.integers(4)), "type": types[i % 4]} for i in range(200)]

    def model(p_right: float, frames: int, sampled: int = 32) -> dict:
        preds = {it["qid"]: it["answer"] if rng.random() < p_right else (it["answer"] + 1) % 4 for it in items}
        return {"dataset": "synthqa", "predictions": preds, "frames": frames, "sampled_frames": sampled}

    evals = {"uniform_32f": model(0.8, 32), "uniform_4f": model(0.3, 4), "uniform_2f": model(0.3, 2),
             "sevila_4f": model(0.5, 4), "sevila_4f_uniform_answerer": model(0.4, 4), "vila_4f": model(0.9, 4),
             "vila_2f": model(0.3, 2)}
    speed = {"speedup": {"vila_4f_vs_sevila_4f": 3.5, "vila_2f_vs_sevila_4f": 4.0}}
    out = {"dataset": "synthqa", "split": "test", **compare(evals, items, speed, {}, 10_000, 0, ("uniform_32f", "sevila_4f"))}
    jsonschema.validate(out, json.loads((ROOT / "workflow/schemas/comparisons.schema.json").read_text()))
    pairs = {(c["a"], c["b"], c["metric"]) for c in out["comparisons"]}
    assert ("vila_4f", "sevila_4f", "mean") in pairs and ("sevila_4f", "uniform_32f", "Interaction") in pairs
    # equal budget: every selecting model against uniform sampling of as many frames; a uniform model against none
    assert {("vila_4f", "uniform_4f"), ("vila_2f", "uniform_2f"), ("sevila_4f", "uniform_4f"),
            ("sevila_4f_uniform_answerer", "uniform_4f")} <= {(a, b) for a, b, _ in pairs}
    assert not {(a, b) for a, b, _ in pairs if a.startswith("uniform_") and b.startswith("uniform_") and b != "uniform_32f"}
    claims = {c["claim"].split(",")[0]: c for c in out["claims"]}
    assert len(out["claims"]) == 10 and {c["group"] for c in out["claims"]} == {"paper", "equal budget", "ablation"}
    assert claims["+2.2 on STAR average"]["verdict"] == "holds"  # 0.9 vs 0.5 right
    assert claims["2-frame ViLA beats 4-frame SeViLA on VLEP"]["verdict"] == "does not hold"  # 0.3 vs 0.5
    assert claims["+2.2 on STAR average"]["speedup"] == 3.5
    assert claims["ViLA's 4 selected frames beat 4 uniform frames"]["verdict"] == "holds"  # 0.9 vs 0.3
    assert claims["the distilled 4-frame student reaches its 32-frame teacher"]["b"] == "uniform_32f"
    assert claims["SeViLA's 4 key frames beat 4 uniform frames"]["speedup"] is None
    # a claim whose models were not evaluated is left out, not guessed
    del evals["sevila_4f_uniform_answerer"]
    assert len(compare(evals, items, speed, {}, 10_000, 0, ("uniform_32f", "sevila_4f"))["claims"]) == 8


def test_mean_of_types_interval_brackets_the_per_type_differences():
    """The mean-of-types bootstrap resamples questions, then averages the per-type differences: on a case where
    every type differs by the same amount its interval is centred there, and per type the diff is exact."""
    types = ["x", "y"] * 100
    a = np.array([(i // 2) % 4 != 0 for i in range(200)])  # right on 3/4 of each type
    b = ~a  # right on the other 1/4 of each type
    boot = Resamples(types, 20_000, 2)
    for metric in ("mean", "x", "y"):
        diff, (lo, hi) = boot.paired(a, b, metric)
        assert diff == pytest.approx(0.5) and lo < 0.5 < hi


def test_the_test_split_needed_for_a_two_point_interval_scales_as_one_over_root_n():
    from vila.evaluation.compare import test_split_size

    got = test_split_size([-0.01, 0.07], 300)  # half-width 4 points at 300 questions: 4x the questions for 2
    assert got["half_width"] == pytest.approx(0.04) and got["n_for_half_width_2pt"] == 1200
    assert test_split_size([0.10, 0.12], 300)["n_for_half_width_2pt"] == 75


def test_pooled_over_one_seed_is_the_paired_interval():
    rng = np.random.default_rng(3)
    types = ["x", "y", "z"] * 40
    a, b = rng.random(120) < 0.7, rng.random(120) < 0.5
    boot = Resamples(types, 10_000, 1)
    for metric in ("overall", "mean", "y"):
        assert boot.pooled(a[None], b[None], metric, seed=5) == boot.paired(a, b, metric)


def test_pooled_two_level_bootstrap_matches_the_brute_force_distribution():
    """Two seeds, three questions: every equally likely resample (2^2 seed draws x 3^3 question draws) enumerated;
    the Monte-Carlo replicates' mean, sd and quantiles match that exact distribution."""
    import itertools

    a = np.array([[1, 1, 0], [1, 0, 0]], dtype=bool)
    b = np.array([[0, 1, 0], [0, 0, 1]], dtype=bool)
    d = a.astype(int) - b.astype(int)
    exact = np.array([np.mean([d[s, list(q)].mean() for s in seeds])
                      for seeds in itertools.product(range(2), repeat=2) for q in itertools.product(range(3), repeat=3)])
    boot = Resamples(["t"] * 3, 200_000, 0)
    diff, (lo, hi) = boot.pooled(a, b, "overall", seed=1)
    assert diff == pytest.approx(d.mean())
    # the replicates themselves, as pooled computes them
    drawn = np.random.default_rng(1).integers(0, 2, size=(200_000, 2))
    weight = np.stack([np.bincount(r, minlength=2) for r in drawn]) / 2
    replicates = boot.statistic(np.take_along_axis(weight @ d, boot.idx, axis=1), "overall")
    assert replicates.mean() == pytest.approx(exact.mean(), abs=2e-3)
    assert replicates.std() == pytest.approx(exact.std(), abs=2e-3)
    assert (lo, hi) == (pytest.approx(np.percentile(exact, 2.5), abs=0.02), pytest.approx(np.percentile(exact, 97.5), abs=0.02))
