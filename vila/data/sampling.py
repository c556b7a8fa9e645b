"""Uniform frame sampling over a clip's decoded grid: the one definition every model, report and speed
measurement uses (the decoder places the grid itself over [start, end] seconds: video.grid_indices)."""

from __future__ import annotations

import numpy as np


def uniform_indices(total: int, count: int, rng: np.random.Generator | None, batch: int) -> np.ndarray:
    """[batch, count] frame indices: one per equal interval; random within it (training) or the middle."""
    width = total / count
    starts = np.arange(count) * width
    if rng is None:
        idx = np.floor(starts + width / 2).astype(np.int64)
        return np.broadcast_to(idx, (batch, count)).copy()
    return np.floor(starts[None] + rng.random((batch, count)) * width).astype(np.int64)
