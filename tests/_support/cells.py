"""A small dataset of two synthetic cell types (small dark round, large pale elongated
nuclei) for the object-classifier tests of the app and the browser, and the truth of
the nuclei Explore finds in it."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
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


#: The class names :func:`write_classified_dataset` gives types 0 and 1.
CLASS_NAMES = ("lymphocyte", "tumour")


def write_classified_dataset(root, n: int = 5, *, size: int = 128, n_train: int = 3):
    """A dataset for ``cellseg train --method objects``: ``images/``, ``masks/``,
    ``labels/`` (instances), ``classes/<stem>.csv`` (every nucleus, types named
    :data:`CLASS_NAMES`) and ``split.json`` (the first `n_train` images train)."""
    for folder in ("images", "masks", "labels", "classes"):
        (root / folder).mkdir(parents=True)
    for i in range(n):
        s = two_type_cells(10 + i, size=size, noise=0.05)
        stem = f"{i:03d}"
        Image.fromarray(np.round(s.image * 255).astype(np.uint8)).save(
            root / "images" / f"{stem}.png")
        Image.fromarray(s.labels).save(root / "masks" / f"{stem}.png")
        Image.fromarray(s.nuclei.astype(np.uint16)).save(root / "labels" / f"{stem}.png")
        pd.DataFrame({"label": np.arange(1, s.types.size + 1),
                      "class": np.array(CLASS_NAMES)[s.types]}).to_csv(
            root / "classes" / f"{stem}.csv", index=False)
    stems = [f"{i:03d}" for i in range(n)]
    (root / "split.json").write_text(json.dumps({"train": stems[:n_train],
                                                 "test": stems[n_train:]}))
    return root
