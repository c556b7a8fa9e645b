"""The training-free frame selectors (vila/selection/rules.py) on constructed cases whose answers are known."""

import numpy as np
import pytest

from vila.evaluation.stats import key_frame_auc
from vila.selection import rules as selection
from vila.selection.registry import score_source


def test_oracle_returns_the_key_frames_padded_from_the_uniform_grid():
    assert selection.oracle([5, 20], 32, 2).tolist() == [5, 20]
    # grid 4, 12, 20, 28 over intervals of 8 frames: 9 takes the second interval's place
    assert selection.oracle([9], 32, 4).tolist() == [4, 9, 20, 28]
    # two key frames in the first interval: the other two frames from the three empty intervals, spread (1st, 3rd)
    assert selection.oracle([1, 2], 32, 4).tolist() == [1, 2, 12, 28]
    # more key frames than the budget: evenly spread over them
    assert selection.oracle([0, 1, 2, 3, 4, 5, 6, 7], 32, 2).tolist() == [2, 6]


def test_inverse_transform_of_flat_scores_is_the_uniform_grid_and_follows_the_mass():
    assert selection.inverse_transform(np.ones(32), 4).tolist() == selection.uniform(32, 4).tolist() == [4, 12, 20, 28]
    for total in range(1, 65):
        for k in range(1, total + 1):
            assert selection.inverse_transform(np.full(total, 0.3), k).tolist() == selection.uniform(total, k).tolist()
    # integer masses meet their quantiles exactly: two steps of 5 frames each over 10 frames -> one per interval
    assert selection.inverse_transform(np.r_[np.zeros(1), np.ones(10)], 5).tolist() == [2, 4, 6, 8, 10]
    # all mass on frames 10..13 (equal): quantiles 1/8, 3/8, 5/8, 7/8 of four equal steps -> 10, 11, 12, 13
    scores = np.zeros(32)
    scores[10:14] = 1.0
    assert selection.inverse_transform(scores, 4).tolist() == [10, 11, 12, 13]
    # half the mass on frame 3, half spread over 16..31: two quantiles land on 3 (the second moves to the
    # nearest unused frame, the earlier on a tie: 2), two at the 1/4 and 3/4 points of 16..31's mass (20, 28)
    scores = np.zeros(32)
    scores[3], scores[16:] = 16.0, 1.0
    assert selection.inverse_transform(scores, 4).tolist() == [2, 3, 20, 28]
    # a larger exponent sharpens: only the peak counts
    scores = np.linspace(0, 1, 32)
    assert selection.inverse_transform(scores, 2, exponent=8.0).tolist()[-1] == 31


def test_adaptive_split_keeps_standing_out_frames_and_splits_a_flat_clip():
    flat = np.full(32, 0.5)
    # nothing stands out: split down to depth 2 (four quarters of 8 frames), the first frame of each (ties: earliest)
    assert selection.adaptive_split(flat, 4, depth=2, threshold=0.1).tolist() == [0, 8, 16, 24]
    # four frames in one place stand out: taken as they are (relevance over coverage)
    peaked = flat.copy()
    peaked[[3, 4, 5, 6]] = 1.0
    assert selection.adaptive_split(peaked, 4, depth=2, threshold=0.1).tolist() == [3, 4, 5, 6]
    # with a threshold they do not reach, coverage wins: each half gets two frames, its own best first
    assert selection.adaptive_split(peaked, 4, depth=1, threshold=0.9).tolist() == [3, 4, 16, 17]


@pytest.mark.parametrize("k", [2, 4])
def test_every_selector_returns_k_distinct_frames_in_time_order(k):
    rng = np.random.default_rng(0)
    for _ in range(50):
        scores = rng.random(32) ** rng.integers(1, 6)
        keys = rng.choice(32, size=rng.integers(0, 7), replace=False)
        for picked in (selection.uniform(32, k), selection.random_frames(32, k, rng), selection.oracle(keys, 32, k),
                       selection.topk(scores, k), selection.inverse_transform(scores, k, exponent=3.0),
                       selection.adaptive_split(scores, k, depth=3, threshold=0.05)):
            assert len(picked) == k and len(set(picked.tolist())) == k
            assert (np.diff(picked) > 0).all() and picked.min() >= 0 and picked.max() < 32


def test_bad_scores_and_budgets_are_errors():
    with pytest.raises(ValueError, match="one finite score per frame"):
        selection.topk(np.array([1.0, np.nan, 0.0]), 1)
    with pytest.raises(ValueError, match="cannot pick 5 distinct frames of 4"):
        selection.uniform(4, 5)
    with pytest.raises(ValueError, match="outside 0..31"):
        selection.oracle([40], 32, 4)


def _rank_sum_auc(scores, keys):
    """An independent route: Mann-Whitney's U from the rank sum of the key frames (tied scores share their mean
    rank), divided by n_key * n_other."""
    ranks = {v: np.mean([r + 1 for r, x in enumerate(sorted(scores)) if x == v]) for v in set(scores)}
    n_key, n_other = len(keys), len(scores) - len(keys)
    u = sum(ranks[scores[k]] for k in keys) - n_key * (n_key + 1) / 2
    return u / (n_key * n_other)


def test_key_frame_auc_matches_the_rank_sum_statistic_with_ties():
    assert key_frame_auc(np.array([0.0, 1.0, 0.0, 0.0]), [1]) == 1.0
    assert key_frame_auc(np.array([1.0, 0.0, 1.0, 1.0]), [1]) == 0.0
    assert key_frame_auc(np.ones(8), [2, 5]) == 0.5
    rng = np.random.default_rng(0)
    for _ in range(50):
        scores = rng.integers(0, 4, size=12).astype(float)  # small integers: many ties
        keys = sorted(rng.choice(12, size=int(rng.integers(1, 11)), replace=False).tolist())
        assert key_frame_auc(scores, keys) == pytest.approx(_rank_sum_auc(scores, keys), abs=1e-12)


def test_key_frame_auc_is_undefined_without_both_classes_and_refuses_bad_input():
    assert np.isnan(key_frame_auc(np.arange(4.0), []))
    assert np.isnan(key_frame_auc(np.arange(4.0), [0, 1, 2, 3]))
    with pytest.raises(ValueError, match="outside"):
        key_frame_auc(np.arange(4.0), [4])
    with pytest.raises(ValueError, match="finite"):
        key_frame_auc(np.array([0.0, np.nan]), [0])


def test_segment_argmax_takes_the_best_frame_of_each_equal_segment():
    scores = np.zeros(32)
    scores[[3, 9, 30]] = [1.0, 2.0, 0.5]  # segments of 8: 0-7, 8-15, 16-23, 24-31; 16-23 all tied: its first frame
    assert selection.segment_argmax(scores, 4).tolist() == [3, 9, 16, 30]
    assert selection.segment_argmax(scores, 2).tolist() == [9, 30]
    with pytest.raises(ValueError, match="do not split into 3 equal segments"):
        selection.segment_argmax(scores, 3)


def test_vila_prompter_reads_the_k_frame_students_scores_where_there_is_one():
    params = {"variants": {"vila_4f": {}, "vila_2f": {"select": 2}, "vila_4f_fast": {}}}
    assert score_source("vila_prompter", 2, params) == "vila_2f"  # the 2-frame student at k = 2
    del params["variants"]["vila_2f"]
    assert score_source("vila_prompter", 2, params) == "vila_4f"  # else the 4-frame one's scores


def test_every_selector_is_one_registry_entry_the_schema_and_the_study_agree_on():
    """The schema's enum is the registry's names (validation cannot accept a selector the study lacks, nor refuse
    one it has); each entry's rule exists where its kind looks it up."""
    from vila.config import load_schema
    from vila.data.synthqa import BLIND_STATISTICS
    from vila.selection.registry import KINDS, SELECTORS

    enum = load_schema()["properties"]["selection"]["properties"]["selectors"]["items"]["enum"]
    assert enum == list(SELECTORS)
    for entry in SELECTORS.values():
        assert entry.kind in KINDS, entry.name
        if entry.kind == "pixels":
            assert entry.rule in BLIND_STATISTICS, entry.name
        if entry.kind == "scores":
            assert entry.scores is not None and (entry.rule is None or callable(getattr(selection, entry.rule))), entry.name


def test_a_selector_picks_by_its_kind():
    """choose() on one constructed split: the grid, the ground truth, and a score rule with its grid setting."""
    from vila.selection.study import choose

    split = type("Split", (), {"__len__": lambda self: 1, "items": [{"keyframes": [5, 20]}], "frames": None,
                               "rows": [0], "name": "test"})()
    assert choose("uniform", 4, split, None, {}, 32).tolist() == [[4, 12, 20, 28]]
    assert choose("oracle", 2, split, None, {}, 32).tolist() == [[5, 20]]
    scores = np.zeros((1, 32))
    scores[0, [3, 9, 30]] = [1.0, 2.0, 0.5]
    assert choose("similarity_topk", 2, split, scores, {}, 32).tolist() == [[3, 9]]
    assert choose("sevila_localizer", 2, split, scores, {}, 32, model_rule="segment_argmax").tolist() == [[9, 30]]
    with pytest.raises(ValueError, match="needs frame scores"):
        choose("sevila_localizer", 2, split, scores, {}, 32)
