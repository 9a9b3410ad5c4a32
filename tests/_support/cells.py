"""A small dataset of two synthetic cell types (small dark round, large pale elongated
nuclei) for the object-classifier tests of the app and the browser, and the truth of
the nuclei Explore finds in it."""
from __future__ import annotations

import numpy as np
from PIL import Image

from cellseg_core.data.synthetic import two_type_cells
from cellseg_core.io import read_image
from cellseg_core.measure import region_stats
from cellseg_core.pipeline import segment
from cellseg_core.presets import get_preset

#: Explore's thresholds (on lab02) that find the synthetic nuclei.
VALUES = {"threshold.t_nuc": 0.62, "threshold.t_bg": 0.87}
#: The URL query of image 000 of that dataset with those thresholds.
QUERY = "dataset=cells&image=000&preset=lab02&" + "&".join(f"{k}={v}" for k, v in VALUES.items())


def write_two_type_dataset(root, n: int = 2, *, size: int = 128, noise: float = 0.03):
    """``root/images`` and ``root/masks`` (PNG) of `n` two-type images: (root, samples)."""
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    samples = [two_type_cells(20 + i, size=size, noise=noise) for i in range(n)]
    for i, s in enumerate(samples):
        Image.fromarray(np.round(s.image * 255).astype(np.uint8)).save(
            root / "images" / f"{i:03d}.png")
        Image.fromarray(s.labels).save(root / "masks" / f"{i:03d}.png")
    return root, samples


def found_cells(root, sample, stem: str = "000"):
    """What Explore finds in image `stem` with :data:`VALUES`: ``(image, seg, labels,
    types)``, `types` the true type of the nucleus under each found nucleus's centroid
    (-1 where there is none), in label order."""
    image = read_image(root / "images" / f"{stem}.png")
    seg = segment(image, get_preset("lab02").with_values(VALUES))
    stats = region_stats(seg.nuclei)
    under = sample.nuclei[stats["centroid_row"].round().astype(int),
                          stats["centroid_col"].round().astype(int)]
    types = np.where(under > 0, sample.types[np.maximum(under, 1) - 1], -1)
    return image, seg, stats["label"].to_numpy(), types
