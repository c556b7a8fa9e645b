"""Frame selectors that need no training: each picks k of a clip's T sampled frames, distinct, in time order.

`uniform` and `random` ignore the question; `oracle` reads the benchmark's ground-truth key frames (the
ceiling of selection); the others read a per-frame relevance score s[0..T-1] of the question (higher = more
relevant) and differ in how they trade relevance against coverage:
- `topk`: the k highest scores (all relevance; neighbouring near-duplicates are all taken);
- `inverse_transform` (BOLT, CVPR 2025): the scores, sharpened by an exponent, as a distribution over time;
  the frames at its k evenly spaced quantiles. Flat scores give the uniform grid; a peak draws frames to it in
  proportion to its mass;
- `segment_argmax` (ViLA's Frame-Prompter as released): the clip cut into k equal segments, the best frame
  of each (one frame per segment: coverage by construction);
- `adaptive_split` (AKS, CVPR 2025): judge and split. A segment keeps its top-m frames when its best m
  stand out (mean of the top m minus the segment's mean >= threshold); otherwise it is halved and each half
  gets half the budget (an odd budget's extra frame to the half with the higher best score, the earlier half
  on a tie), down to `depth` splits, where the top frames of each part are taken.
Ties go to the earlier frame, so every rule is deterministic given its scores.
"""

from __future__ import annotations

import numpy as np

from vila.data.sampling import uniform_indices


def uniform(total: int, k: int) -> np.ndarray:
    """The middle frame of each of k equal intervals (the uniform-k models' grid)."""
    _check(total, k)
    return uniform_indices(total, k, None, 1)[0]


def random_frames(total: int, k: int, rng: np.random.Generator) -> np.ndarray:
    _check(total, k)
    return np.sort(rng.choice(total, size=k, replace=False))


def oracle(key_frames: list[int] | np.ndarray, total: int, k: int) -> np.ndarray:
    """The ground-truth key frames; more than k: k of them evenly spread over the list; fewer: completed from
    the uniform grid, with the middles of the grid intervals that hold no key frame (evenly spread over those)."""
    _check(total, k)
    keys = np.unique(np.asarray(key_frames, dtype=np.int64))
    if keys.size and (keys.min() < 0 or keys.max() >= total):
        raise ValueError(f"key frames {keys.tolist()} outside 0..{total - 1}")
    if keys.size >= k:
        return keys[uniform(keys.size, k)]
    empty = np.setdiff1d(np.arange(k), keys * k // total)  # grid intervals without a key frame
    fill = uniform(total, k)[empty[uniform(empty.size, k - keys.size)]]
    return np.sort(np.concatenate([keys, fill]))


def topk(scores: np.ndarray, k: int) -> np.ndarray:
    scores = _scores(scores, k)
    return np.sort(np.argsort(-scores, kind="stable")[:k])


def segment_argmax(scores: np.ndarray, k: int) -> np.ndarray:
    """The highest score of each of k equal segments (T divisible by k, as the Prompter's segment mode needs)."""
    scores = _scores(scores, k)
    if len(scores) % k:
        raise ValueError(f"segment selection: {len(scores)} frames do not split into {k} equal segments")
    width = len(scores) // k
    return np.array([s * width + int(np.argmax(scores[s * width:(s + 1) * width])) for s in range(k)], dtype=np.int64)


def inverse_transform(scores: np.ndarray, k: int, exponent: float = 1.0) -> np.ndarray:
    """BOLT's inverse transform sampling: p(t) proportional to (s[t] - min s)^exponent (flat when all equal);
    frame i is the one that holds the (i + 1/2) / k quantile. A frame hit twice gives its place to the
    nearest unused frame, so k distinct frames come back."""
    scores = _scores(scores, k)
    mass = (scores - scores.min()) ** exponent
    if not mass.any():  # flat scores: exactly the uniform grid (cumulative sums would round at its boundaries)
        return uniform(len(scores), k)
    cumulative = np.cumsum(mass)
    # frame t holds the mass [cumulative[t-1], cumulative[t]): the first frame whose cumulative mass exceeds
    # the quantile (unnormalised, so that integer masses meet their quantiles exactly)
    quantiles = (2 * np.arange(k) + 1) * cumulative[-1] / (2 * k)
    picks = np.searchsorted(cumulative, quantiles, side="right").clip(0, len(scores) - 1)
    chosen: set[int] = set()
    for p in picks:
        chosen.add(int(p) if int(p) not in chosen else _nearest_unused(int(p), chosen, len(scores)))
    return np.array(sorted(chosen), dtype=np.int64)


def adaptive_split(scores: np.ndarray, k: int, depth: int = 3, threshold: float = 0.1) -> np.ndarray:
    """AKS's judge-and-split over [0, T) with budget k (see the module docstring)."""
    scores = _scores(scores, k)

    def pick(lo: int, hi: int, m: int, level: int) -> list[int]:
        if m == 0:
            return []
        seg = scores[lo:hi]
        best = np.argsort(-seg, kind="stable")[:m]
        stands_out = seg[best].mean() - seg.mean() >= threshold
        if stands_out or level == depth or m == 1 or hi - lo < 2:
            return [lo + int(i) for i in best]
        mid = (lo + hi) // 2
        left = m // 2 if m % 2 == 0 else m // 2 + (1 if scores[lo:mid].max() >= scores[mid:hi].max() else 0)
        left = min(max(left, m - (hi - mid)), mid - lo)  # no part asked for more frames than it has
        return pick(lo, mid, left, level + 1) + pick(mid, hi, m - left, level + 1)

    return np.array(sorted(pick(0, len(scores), k, 0)), dtype=np.int64)


def _check(total: int, k: int) -> None:
    if not 0 < k <= total:
        raise ValueError(f"cannot pick {k} distinct frames of {total}")


def _finite(scores: np.ndarray) -> np.ndarray:
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 1 or not np.isfinite(scores).all():
        raise ValueError(f"scores: expected one finite score per frame, got shape {scores.shape}")
    return scores


def _scores(scores: np.ndarray, k: int) -> np.ndarray:
    scores = _finite(scores)
    _check(len(scores), k)
    return scores


def _nearest_unused(position: int, used: set[int], total: int) -> int:
    for step in range(total):
        for candidate in (position - step, position + step):
            if 0 <= candidate < total and candidate not in used:
                return candidate
    raise ValueError("no unused frame left")
