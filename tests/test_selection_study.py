"""The selection study's frame choice (vila/selection/study.py) on constructed questions: which frames each
selector hands the shared answerer."""

import numpy as np
import pytest

from vila.data.dataset import QASplit
from vila.selection import study


def split(keyframes: list[list[int]]) -> QASplit:
    items = [{"qid": f"q{i}", "keyframes": k} for i, k in enumerate(keyframes)]
    return QASplit("val", items, np.arange(len(items)))


def test_blind_selectors_give_the_grid_chance_and_the_ground_truth():
    qa = split([[5, 6], [30]])
    assert study.choose("uniform", 4, qa, None, {}, 32).tolist() == [[4, 12, 20, 28]] * 2
    assert study.choose("oracle", 2, qa, None, {}, 32).tolist() == [[5, 6], [8, 30]]
    a = study.choose("random", 4, qa, None, {}, 32, np.random.default_rng([0, 4]))
    b = study.choose("random", 4, qa, None, {}, 32, np.random.default_rng([0, 4]))
    assert a.tolist() == b.tolist() and (np.diff(a, axis=1) > 0).all()  # seeded, distinct, in time order
    with pytest.raises(ValueError, match="have no key frames"):
        study.choose("oracle", 2, QASplit("test", [{"qid": "x"}], np.arange(1)), None, {}, 32)


def test_scored_selectors_apply_their_rule_and_hyper_parameters():
    qa = split([[0], [0]])
    scores = np.zeros((2, 32))
    scores[0, [1, 2, 3, 20]] = [0.9, 0.8, 0.7, 0.6]
    scores[1, [10, 11]] = 1.0
    assert study.choose("similarity_topk", 2, qa, scores, {}, 32).tolist() == [[1, 2], [10, 11]]
    # a trained selector's scores are read by its model's own rule: one frame per half
    assert study.choose("vila_prompter", 2, qa, scores, {}, 32, model_rule="segment_argmax").tolist() == [
        [1, 20], [10, 16]]
    # AKS: with a threshold nothing reaches, each half gets one frame
    assert study.choose("aks", 2, qa, scores, {"depth": 1, "threshold": 5.0}, 32).tolist()[0] == [1, 20]
    with pytest.raises(ValueError, match="needs frame scores"):
        study.choose("sevila_localizer", 2, qa, scores, {}, 32)


def test_hyper_parameter_grids_come_from_params():
    cfg = {"bolt_exponents": [1, 2], "aks_depths": [1], "aks_thresholds": [0.0, 0.1]}
    assert study.candidates("bolt_its", cfg) == [{"exponent": 1.0}, {"exponent": 2.0}]
    assert study.candidates("aks", cfg) == [{"depth": 1, "threshold": 0.0}, {"depth": 1, "threshold": 0.1}]
    assert study.candidates("vila_fast", cfg) == [{}]


def test_the_readers_frame_sets_are_question_blind_uniform_or_random():
    """reader_<k>f's training frames: per question one kind of READ_MIX (uniform or random, nothing drawn with a
    relevance signal), k distinct frames in time order; the draw is a function of the generator alone (a resumed
    run replays it)."""
    n, total, k = 600, 32, 4
    a = study.mixed_frames(n, total, k, np.random.default_rng(1))
    assert study.READ_MIX == ("uniform", "random")
    assert np.array_equal(a, study.mixed_frames(n, total, k, np.random.default_rng(1)))
    assert a.shape == (n, k) and (np.diff(a, axis=1) > 0).all() and a.min() >= 0 and a.max() < total
    grid_like = np.all((a >= np.arange(k) * 8) & (a < (np.arange(k) + 1) * 8), axis=1)  # one per interval
    # half uniform (one frame per interval); a random set of 4 falls one per interval 8^4/C(32,4) = 11% of the time
    assert 0.5 < grid_like.mean() < 0.62
    assert np.bincount(a.ravel(), minlength=total).min() > 0  # every frame is read sometimes
    middles = study.mixed_frames(n, total, k, np.random.default_rng(2), middles=True)
    grid_rows = np.all(middles == [4, 12, 20, 28], axis=1)
    assert 0.42 < grid_rows.mean() < 0.58  # validation's uniform kind reads the interval middles


def test_pixel_statistic_selectors_take_the_top_frames_of_the_decoded_clip():
    """object_pixels and frame_difference (question-blind) read the split's decoded frames: the frames with the most
    non-background pixels, the frames that differ most from the one before."""
    from vila.data.synthqa import BACKGROUND

    frames = np.empty((1, 32, 8, 8, 3), np.uint8)
    frames[:] = BACKGROUND
    frames[0, [3, 9], :4] = 255  # half the frame lit: most pixels, and a change from the frame before
    frames[0, [10]] = 255  # all of it
    qa = QASplit("val", [{"qid": "q", "keyframes": [9]}], np.arange(1), frames=frames)
    rng = np.random.default_rng(0)
    assert study.choose("object_pixels", 1, qa, None, {}, 32, rng).tolist() == [[10]]
    assert study.choose("object_pixels", 3, qa, None, {}, 32, rng).tolist() == [[3, 9, 10]]
    assert study.choose("frame_difference", 1, qa, None, {}, 32, rng).tolist() == [[11]]  # lit -> dark: all changes
    second = {tuple(study.choose("object_pixels", 2, qa, None, {}, 32, np.random.default_rng(s)).ravel())
              for s in range(20)}
    assert second == {(3, 10), (9, 10)}  # frames 3 and 9 tie: either, at random
    with pytest.raises(ValueError, match="decoded frames"):
        study.choose("frame_difference", 3, split([[1]]), None, {}, 32, rng)
