"""What a person reads: column names in words, file names that say what they hold, and
upload names that cannot collide.

The CSV files keep their machine column names (``nc_ratio``, ``mean_dice``: the CLI
writes the same, scripts read them); tables on screen show :data:`COLUMN_LABELS`, and
the README's column dictionary is :func:`column_dictionary_markdown` (a test keeps the
two the same).
"""
from __future__ import annotations

import datetime as _dt
import re
from pathlib import PurePath

import pandas as pd

__all__ = ["COLUMN_LABELS", "UNIT_TWINS", "column_label", "readable", "column_dictionary_markdown", "download_name",
           "params_label", "unique_upload_names"]

#: Machine column name (CSV header) -> (label on screen, meaning for the README).
COLUMN_LABELS: dict[str, tuple[str, str]] = {
    "image": ("Image", "image id or file stem"),
    "file": ("File", "the input file (or dataset id) the row came from"),
    "id": ("Image", "image id in the dataset"),
    "status": ("Status", "`ok`, or `failed` with the reason in the failures list"),
    "label": ("Cell #", "the nucleus's instance label in `nuclei/<stem>.tif`"),
    "height": ("Height (px)", "image height in pixels"),
    "width": ("Width (px)", "image width in pixels"),
    "background_area": ("Background (px)", "pixels labelled background"),
    "nucleus_area": ("Nucleus area (px)", "nucleus pixels (of the cell, or of the image)"),
    "cytoplasm_area": ("Cytoplasm area (px)",
                       "cytoplasm pixels (nearest to that nucleus, or of the image)"),
    "cell_area": ("Cell area (px)", "nucleus + cytoplasm of the cell"),
    "nc_ratio": ("N/C ratio", "nucleus area / cytoplasm area"),
    "centroid_row": ("Centre row", "row of the nucleus's centre (pixels from the top)"),
    "centroid_col": ("Centre column", "column of the nucleus's centre (pixels from the left)"),
    "mean_intensity": ("Mean intensity", "mean image intensity over the nucleus (0-1)"),
    "equivalent_diameter": ("Diameter (px)",
                            "diameter of the disc with the nucleus's area"),
    "eccentricity": ("Eccentricity", "0 for a circle, towards 1 for an elongated nucleus"),
    "solidity": ("Solidity", "nucleus area / area of its convex hull"),
    "n_nuclei": ("Nuclei", "number of nuclei found"),
    "n_cells": ("Cells", "number of cells (nuclei with cytoplasm)"),
    "t_nuc": ("Nucleus threshold", "intensity below which a pixel is nucleus"),
    "t_bg": ("Background threshold", "intensity above which a pixel is background"),
    "t_object": ("Object threshold", "fluorescence: intensity above which a pixel is an object"),
    "has_mask": ("Has ground truth", "a ground-truth mask was found for the image"),
    "mean_dice": ("Mean Dice", "Dice of cytoplasm and nucleus, averaged (1 = perfect)"),
    "dice_cytoplasm": ("Dice cytoplasm", "overlap of predicted and true cytoplasm"),
    "dice_nucleus": ("Dice nucleus", "overlap of predicted and true nucleus"),
    "iou_cytoplasm": ("IoU cytoplasm", "intersection over union, cytoplasm"),
    "iou_nucleus": ("IoU nucleus", "intersection over union, nucleus"),
    "mean_iou": ("Mean IoU", "IoU of cytoplasm and nucleus, averaged"),
    "pixel_accuracy": ("Pixel accuracy", "share of pixels with the true class"),
    "nc_pred": ("N/C predicted", "N/C ratio of the segmentation"),
    "nc_true": ("N/C true", "N/C ratio of the ground truth"),
    "nc_error": ("N/C error", "predicted minus true N/C ratio"),
    "seconds": ("Seconds", "time to segment and score the image"),
    "warnings": ("Warnings", "what the engine noted about the image"),
    "pixel_size_um": ("Pixel size (µm)", "micrometres per pixel, when known"),
    "pixel_size_source": ("Pixel size from", "where the pixel size came from: user, "
                          "dataset.json, image file or unknown"),
    "nucleus_cell_ratio": ("Nucleus / cell", "nucleus area / (nucleus + cytoplasm) area"),
    "nucleus_cell_ratio_pred": ("Nucleus / cell predicted", "nucleus / cell of the "
                                "segmentation"),
    "nucleus_cell_ratio_true": ("Nucleus / cell true", "nucleus / cell of the ground truth"),
    "nucleus_cell_ratio_error": ("Nucleus / cell error", "predicted minus true nucleus / cell"),
    "n_flag_atypia": ("Cells flagged atypia", "cells whose nucleus / cell reaches the "
                      "atypia cut-off"),
    "n_flag_high_grade": ("Cells flagged high grade", "cells whose nucleus / cell reaches "
                          "the high-grade cut-off"),
    "flag_atypia": ("Atypia flag", "the cell's nucleus / cell reaches the atypia cut-off"),
    "flag_high_grade": ("High-grade flag", "the cell's nucleus / cell reaches the "
                        "high-grade cut-off"),
    "nucleus_od": ("Nucleus optical density", "mean optical density over the nucleus"),
    "cytoplasm_od": ("Cytoplasm optical density", "mean optical density over the cytoplasm"),
    "od_ratio": ("Optical density ratio", "nucleus optical density / cytoplasm's"),
    "convexity_deficit": ("Convexity deficit", "1 - solidity: how far the outline is "
                          "from convex"),
    "glcm_contrast": ("Texture contrast", "grey-level co-occurrence contrast of the nucleus"),
    "glcm_entropy": ("Texture entropy", "grey-level co-occurrence entropy of the nucleus"),
}

#: Suffixes of a column's twin in physical units: ``nucleus_area_um2`` is
#: ``nucleus_area`` in µm² (empty without a pixel size).
UNIT_TWINS = {"_um2": "µm²", "_um": "µm"}


def column_label(name: str) -> str:
    """The words a page shows for CSV column `name` (the name itself when unknown).

    Examples
    --------
    >>> column_label("nc_ratio"), column_label("nucleus_area_um2"), column_label("other")
    ('N/C ratio', 'Nucleus area (µm²)', 'other')
    """
    if name in COLUMN_LABELS:
        return COLUMN_LABELS[name][0]
    for suffix, unit in UNIT_TWINS.items():
        base = name.removesuffix(suffix)
        if base != name and base in COLUMN_LABELS:
            return COLUMN_LABELS[base][0].replace("(px)", f"({unit})")
    return name


def readable(table: pd.DataFrame) -> pd.DataFrame:
    """`table` with its machine column names replaced by their labels (for display).

    Columns not in :data:`COLUMN_LABELS` keep their names; the input is not modified.

    Examples
    --------
    >>> readable(pd.DataFrame({"nc_ratio": [0.5], "other": [1]})).columns.tolist()
    ['N/C ratio', 'other']
    """
    return table.rename(columns={c: column_label(c) for c in table.columns})


def column_dictionary_markdown() -> str:
    """The README's column dictionary: one Markdown table row per CSV column.

    Examples
    --------
    >>> column_dictionary_markdown().splitlines()[0]
    '| CSV column | shown as | meaning |'
    """
    rows = ["| CSV column | shown as | meaning |", "| --- | --- | --- |"]
    rows += [f"| `{key}` | {label} | {meaning} |"
             for key, (label, meaning) in COLUMN_LABELS.items()]
    rows += [f"| `…{suffix}` | … ({unit}) | the column before the suffix in {unit} "
             "(empty without a pixel size) |" for suffix, unit in UNIT_TWINS.items()]
    return "\n".join(rows)


def _part(text) -> str:
    """`text` as a piece of a file name: letters, digits, ``.``, ``-`` and ``_`` only."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", str(text)).strip("._")


def download_name(what: str, ext: str, *, image: str | None = None,
                  method: str | None = None, when=None) -> str:
    """A download's file name that says what it holds: ``<image>_<method>_<date>_<what>.<ext>``.

    The one naming rule of the app's downloads (:func:`app_support.exports.download_name`
    uses it too).

    Parameters
    ----------
    what : str
        The content (``labels``, ``cells``, ``params``...).
    ext : str
        The extension, without the dot.
    image, method : str, optional
        The image and the method it came from (left out when None or empty).
    when : datetime.date or str, optional
        Default: today (UTC).

    Examples
    --------
    >>> import datetime
    >>> download_name("cells", "csv", image="voced/007", method="lab02",
    ...               when=datetime.date(2026, 12, 2))
    'voced_007_lab02_2026-12-02_cells.csv'
    >>> download_name("params", "json", when="2026-01-05")
    '2026-01-05_params.json'
    """
    if when is None:
        when = _dt.datetime.now(_dt.timezone.utc).date()
    day = when.isoformat() if isinstance(when, _dt.date) else str(when)
    parts = [_part(p) for p in (image, method) if p] + [day, _part(what)]
    return "_".join(p for p in parts if p) + f".{ext}"


def params_label(preset: str, params, preset_params) -> str:
    """The method's name in a file name: the preset's, ``-edited`` when `params` differ.

    Examples
    --------
    >>> params_label("lab02", 1, 1), params_label("lab02", 1, 2)
    ('lab02', 'lab02-edited')
    """
    return preset if params == preset_params else f"{preset}-edited"


def unique_upload_names(names) -> tuple[list[str], list[tuple[str, str]]]:
    """File names whose stems are all different: a later file with a stem already taken
    gets ``-2``, ``-3``... before its extension (the outputs are named by stem).

    Returns the names and the (original, new) pairs of the renamed ones.

    Examples
    --------
    >>> unique_upload_names(["a.png", "a.tif", "b.png", "a.png"])
    (['a.png', 'a-2.tif', 'b.png', 'a-3.png'], [('a.tif', 'a-2.tif'), ('a.png', 'a-3.png')])
    """
    taken, out, renamed = set(), [], []
    for name in names:
        path = PurePath(name)
        stem, new, k = path.stem, path.name, 1
        while stem in taken:
            k += 1
            stem = f"{path.stem}-{k}"
            new = stem + path.suffix
        taken.add(stem)
        out.append(new)
        if new != path.name:
            renamed.append((path.name, new))
    return out, renamed
