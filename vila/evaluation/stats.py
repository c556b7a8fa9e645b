"""Paired statistics of two models answering the same questions: a bootstrap interval of the accuracy difference
(resampling questions, both models together), the exact McNemar test, and a claim's verdict.

Two models' answers to one question are correlated (the same clip, the same difficulty), so the uncertainty of a
difference is far smaller than that of either accuracy: resampling pairs keeps that correlation. One set of
resampled question indices serves every comparison (common random numbers), so intervals are consistent.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def resample_indices(n: int, resamples: int, seed: int) -> np.ndarray:
    """[resamples, n] question indices drawn with replacement."""
    return np.random.default_rng(seed).integers(0, n, size=(resamples, n))


def metric_values(correct: np.ndarray, types: Sequence[str], metric: str) -> float:
    """Accuracy of boolean answers `correct` [n] under `metric`: overall | mean (of the types) | one type."""
    types = np.asarray(types)
    if metric == "overall":
        return float(correct.mean())
    names = sorted(set(types.tolist())) if metric == "mean" else [metric]
    return float(np.mean([correct[types == name].mean() for name in names]))


class Resamples:
    """One set of questions resampled with replacement (a paired bootstrap: both models' answers to a question
    move together), with each type's masks precomputed, for every comparison of a report at once."""

    def __init__(self, types: Sequence[str], resamples: int, seed: int) -> None:
        self.types = np.asarray(types)
        self.idx = resample_indices(len(self.types), resamples, seed)
        self.names = sorted(set(self.types.tolist()))
        resampled = self.types[self.idx]
        self.masks = {name: resampled == name for name in self.names}
        self.counts = {name: m.sum(axis=1) for name, m in self.masks.items()}

    def paired(self, a: np.ndarray, b: np.ndarray, metric: str) -> tuple[float, tuple[float, float]]:
        """(accuracy(a) - accuracy(b) under `metric`, its 95% percentile interval over the resamples)."""
        diff = metric_values(a, self.types, metric) - metric_values(b, self.types, metric)
        return diff, interval(self.statistic((a.astype(np.int8) - b.astype(np.int8))[self.idx], metric))

    def statistic(self, resampled: np.ndarray, metric: str) -> np.ndarray:
        """[resamples] the metric of per-question values already resampled by self.idx ([resamples, n])."""
        if metric == "overall":
            return resampled.mean(axis=1)

        def per_type(name: str) -> np.ndarray:
            count = self.counts[name]
            return np.where(count > 0, (resampled * self.masks[name]).sum(axis=1) / np.maximum(count, 1), np.nan)

        return np.nanmean(np.stack([per_type(n) for n in self.names]), axis=0) if metric == "mean" else per_type(metric)

    def pooled(self, a: np.ndarray, b: np.ndarray, metric: str, seed: int) -> tuple[float, tuple[float, float]]:
        """Over training seeds: a, b [S, n] (seed s's answers to the same n questions). (The mean over seeds of the
        paired difference under `metric`, its 95% two-level bootstrap interval.) Each resample draws S seeds with
        replacement, then the questions (this object's draw), and averages the drawn seeds' differences on those
        questions. The questions are drawn once per resample for every seed: the test split is one fixed sample
        that every seed answers, so its sampling error does not average out over seeds."""
        d = a.astype(np.int8) - b.astype(np.int8)  # [S, n]
        n_seeds, n = d.shape
        diff = float(np.mean([metric_values(a[s], self.types, metric) - metric_values(b[s], self.types, metric)
                              for s in range(n_seeds)]))
        drawn = np.random.default_rng(seed).integers(0, n_seeds, size=(len(self.idx), n_seeds))
        weight = np.stack([np.bincount(row, minlength=n_seeds) for row in drawn]) / n_seeds  # [R, S]
        # each question's difference averaged over the drawn seeds (exact: every seed scores the same questions)
        per_question = weight @ d  # [R, n]
        return diff, interval(self.statistic(np.take_along_axis(per_question, self.idx, axis=1), metric))


def interval(boot: np.ndarray) -> tuple[float, float]:
    """The 95% percentile interval of bootstrap replicates."""
    lo, hi = np.nanpercentile(boot, [2.5, 97.5])
    return float(lo), float(hi)


def mcnemar_exact(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sided exact McNemar p-value: under H0 the discordant questions split 50/50 between the two models."""
    only_a, only_b = int((a & ~b).sum()), int((~a & b).sum())
    n, k = only_a + only_b, min(only_a, only_b)
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(k + 1))
    return min(1.0, 2 * tail / 2**n)


def verdict(ci95: tuple[float, float], direction: float = 1.0, seed_diffs: Sequence[float] = ()) -> str:
    """'holds' when the interval excludes zero in the claimed direction (and every seed's difference, where the
    seed study exists, points that way); 'does not hold' when it excludes zero the other way; else 'inconclusive'."""
    lo, hi = (ci95[0] * direction, ci95[1] * direction)
    lo, hi = min(lo, hi), max(lo, hi)
    if lo > 0 and all(d * direction > 0 for d in seed_diffs):
        return "holds"
    if hi < 0:
        return "does not hold"
    return "inconclusive"


def key_frame_auc(scores: np.ndarray, key_frames: list[int] | np.ndarray) -> float:
    """How well one question's frame scores rank its key frames above the others: the probability that a key
    frame scores higher than a non-key frame, ties counting half (the ROC AUC, Mann-Whitney's U / (n_key *
    n_other)). 0.5 = no better than chance; nan when every frame, or none, is a key frame."""
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 1 or not np.isfinite(scores).all():
        raise ValueError(f"scores: expected one finite score per frame, got shape {scores.shape}")
    key = np.zeros(len(scores), dtype=bool)
    idx = np.asarray(key_frames, dtype=np.int64)
    if idx.size and (idx.min() < 0 or idx.max() >= len(scores)):
        raise ValueError(f"key frames {idx.tolist()} outside the {len(scores)} scored frames")
    key[idx] = True
    n_key, n_other = int(key.sum()), int((~key).sum())
    if n_key == 0 or n_other == 0:
        return float("nan")
    # Every (key, other) pair compared: T is a few dozen frames, so the T^2 comparisons are cheaper than ranking.
    diff = scores[key][:, None] - scores[~key][None, :]
    return float(((diff > 0) + 0.5 * (diff == 0)).mean())
