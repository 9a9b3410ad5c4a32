"""Small synthetic training sets with exact masks, for the learned models' tests (and the
golden model files of tests/data, written from them)."""
from __future__ import annotations

import numpy as np


def toy_set(n=4, size=48, seed=0, *, nucleus_div=10, tint=(1.0, 0.9, 1.0)):
    """Bright background, a mid-gray cell, a dark nucleus (radius ``size / nucleus_div``),
    RGB scaled by `tint`, with noise: exact masks."""
    rng = np.random.default_rng(seed)
    images, masks = [], []
    rows, cols = np.mgrid[:size, :size]
    for _ in range(n):
        r, c = rng.integers(size // 3, 2 * size // 3, 2)
        dist = np.hypot(rows - r, cols - c)
        mask = np.where(dist < size / 4, 1, 0).astype(np.uint8)
        mask[dist < size / nucleus_div] = 2
        level = np.array([0.9, 0.6, 0.25], np.float32)[mask]
        image = np.clip(level[..., None] * list(tint) + rng.normal(0, 0.04, mask.shape + (3,)),
                        0, 1).astype(np.float32)
        images.append(image)
        masks.append(mask)
    return images, masks
