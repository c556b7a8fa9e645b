"""Training-time pixel augmentation (real-data option; the embedded profile trains from the cache).

The released code trains with a random resized crop (scale 0.5-1.0) on every frame it decodes. That
rules out a frozen-ViT feature cache, so it is a param: `data.augment: random_resized_crop` trains
from the decoded frames and runs the frozen ViT every step; `none` trains from cached features.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F


def random_resized_crop(
    frames: torch.Tensor, rng: np.random.Generator, scale: tuple[float, float] = (0.5, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
) -> torch.Tensor:
    """uint8 clips [B, T, H, W, 3] -> the same shape; one crop per clip (all its frames alike)."""
    b, t, h, w, c = frames.shape
    out = torch.empty_like(frames)
    for i in range(b):
        area = h * w * rng.uniform(*scale)
        aspect = math.exp(rng.uniform(math.log(ratio[0]), math.log(ratio[1])))
        ch = int(round(min(h, math.sqrt(area / aspect))))
        cw = int(round(min(w, math.sqrt(area * aspect))))
        top = int(rng.integers(0, h - ch + 1))
        left = int(rng.integers(0, w - cw + 1))
        crop = frames[i, :, top : top + ch, left : left + cw].permute(0, 3, 1, 2).float()
        resized = F.interpolate(crop, size=(h, w), mode="bilinear", align_corners=False, antialias=True)
        out[i] = resized.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1)
    return out
