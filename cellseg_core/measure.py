"""Numbers from labels: class areas, N/C ratios, per-object tables."""
from __future__ import annotations

import numpy as np
import pandas as pd
from skimage.measure import regionprops_table

from .metrics import nc_ratio

__all__ = ["image_summary", "object_table", "OBJECT_COLUMNS"]

_PROPS = ("label", "area", "centroid", "intensity_mean", "equivalent_diameter_area",
          "eccentricity", "solidity")
_RENAME = {"centroid-0": "centroid_row", "centroid-1": "centroid_col",
           "intensity_mean": "mean_intensity", "equivalent_diameter_area": "equivalent_diameter",
           "area": "nucleus_area"}

#: Columns of :func:`object_table`, in order.
OBJECT_COLUMNS = ["label", "nucleus_area", "cytoplasm_area", "cell_area", "nc_ratio",
                  "centroid_row", "centroid_col", "mean_intensity", "equivalent_diameter",
                  "eccentricity", "solidity"]


def object_table(nuclei: np.ndarray, cells: np.ndarray, labels: np.ndarray,
                 intensity: np.ndarray) -> pd.DataFrame:
    """One row per nucleus: its shape, intensity, own cytoplasm and per-cell N/C.

    Parameters
    ----------
    nuclei : (M, N) ndarray of int, nucleus instances
    cells : (M, N) ndarray of int, the cell of each nucleus (same ids), see
        :func:`cellseg_core.instances.assign_cells`
    labels : (M, N) ndarray of uint8, classes 0/1/2
    intensity : (M, N) ndarray of float, the channel whose mean is reported

    Returns
    -------
    pandas.DataFrame with :data:`OBJECT_COLUMNS`; per-cell N/C is NaN for a cell
    without cytoplasm.
    """
    if not nuclei.any():
        return pd.DataFrame({c: pd.Series(dtype=float) for c in OBJECT_COLUMNS})
    props = regionprops_table(nuclei, intensity_image=intensity, properties=_PROPS)
    table = pd.DataFrame(props).rename(columns=_RENAME)
    ids = table["label"].to_numpy()
    cytoplasm = np.bincount(cells[labels == 1].ravel(), minlength=int(nuclei.max()) + 1)[ids]
    table["cytoplasm_area"] = cytoplasm
    table["cell_area"] = table["nucleus_area"] + cytoplasm
    with np.errstate(divide="ignore", invalid="ignore"):
        table["nc_ratio"] = np.where(cytoplasm > 0, table["nucleus_area"] / np.maximum(cytoplasm, 1),
                                     np.nan)
    return table[OBJECT_COLUMNS]


def image_summary(labels: np.ndarray, nuclei: np.ndarray) -> dict:
    """Per-image numbers: class areas, N/C ratio, nucleus count.

    `nuclei` must be numbered 1..n, as every instance function of the engine returns.
    """
    counts = np.bincount(labels.ravel(), minlength=3)
    return {
        "background_area": int(counts[0]),
        "cytoplasm_area": int(counts[1]),
        "nucleus_area": int(counts[2]),
        "nc_ratio": nc_ratio(labels),
        "n_nuclei": int(nuclei.max(initial=0)),  # instances are numbered 1..n
    }
