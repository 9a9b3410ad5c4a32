"""One-page reports (HTML, printable) of an image or of a batch run.

A report is a single self-contained HTML file: the overlay thumbnail is an inline
base64 PNG, the style sheet is inline and prints on one A4 page for an image. It holds
the numbers with their written definitions, the flagged-cell summary when the
per-cell table has flag columns, the method and its provenance (preset or params,
model file and its SHA-256, cellseg version) and the date. Every string that comes
from a user (image and file names, preset and model names, params, class names) is
HTML-escaped.

The numbers are measurements for review, never a diagnosis; the report says so.
"""
from __future__ import annotations

import base64
import datetime as _dt
import html
import io as _io
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from ._version import __version__
from .io import read_image, read_instances

__all__ = ["DEFINITIONS", "CLASS_COLORS", "flag_columns", "overlay_thumbnail", "image_report",
           "run_report"]

#: What each number means, as written in the reports (columns of ``images.csv``,
#: ``objects.csv`` and :attr:`~cellseg_core.Segmentation.summary`).
DEFINITIONS = {
    "n_nuclei": "nuclei found (nucleus instances)",
    "n_cells": "nuclei with some cytoplasm of their own",
    "background_area": "pixels of background",
    "cytoplasm_area": "area of cytoplasm (of the image, or of one cell)",
    "nucleus_area": "area of nucleus (of the image, or of one cell's nucleus)",
    "cell_area": "nucleus + cytoplasm area of one cell",
    "nc_ratio": "N/C = nucleus area / cytoplasm area (the course's definition, 0 to ∞); "
                "per cell, empty for a cell without cytoplasm",
    "nucleus_cell_ratio": "nucleus area / (nucleus + cytoplasm) area: The Paris System's "
                          "N/C and QuPath's Nucleus/Cell area ratio (0 to 1); per cell, 1.0 "
                          "for a cell without cytoplasm",
    "flag_atypia": "the cell's nucleus/cell ratio is at or above the atypia cut-off "
                   "(default 0.5, The Paris System's); for review, not a diagnosis",
    "flag_high_grade": "the cell's nucleus/cell ratio is at or above the high-grade cut-off "
                       "(default 0.7, The Paris System's); for review, not a diagnosis",
    "n_flag_atypia": "cells at or above the atypia cut-off",
    "n_flag_high_grade": "cells at or above the high-grade cut-off",
    "pixel_size_um": "micrometres per pixel (the user's, dataset.json's or the image file's)",
    "nucleus_od": "mean optical density −ln(I / glass) of the nucleus",
    "cytoplasm_od": "mean optical density of the cell's own cytoplasm",
    "od_ratio": "nucleus_od / cytoplasm_od: above 1, a nucleus darker than its cytoplasm "
                "(hyperchromasia)",
    "convexity_deficit": "1 − solidity: 0 for a convex nucleus, more for an irregular contour",
    "glcm_contrast": "chromatin texture: contrast of the nucleus's gray-level co-occurrence "
                     "matrix (16 levels, distance 1)",
    "glcm_entropy": "chromatin texture: entropy of the nucleus's gray-level co-occurrence "
                    "matrix",
    "mean_intensity": "mean of the segmented channel inside the nucleus (0 to 1)",
    "equivalent_diameter": "diameter of the disc with the nucleus's area",
    "eccentricity": "eccentricity of the nucleus's ellipse of inertia (0 circle, 1 line)",
    "solidity": "nucleus area / its convex hull's area (1 convex, lower irregular)",
    "mean_dice": "mean Dice of cytoplasm and nucleus against the ground-truth mask",
    "dice_cytoplasm": "Dice of the cytoplasm against the ground truth",
    "dice_nucleus": "Dice of the nucleus against the ground truth",
    "nc_true": "N/C of the ground-truth mask",
    "nc_error": "N/C found minus N/C of the ground truth",
}
#: Colours of the classes in the thumbnail (the app's: cytoplasm green, nucleus magenta).
CLASS_COLORS = {1: (0, 200, 83), 2: (213, 0, 249)}
_FLAG_COLOR = (255, 40, 40)
#: Columns of the per-cell table that are not measurements worth summarising.
_NOT_SUMMARISED = {"label", "image", "centroid_row", "centroid_col", "class"}
_THUMBNAIL = 480

_STYLE = """
body{font-family:Helvetica,Arial,sans-serif;font-size:10.5pt;color:#222;margin:1.2cm auto;
max-width:19cm}
h1{font-size:15pt;margin:0 0 .2em}h2{font-size:12pt;margin:1em 0 .3em;border-bottom:1px solid #bbb}
table{border-collapse:collapse;margin:.3em 0;width:100%}
td,th{border-bottom:1px solid #ddd;padding:2px 6px;text-align:left;vertical-align:top}
td.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.note{color:#555;font-size:9pt}.review{border:1px solid #c90;background:#fff8e6;padding:4px 8px}
img.thumb{max-width:100%;image-rendering:pixelated;border:1px solid #999}
pre{font-size:7.5pt;white-space:pre-wrap;word-break:break-all;background:#f6f6f6;padding:4px}
.grid{display:flex;flex-wrap:wrap;gap:6px}.grid figure{margin:0;width:30%}
figcaption{font-size:8pt}
@media print{body{margin:0;max-width:none}h2{break-after:avoid}table,figure{break-inside:avoid}}
"""


def _e(value) -> str:
    """Any value as escaped HTML text."""
    return html.escape(str(value), quote=True)


def _number(value, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "—"
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (int, np.integer)) or float(value).is_integer():
        return f"{int(value):,}"
    if abs(value) >= 10 ** digits:
        return f"{float(value):,.0f}"
    return f"{float(value):.{digits}g}"


def _unit(column: str, pixel_size) -> str:
    if column.endswith("_um2"):
        return "µm²"
    if column.endswith("_um"):
        return "µm"
    if column.endswith("_area") and column != "background_area":
        return "px²"
    if column == "equivalent_diameter":
        return "px"
    return ""


def flag_columns(table: pd.DataFrame) -> list[str]:
    """The per-cell flag columns of a table: boolean, or named ``flag...`` / ``..._flag``.

    Examples
    --------
    >>> import pandas as pd
    >>> flag_columns(pd.DataFrame({"label": [1], "flag_atypia": [True], "area": [3.0]}))
    ['flag_atypia']
    """
    return [c for c in table.columns
            if pd.api.types.is_bool_dtype(table[c]) or str(c).startswith("flag")
            or str(c).endswith("_flag")]


def _flagged_labels(table: pd.DataFrame | None) -> np.ndarray:
    if table is None or not len(table) or "label" not in table:
        return np.zeros(0, np.int64)
    columns = flag_columns(table)
    if not columns:
        return np.zeros(0, np.int64)
    flagged = table[columns].fillna(False).astype(bool).any(axis=1).to_numpy()
    return table["label"].to_numpy()[flagged].astype(np.int64)


# --- the thumbnail ---------------------------------------------------------------------
def _gray8(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image, np.float32)
    top = float(image.max()) if image.size else 0.0
    scale = 255.0 / top if top > 1 else 255.0
    return np.clip(image * scale + 0.5, 0, 255).astype(np.uint8)


def _edges(labels: np.ndarray) -> np.ndarray:
    """Pixels of a non-zero label with a 4-neighbour of another label."""
    edge = np.zeros(labels.shape, bool)
    edge[1:] |= labels[1:] != labels[:-1]
    edge[:-1] |= labels[:-1] != labels[1:]
    edge[:, 1:] |= labels[:, 1:] != labels[:, :-1]
    edge[:, :-1] |= labels[:, :-1] != labels[:, 1:]
    return edge & (labels != 0)


def overlay_thumbnail(image: np.ndarray | None, labels: np.ndarray,
                      nuclei: np.ndarray | None = None, flagged=(), *,
                      max_side: int = _THUMBNAIL) -> np.ndarray:
    """A small RGB picture of a segmentation: class outlines over the image.

    Parameters
    ----------
    image : (M, N[, 3]) ndarray or None
        Float in [0, 1] or uint8; None draws on white.
    labels : (M, N) ndarray of uint8, classes 0/1/2
    nuclei : (M, N) ndarray of int, optional
        Nucleus instances: their outlines too, and `flagged` ones filled in red.
    flagged : iterable of int
        Labels of the flagged cells.
    max_side : int
        Longest side of the thumbnail (every k-th pixel kept).

    Returns
    -------
    (m, n, 3) ndarray of uint8

    Examples
    --------
    >>> import numpy as np
    >>> overlay_thumbnail(None, np.zeros((1000, 500), np.uint8)).shape
    (334, 167, 3)
    """
    labels = np.asarray(labels)
    step = max(1, math.ceil(max(labels.shape) / max_side)) if labels.size else 1
    cut = (slice(None, None, step), slice(None, None, step))
    small = labels[cut]
    if image is None:
        rgb = np.full((*small.shape, 3), 255, np.uint8)
    else:
        image = np.asarray(image)[cut]
        rgb = image if image.dtype == np.uint8 else _gray8(image)
        if rgb.ndim == 2:
            rgb = np.repeat(rgb[..., None], 3, axis=2)
        rgb = rgb[..., :3].copy()
    outline = _edges(small)
    for cls, color in CLASS_COLORS.items():
        rgb[outline & (small == cls)] = color
    if nuclei is not None:
        inst = np.asarray(nuclei)[cut]
        rgb[_edges(inst)] = CLASS_COLORS[2]
        flagged = np.asarray(list(flagged), np.int64)
        if flagged.size:
            hit = np.isin(inst, flagged)
            rgb[hit] = (0.5 * rgb[hit] + 0.5 * np.array(_FLAG_COLOR)).astype(np.uint8)
    return rgb


def _png_uri(rgb: np.ndarray) -> str:
    buf = _io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb)).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


# --- sections --------------------------------------------------------------------------
def _numbers_section(values: dict, pixel_size) -> str:
    rows = []
    for key, value in values.items():
        unit = _unit(key, pixel_size)
        rows.append(f"<tr><td>{_e(key)}</td><td class=n>{_e(_number(value))}"
                    f"{' ' + unit if unit else ''}</td>"
                    f"<td class=note>{_e(DEFINITIONS.get(key.split(' (')[0], ''))}</td></tr>")
    return ("<table><tr><th>number</th><th>value</th><th>definition</th></tr>"
            + "".join(rows) + "</table>")


def _cells_section(table: pd.DataFrame | None, pixel_size) -> str:
    if table is None or not len(table):
        return "<p>No per-cell measurements (no nuclei, or above the object ceiling).</p>"
    flags = set(flag_columns(table))
    columns = [c for c in table.columns if c not in _NOT_SUMMARISED and c not in flags
               and pd.api.types.is_numeric_dtype(table[c])]
    rows = []
    for column in columns:
        values = table[column].to_numpy(np.float64, na_value=np.nan)
        values = values[np.isfinite(values)]
        if not values.size:
            continue
        q1, median, q3 = np.percentile(values, [25, 50, 75])
        unit = _unit(column, pixel_size)
        rows.append(f"<tr><td>{_e(column)}{' (' + unit + ')' if unit else ''}</td>"
                    f"<td class=n>{values.size:,}</td><td class=n>{_number(median)}</td>"
                    f"<td class=n>{_number(q1)} – {_number(q3)}</td>"
                    f"<td class=note>{_e(DEFINITIONS.get(column, ''))}</td></tr>")
    out = (f"<p>{len(table):,} cells measured.</p><table><tr><th>per cell</th><th>n</th>"
           "<th>median</th><th>IQR</th><th>definition</th></tr>" + "".join(rows) + "</table>")
    if "class" in table:
        counts = table["class"].fillna("(none)").astype(str).value_counts()
        out += ("<table><tr><th>class</th><th>cells</th><th>share</th></tr>"
                + "".join(f"<tr><td>{_e(k)}</td><td class=n>{v:,}</td>"
                          f"<td class=n>{v / len(table):.1%}</td></tr>"
                          for k, v in counts.items()) + "</table>")
    return out


def _flags_section(table: pd.DataFrame | None) -> str:
    if table is None or not len(table):
        return ""
    columns = flag_columns(table)
    if not columns:
        return ""
    n = len(table)
    rows = []
    for column in columns:
        hit = int(table[column].fillna(False).astype(bool).sum())
        rows.append(f"<tr><td>{_e(column)}</td><td class=n>{hit:,} of {n:,}</td>"
                    f"<td class=n>{hit / n:.1%}</td></tr>")
    anything = len(_flagged_labels(table)) if "label" in table else 0
    return ("<h2>Flagged cells</h2><table><tr><th>flag</th><th>cells</th><th>share</th></tr>"
            + "".join(rows) + "</table>"
            f"<p class=note>{anything:,} cells carry at least one flag (red in the picture). "
            "Flags mark cells for a closer look; they are not a diagnosis.</p>")


def _provenance_section(description: dict | None, date: str) -> str:
    description = dict(description or {})
    rows = [("method", description.get("method")), ("kind", description.get("kind")),
            ("preset", description.get("preset")),
            ("params file", description.get("file") if description.get("kind") == "params" else None),
            ("model file", description.get("model")),
            ("model SHA-256", description.get("model_sha256") or (
                description.get("sha256") if description.get("kind") != "params" else None)),
            ("params file SHA-256", description.get("sha256")
             if description.get("kind") == "params" else None),
            ("cellseg version (of the run)", description.get("cellseg_version")),
            ("cellseg version (of this report)", __version__), ("date", date)]
    body = "".join(f"<tr><td>{_e(k)}</td><td>{_e(v)}</td></tr>" for k, v in rows
                   if v not in (None, ""))
    params = description.get("params")
    if params:
        body += ("<tr><td>params</td><td><pre>"
                 + _e(json.dumps(params, indent=None, sort_keys=True)) + "</pre></td></tr>")
    return "<h2>Method and provenance</h2><table>" + body + "</table>"


def _page(title: str, body: str) -> str:
    return ("<!DOCTYPE html><html lang=en><head><meta charset=utf-8>"
            f"<title>{_e(title)}</title><style>{_STYLE}</style></head><body>"
            f"<h1>{_e(title)}</h1>{body}"
            "<p class='review'>Measurements for review, not a diagnosis.</p>"
            "</body></html>")


def _today(date) -> str:
    if date is None:
        return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return str(date)


def image_report(image: np.ndarray | None, labels: np.ndarray, nuclei: np.ndarray,
                 objects: pd.DataFrame | None = None, *, name: str = "image",
                 summary: dict | None = None, method: dict | None = None,
                 pixel_size: float | None = None, warnings=(), date=None) -> str:
    """A one-page HTML report of one image's segmentation.

    Parameters
    ----------
    image : (M, N[, 3]) ndarray or None
        The image (for the thumbnail; None: outlines on white).
    labels : (M, N) ndarray of uint8, classes 0/1/2
    nuclei : (M, N) ndarray of int, nucleus instances
    objects : pandas.DataFrame, optional
        The per-cell table (:attr:`~cellseg_core.Segmentation.objects`, with whatever
        columns it has: flags and classes are summarised when present).
    name : str
        The image's name.
    summary : dict, optional
        Per-image numbers (default :func:`cellseg_core.measure.image_summary`'s keys
        are expected; any numbers are shown).
    method : dict, optional
        The method's provenance block (``Segmenter.describe()``, as in ``params.json``).
    pixel_size : float, optional
        Micrometres per pixel, stated in the report.
    warnings : iterable of str
        Messages shown under the numbers.
    date : str, optional
        Defaults to now (UTC).

    Returns
    -------
    str
        The HTML document.

    Examples
    --------
    >>> import numpy as np
    >>> labels = np.array([[0, 1, 2]], np.uint8)
    >>> page = image_report(None, labels, (labels == 2).astype(int), name="<b>x</b>",
    ...                     summary={"nc_ratio": 1.0}, date="2026-01-01")
    >>> "&lt;b&gt;x&lt;/b&gt;" in page and "<b>x</b>" not in page
    True
    """
    labels = np.asarray(labels)
    flagged = _flagged_labels(objects)
    picture = _png_uri(overlay_thumbnail(image, labels, nuclei, flagged))
    shape = f"{labels.shape[0]} × {labels.shape[1]} px"
    scale = (f"pixel size {pixel_size:g} µm" if pixel_size else
             "no pixel size: areas in pixels")
    body = (f"<p>Image <b>{_e(name)}</b>, {shape}; {_e(scale)}. Outlines: cytoplasm green, "
            "nucleus magenta" + (", flagged cells red" if flagged.size else "") + ".</p>"
            f"<img class=thumb alt='overlay of {_e(name)}' src='{picture}'>"
            "<h2>Numbers</h2>" + _numbers_section(dict(summary or {}), pixel_size))
    warnings = [w for w in warnings if w]
    if warnings:
        body += "<ul>" + "".join(f"<li class=note>{_e(w)}</li>" for w in warnings) + "</ul>"
    body += ("<h2>Cells</h2>" + _cells_section(objects, pixel_size) + _flags_section(objects)
             + _provenance_section(method, _today(date)))
    return _page(f"Segmentation report: {name}", body)


def _read_table(path: Path) -> pd.DataFrame | None:
    try:
        return pd.read_csv(path, dtype={"image": str, "file": str, "status": str})
    except (OSError, ValueError):
        return None


def run_report(out_dir, *, images: dict | None = None, date=None, max_pictures: int = 6,
               max_rows: int = 60) -> str:
    """A one-page HTML report of a batch run, from its output folder.

    Parameters
    ----------
    out_dir : path
        A ``cellseg segment`` output folder (``params.json``, ``images.csv``,
        ``objects.csv``, ``labels/``, ``nuclei/``).
    images : mapping of stem -> image path, bytes or array, optional
        The images (for the thumbnails; without: outlines on white).
    date : str, optional
        Defaults to now (UTC).
    max_pictures : int
        Thumbnails of at most this many images (the first ones by name).
    max_rows : int
        Rows of the per-image table at most (the rest are in ``images.csv``).

    Returns
    -------
    str
        The HTML document.

    Raises
    ------
    ValueError
        When `out_dir` holds no run (no ``params.json``).
    """
    out_dir = Path(out_dir)
    params_file = out_dir / "params.json"
    if not params_file.is_file():
        raise ValueError(f"{out_dir}: not a batch output folder (no params.json)")
    description = json.loads(params_file.read_text(encoding="utf-8"))
    table = _read_table(out_dir / "images.csv")
    objects = _read_table(out_dir / "objects.csv")
    if table is None:
        table = pd.DataFrame({"image": [], "status": []})
    ok = table[table["status"].astype(str) == "ok"] if "status" in table else table
    summary = {"images": len(table), "images segmented": len(ok),
               "images failed": len(table) - len(ok)}
    for column in ("n_nuclei", "n_cells", "nucleus_area", "cytoplasm_area"):
        if column in ok:
            summary[f"{column} (total)"] = float(pd.to_numeric(ok[column], errors="coerce").sum())
    for column in ("nc_ratio", "nucleus_cell_ratio", "mean_dice"):
        if column in ok and pd.to_numeric(ok[column], errors="coerce").notna().any():
            summary[f"{column} (mean over images)"] = float(
                pd.to_numeric(ok[column], errors="coerce").mean())
    body = "<h2>Run</h2>" + _numbers_section(summary, None)
    pictures = []
    for stem in [str(s) for s in ok["image"]][:max_pictures] if "image" in ok else []:
        try:
            labels = read_instances(out_dir / "labels" / f"{stem}.tif").astype(np.uint8)
            nuclei = read_instances(out_dir / "nuclei" / f"{stem}.tif")
            image = None if not images or stem not in images else (
                images[stem] if isinstance(images[stem], np.ndarray) else read_image(images[stem]))
        except (ValueError, OSError):
            continue
        cells = None if objects is None or "image" not in objects else \
            objects[objects["image"].astype(str) == stem]
        rgb = overlay_thumbnail(image, labels, nuclei, _flagged_labels(cells), max_side=240)
        pictures.append(f"<figure><img class=thumb alt='{_e(stem)}' src='{_png_uri(rgb)}'>"
                        f"<figcaption>{_e(stem)}</figcaption></figure>")
    if pictures:
        body += "<h2>Images</h2><div class=grid>" + "".join(pictures) + "</div>"
    columns = [c for c in ("image", "status", "n_nuclei", "n_cells", "nc_ratio",
                           "nucleus_cell_ratio", "mean_dice", "warnings") if c in table]
    if len(table):
        head = "".join(f"<th>{_e(c)}</th>" for c in columns)
        rows = "".join(
            "<tr>" + "".join(
                f"<td class=n>{_e(_number(v))}</td>" if isinstance(v, (int, float, np.number))
                and not isinstance(v, bool) else f"<td>{_e('' if pd.isna(v) else v)}</td>"
                for v in record) + "</tr>"
            for record in table[columns].head(max_rows).itertuples(index=False))
        more = (f"<p class=note>The first {max_rows} of {len(table):,} images; every image is "
                "in images.csv.</p>" if len(table) > max_rows else "")
        body += f"<h2>Per image</h2><table><tr>{head}</tr>{rows}</table>{more}"
    body += ("<h2>Cells</h2>" + _cells_section(objects, None) + _flags_section(objects)
             + _provenance_section(description, _today(date)))
    return _page(f"Batch report: {out_dir.name}", body)
