"""The selection study's frame choice (vila/selector_study.py) on constructed questions: which frames each
selector hands the shared answerer."""

import numpy as np
import pytest

from vila import selector_study
from vila.data.dataset import QASplit


def split(keyframes: list[list[int]]) -> QASplit:
    items = [{"qid": f"q{i}", "keyframes": k} for i, k in enumerate(keyframes)]
    return QASplit("val", items, np.arange(len(items)))


def test_blind_selectors_give_the_grid_chance_and_the_ground_truth():
    qa = split([[5, 6], [30]])
    assert selector_study.choose("uniform", 4, qa, None, {}, 32).tolist() == [[4, 12, 20, 28]] * 2
    assert selector_study.choose("oracle", 2, qa, None, {}, 32).tolist() == [[5, 6], [8, 30]]
    a = selector_study.choose("random", 4, qa, None, {}, 32, np.random.default_rng([0, 4]))
    b = selector_study.choose("random", 4, qa, None, {}, 32, np.random.default_rng([0, 4]))
    assert a.tolist() == b.tolist() and (np.diff(a, axis=1) > 0).all()  # seeded, distinct, in time order
    with pytest.raises(ValueError, match="have no key frames"):
        selector_study.choose("oracle", 2, QASplit("test", [{"qid": "x"}], np.arange(1)), None, {}, 32)


def test_scored_selectors_apply_their_rule_and_hyper_parameters():
    qa = split([[0], [0]])
    scores = np.zeros((2, 32))
    scores[0, [1, 2, 3, 20]] = [0.9, 0.8, 0.7, 0.6]
    scores[1, [10, 11]] = 1.0
    assert selector_study.choose("similarity_topk", 2, qa, scores, {}, 32).tolist() == [[1, 2], [10, 11]]
    # a trained selector's scores are read by its model's own rule: one frame per half
    assert selector_study.choose("vila_prompter", 2, qa, scores, {}, 32, model_rule="segment_argmax").tolist() == [
        [1, 20], [10, 16]]
    # AKS: with a threshold nothing reaches, each half gets one frame
    assert selector_study.choose("aks", 2, qa, scores, {"depth": 1, "threshold": 5.0}, 32).tolist()[0] == [1, 20]
    with pytest.raises(ValueError, match="needs frame scores"):
        selector_study.choose("sevila_localizer", 2, qa, scores, {}, 32)


def test_hyper_parameter_grids_come_from_params():
    cfg = {"bolt_exponents": [1, 2], "aks_depths": [1], "aks_thresholds": [0.0, 0.1]}
    assert selector_study.candidates("bolt_its", cfg) == [{"exponent": 1.0}, {"exponent": 2.0}]
    assert selector_study.candidates("aks", cfg) == [{"depth": 1, "threshold": 0.0}, {"depth": 1, "threshold": 0.1}]
    assert selector_study.candidates("vila_fast", cfg) == [{}]
