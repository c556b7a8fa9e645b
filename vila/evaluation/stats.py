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
        diff, boot = self.replicates(a, b, metric)
        return diff, interval(boot)

    def replicates(self, a: np.ndarray, b: np.ndarray, metric: str) -> tuple[float, np.ndarray]:
        """(accuracy(a) - accuracy(b) under `metric`, its bootstrap replicates [resamples])."""
        diff = metric_values(a, self.types, metric) - metric_values(b, self.types, metric)
        return diff, self.statistic((a.astype(np.int8) - b.astype(np.int8))[self.idx], metric)

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


def bootstrap_p(boot: np.ndarray) -> float:
    """Two-sided bootstrap p-value of "the difference is 0": twice the smaller share of replicates on either side
    of 0 (at least 1/resamples, never 0)."""
    boot = boot[np.isfinite(boot)]
    below, above = float(np.mean(boot <= 0)), float(np.mean(boot >= 0))
    return float(min(1.0, max(2 * min(below, above), 1.0 / len(boot))))


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm's step-down adjustment of a family of p-values (family-wise error at the nominal level): the k-th
    smallest is multiplied by (m - k + 1), and adjusted values are made monotone."""
    order = np.argsort(pvalues, kind="stable")
    m, adjusted, running = len(pvalues), [0.0] * len(pvalues), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * float(pvalues[i])))
        adjusted[i] = running
    return adjusted


def t_interval(values: Sequence[float], level: float = 0.95) -> tuple[float, tuple[float, float]]:
    """(mean, its Student-t interval) of a few independent values (per-seed differences): mean +- t_{n-1} sd/sqrt(n).
    Exact for normal values whatever their number; the resampling of 3 seeds by a bootstrap is not (its interval is
    set by single seeds: tests/test_stats.py checks both by simulation)."""
    from scipy.stats import t

    x = np.asarray(values, dtype=float)
    if len(x) < 2:
        raise ValueError(f"a t-interval needs at least 2 values, got {len(x)}")
    half = float(t.ppf(0.5 + level / 2, len(x) - 1) * x.std(ddof=1) / np.sqrt(len(x)))
    return float(x.mean()), (float(x.mean()) - half, float(x.mean()) + half)


def magnitude(ci95: Sequence[float], paper: float) -> str:
    """The size of a difference against the paper's: 'consistent' when the interval holds the paper's value,
    'larger' or 'smaller' when it lies wholly above or below it (all in the same units)."""
    if ci95[0] > paper:
        return "larger"
    if ci95[1] < paper:
        return "smaller"
    return "consistent"


def noninferiority(ci95: Sequence[float], margin: float) -> str:
    """A is not worse than B by more than `margin` (set before the run): 'holds' when the interval's lower end is
    above -margin, 'does not hold' when its upper end is below -margin (reliably worse by more), else
    'inconclusive'."""
    if ci95[0] > -margin:
        return "holds"
    if ci95[1] < -margin:
        return "does not hold"
    return "inconclusive"


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
