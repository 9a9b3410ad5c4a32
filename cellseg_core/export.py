"""Exports other tools read: QuPath GeoJSON, ImageJ ROI zips, 0/255 binary masks.

Outlines follow the pixel edges exactly: an object's polygon passes through the
corners of its boundary pixels, in pixel coordinates whose origin is the top-left
corner of the top-left pixel (QuPath's and ImageJ's convention: pixel ``(row, col)``
covers ``x`` in ``[col, col + 1]``, ``y`` in ``[row, row + 1]``). The area of the
polygon is the pixel count, and filling it (:func:`geojson_to_labels`) gives back the
very same pixels. Coordinates stay in pixels whatever the pixel size: that is what
QuPath and ImageJ expect; the pixel size travels beside them.

One outline is traced per object, on its bounding-box crop (scikit-image's
``find_contours``, then snapped to the pixel corners), so the work is bounded by the
object ceiling (:func:`cellseg_core.measure.max_objects`): above it the exports
refuse, as the per-object table does.

Rings are ``(K, 2)`` integer arrays of ``(x, y)`` = ``(col, row)`` corners, the first
vertex repeated at the end as GeoJSON wants; a polygon is a list of rings (the
exterior, then its holes), an object a list of polygons (several when its pixels touch
only at corners).
"""
from __future__ import annotations

import io as _io
import json
import uuid
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import roifile
from PIL import Image
from scipy import ndimage as ndi
from skimage.draw import polygon as _fill_polygon
from skimage.measure import find_contours

from ._version import __version__
from .instances import assign_cells, label_objects
from .io import read_instances, write_bytes_atomic
from .measure import max_objects, too_many_objects

__all__ = [
    "EXPORTS",
    "BINARY_CLASSES",
    "object_polygons",
    "polygon_area",
    "to_geojson",
    "geojson_bytes",
    "geojson_to_labels",
    "to_imagej_rois",
    "binary_masks",
    "png_bytes",
    "binary_masks_zip",
    "write_exports",
    "parse_exports",
    "export_run",
]

#: Export names ``cellseg segment --export`` accepts, and the files each writes in the
#: output folder (``{stem}`` is the image's stem).
EXPORTS = {
    "geojson": "geojson/{stem}.geojson",
    "imagej": "rois/{stem}.zip",
    "binary": "binary/{stem}_{cls}.png",
}

#: The 0/255 masks :func:`binary_masks` makes: name -> classes of the 0/1/2 labels.
BINARY_CLASSES = {"nucleus": (2,), "cytoplasm": (1,), "cell": (1, 2)}

#: Colours for class names QuPath users know; other names get one from
#: :data:`_PALETTE` by a hash of the name (the same in every image and every run).
_NAMED_COLORS = {
    "tumor": (200, 0, 0), "tumour": (200, 0, 0), "stroma": (150, 200, 150),
    "lymphocyte": (160, 90, 160), "immune cells": (160, 90, 160), "other": (255, 200, 0),
    "necrosis": (50, 50, 50), "positive": (200, 50, 50), "negative": (112, 112, 225),
}
_PALETTE = ((31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
            (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207))
#: Namespace of the feature ids (UUIDs, as QuPath wants them): the same image, object
#: kind and label always get the same id.
_NAMESPACE = uuid.UUID("6f1c8a4e-3b0d-4a57-9d7e-2f64c1b0e5a1")


# --- outlines ---------------------------------------------------------------------------
def _signed_area(ring: np.ndarray) -> float:
    """Shoelace area of a ring given without its closing vertex (> 0: exterior)."""
    x, y = ring[:, 0], ring[:, 1]
    return 0.5 * float(np.dot(x[:-1], y[1:]) - np.dot(x[1:], y[:-1]) + x[-1] * y[0] - x[0] * y[-1])


def _corners(contour: np.ndarray) -> np.ndarray:
    """A ``find_contours`` contour of a 0/1 mask (row, col; through the midpoints of
    pixel edges) as the ring through the pixel corners it cuts, ``(x, y)`` centre-based
    (corners at half-integers), without the closing vertex."""
    p, q = contour[:-1], contour[1:]  # the contour is closed: its last point is its first
    turn = (p[:, 0] != q[:, 0]) & (p[:, 1] != q[:, 1])
    p, q = p[turn], q[turn]
    # Of the two candidates, the corner is the one with both coordinates half-integers.
    row_half = (p[:, 0] % 1) == 0.5
    rows = np.where(row_half, p[:, 0], q[:, 0])
    cols = np.where(row_half, q[:, 1], p[:, 1])
    return np.column_stack([cols, rows])


def _split_touching(ring: np.ndarray) -> list[np.ndarray]:
    """Cut a ring that passes twice through a corner (pixels touching diagonally) into
    simple rings; each keeps its direction, so an enclosed loop reads as a hole."""
    keys = ring[:, 0] * (1 << 32) + ring[:, 1]
    ordered = np.sort(keys)
    repeated = ordered[1:] == ordered[:-1]
    if not repeated.any():
        return [ring]
    i, j = np.flatnonzero(keys == ordered[1:][repeated][0])[:2]
    return _split_touching(ring[i:j]) + _split_touching(np.concatenate([ring[j:], ring[:i]]))


def _inside(point, ring: np.ndarray) -> bool:
    """Whether `point` (never on an edge: a pixel centre) lies inside `ring` (even-odd)."""
    x, y = point
    x1, y1 = ring[:, 0], ring[:, 1]
    x2, y2 = np.append(x1[1:], x1[0]), np.append(y1[1:], y1[0])
    crosses = (y1 > y) != (y2 > y)
    with np.errstate(divide="ignore", invalid="ignore"):
        at = x1 + (y - y1) * (x2 - x1) / (y2 - y1)
    return bool(np.count_nonzero(crosses & (x < at)) % 2)


def _hole_point(hole: np.ndarray):
    """The centre of a pixel inside `hole` (a clockwise ring): beside its first edge."""
    d = hole[1] - hole[0]
    d = d / np.abs(d).sum()  # a unit step along the (axis-aligned) edge
    return hole[0] + 0.5 * d + 0.5 * np.array([d[1], -d[0]])  # inward: to the right


def _mask_polygons(mask: np.ndarray, origin=(0, 0)) -> list[list[np.ndarray]]:
    """The polygons of a boolean mask (a crop whose top-left pixel is `origin`)."""
    padded = np.zeros((mask.shape[0] + 2, mask.shape[1] + 2), np.float32)
    padded[1:-1, 1:-1] = mask
    outers, holes = [], []
    for contour in find_contours(padded, 0.5):
        ring = _corners(contour)
        # Centre-based, padded crop -> corner-based image coordinates: integers.
        ring = np.rint(ring + (origin[1] - 0.5, origin[0] - 0.5)).astype(np.int64)
        for part in _split_touching(ring):
            if len(part) < 4:
                continue
            (outers if _signed_area(part) > 0 else holes).append(part)
    polygons = [[ring] for ring in outers]
    for hole in holes:
        owner = 0
        if len(outers) > 1:
            point = _hole_point(hole)
            inside = [k for k, ring in enumerate(outers) if _inside(point, ring)]
            # The innermost exterior around it (an island inside another one's hole).
            owner = min(inside, key=lambda k: abs(_signed_area(outers[k]))) if inside else 0
        polygons[owner].append(hole)
    return [[np.vstack([ring, ring[:1]]) for ring in polygon] for polygon in polygons]


def _check_instances(instances, name: str) -> np.ndarray:
    instances = np.asarray(instances)
    if instances.ndim != 2:
        raise ValueError(f"`{name}` must be a 2-D label image, got shape {instances.shape}")
    if instances.dtype.kind not in "ui":
        raise TypeError(f"`{name}` must be an integer array, got {instances.dtype}")
    if instances.dtype.kind == "i" and instances.size and instances.min() < 0:
        raise ValueError(f"`{name}` must not hold negative labels, got {instances.min()}")
    return instances


def object_polygons(instances: np.ndarray, *, limit: int | None = None) -> dict:
    """The outline of every object of an instance image, along the pixel edges.

    Parameters
    ----------
    instances : (M, N) ndarray of int
        Objects by label, 0 background; labels need not be consecutive.
    limit : int, optional
        Most objects accepted (default :func:`cellseg_core.measure.max_objects`).

    Returns
    -------
    dict
        label -> list of polygons; a polygon is a list of closed ``(K, 2)`` int rings of
        ``(x, y)`` pixel-corner coordinates, the exterior (counter-clockwise in ``x, y``)
        first, then its holes.

    Raises
    ------
    ValueError
        When `instances` is not 2-D, holds negative labels, or more objects than `limit`.
    TypeError
        When `instances` is not an integer array.

    Examples
    --------
    >>> import numpy as np
    >>> labels = np.array([[0, 0, 0],
    ...                    [0, 5, 5]])
    >>> object_polygons(labels)[5][0][0].tolist()
    [[1, 2], [1, 1], [3, 1], [3, 2], [1, 2]]
    """
    instances = _check_instances(instances, "instances")
    ids = np.unique(instances)
    ids = ids[ids != 0]
    message = too_many_objects(ids.size, max_objects() if limit is None else limit)
    if message:
        raise ValueError(message)
    if not ids.size:
        return {}
    if ids[-1] > 4 * instances.size:  # ids from elsewhere: find_objects wants small ones
        compact = (np.searchsorted(ids, instances) + 1) * (instances != 0)
        index = np.arange(ids.size)
    else:
        compact, index = instances, ids - 1
    boxes = ndi.find_objects(compact)
    out = {}
    for label, i in zip(ids.tolist(), index.tolist()):  # bounded by the object ceiling
        box = boxes[i]
        out[label] = _mask_polygons(instances[box] == label, (box[0].start, box[1].start))
    return out


def polygon_area(polygon) -> float:
    """Area of a polygon (exterior minus holes), in square pixels.

    Examples
    --------
    >>> import numpy as np
    >>> polygon_area([np.array([[0, 0], [2, 0], [2, 3], [0, 3], [0, 0]])])
    6.0
    """
    return sum(abs(_signed_area(np.asarray(ring)[:-1])) * (1 if k == 0 else -1)
               for k, ring in enumerate(polygon))


def _geometry(polygons: list) -> dict:
    coords = [[ring.tolist() for ring in polygon] for polygon in polygons]
    if len(coords) == 1:
        return {"type": "Polygon", "coordinates": coords[0]}
    return {"type": "MultiPolygon", "coordinates": coords}


# --- GeoJSON --------------------------------------------------------------------------
def _class_color(name: str) -> list[int]:
    color = _NAMED_COLORS.get(name.strip().lower())
    if color is None:
        color = _PALETTE[zlib.crc32(name.encode("utf-8")) % len(_PALETTE)]
    return list(color)


def _measurements_by_label(measurements) -> tuple[dict, dict]:
    """label -> {column: number} of every numeric column (finite values only), and
    label -> class name from a ``class`` column when there is one."""
    if measurements is None:
        return {}, {}
    table = pd.DataFrame(measurements)
    if "label" not in table:
        raise ValueError("`measurements` must have a 'label' column (the object ids), got "
                         f"columns {list(table.columns)[:8]}")
    labels = table["label"].to_numpy()
    numeric = [c for c in table.columns
               if c != "label" and pd.api.types.is_numeric_dtype(table[c])]
    values = table[numeric].to_numpy(dtype=np.float64, na_value=np.nan) if numeric else None
    rows = {}
    for i, label in enumerate(labels):
        row = {} if values is None else {
            c: (int(v) if float(v).is_integer() and abs(v) < 2 ** 53 else float(v))
            for c, v in zip(numeric, values[i]) if np.isfinite(v)}
        rows[int(label)] = row
    classes = {}
    if "class" in table:
        classes = {int(k): str(v) for k, v in zip(labels, table["class"])
                   if isinstance(v, str) and v}
    return rows, classes


def _cells_of(labels: np.ndarray, nuclei: np.ndarray) -> np.ndarray | None:
    """Each nucleus's cell as the pipeline measures it; None without any cytoplasm."""
    if not (labels == 1).any():
        return None
    return assign_cells(nuclei, labels > 0)


def _feature(kind: str, label: int, polygons, *, image: str, measurements: dict,
             class_name: str | None, nucleus=None, colors=None) -> dict:
    properties = {"objectType": kind, "name": f"{label}",
                  "metadata": {"cellseg_label": str(label), "image": image}}
    if class_name:
        color = (colors or {}).get(class_name) or _class_color(class_name)
        properties["classification"] = {"name": class_name, "color": list(color)}
    properties["measurements"] = measurements
    feature = {"type": "Feature",
               "id": str(uuid.uuid5(_NAMESPACE, f"{image}/{kind}/{label}")),
               "geometry": _geometry(polygons)}
    if nucleus:
        feature["nucleusGeometry"] = _geometry(nucleus)
    feature["properties"] = properties
    return feature


def to_geojson(labels: np.ndarray, nuclei_instances: np.ndarray | None = None,
               measurements=None, classes=None, pixel_size: float | None = None, *,
               cells: np.ndarray | None = None, name: str = "image",
               separate_nuclei: bool = False, class_colors: dict | None = None) -> dict:
    """Cells and nuclei as a QuPath-compatible GeoJSON FeatureCollection.

    With cytoplasm, each cell is a Feature with ``objectType`` ``"cell"``: its outline
    (nucleus included) as ``geometry`` and its nucleus as ``nucleusGeometry``, which
    QuPath reads into one cell object with its nucleus. Without cytoplasm (or with
    `separate_nuclei`), each nucleus is also a Feature of its own with ``objectType``
    ``"detection"``. ``properties`` hold ``measurements`` (every numeric column of the
    object table, for that object's label; NaN left out, as QuPath reads a missing
    value), ``classification`` (``{"name", "color"}``) when the object has a class, the
    label (``name`` and ``metadata.cellseg_label``) and the image name.

    Parameters
    ----------
    labels : (M, N) ndarray of uint8
        Classes: 0 background, 1 cytoplasm, 2 nucleus.
    nuclei_instances : (M, N) ndarray of int, optional
        Nucleus instances (default: the connected components of ``labels == 2``).
    measurements : pandas.DataFrame, optional
        One row per object with a ``label`` column, e.g.
        :attr:`cellseg_core.Segmentation.objects`; a ``class`` column of strings is
        used as the classification when `classes` is not given.
    classes : mapping of label -> str, optional
        Each object's class name (objects not in it have none).
    pixel_size : float, optional
        Micrometres per pixel; recorded in the collection's ``cellseg`` member
        (coordinates stay in pixels, as QuPath wants).
    cells : (M, N) ndarray of int, optional
        Cell instances with the nuclei's ids (default: as the pipeline measures them,
        :func:`cellseg_core.instances.assign_cells`).
    name : str
        The image's name, recorded in each feature (and making their ids).
    separate_nuclei : bool
        Also give each nucleus its own ``"detection"`` feature when there are cells
        (for tools that do not read ``nucleusGeometry``; QuPath then shows each
        nucleus twice).
    class_colors : mapping of str -> (r, g, b), optional
        Colours of class names (others get a fixed colour per name).

    Returns
    -------
    dict
        ``{"type": "FeatureCollection", "features": [...], "cellseg": {...}}``, ready
        for ``json.dumps`` (:func:`geojson_bytes`).

    Raises
    ------
    ValueError
        When shapes differ, `pixel_size` is not positive, there are more objects than
        :func:`cellseg_core.measure.max_objects`, or `measurements` has no ``label``.

    Examples
    --------
    >>> import numpy as np
    >>> labels = np.array([[1, 1, 1, 0],
    ...                    [1, 2, 1, 0],
    ...                    [1, 1, 1, 0]], np.uint8)
    >>> fc = to_geojson(labels)
    >>> [f["properties"]["objectType"] for f in fc["features"]]
    ['cell']
    >>> fc["features"][0]["nucleusGeometry"]["coordinates"]
    [[[1, 2], [1, 1], [2, 1], [2, 2], [1, 2]]]
    """
    labels = _check_instances(labels, "labels")
    if nuclei_instances is None:
        nuclei_instances = label_objects(labels == 2)
    nuclei = _check_instances(nuclei_instances, "nuclei_instances")
    if nuclei.shape != labels.shape:
        raise ValueError(f"`nuclei_instances` (shape {nuclei.shape}) must have the same shape "
                         f"as `labels` (shape {labels.shape})")
    if pixel_size is not None and not (np.isfinite(pixel_size) and pixel_size > 0):
        raise ValueError(f"`pixel_size` must be a positive number of µm per pixel, got {pixel_size!r}")
    if cells is None:
        cells = _cells_of(labels, nuclei)
    elif np.shape(cells) != labels.shape:
        raise ValueError(f"`cells` (shape {np.shape(cells)}) must have the same shape as "
                         f"`labels` (shape {labels.shape})")
    rows, table_classes = _measurements_by_label(measurements)
    classes = table_classes if classes is None else {int(k): v for k, v in dict(classes).items()}
    nucleus_shapes = object_polygons(nuclei)
    features = []
    if cells is not None:
        for label, polygons in object_polygons(_check_instances(cells, "cells")).items():
            features.append(_feature("cell", label, polygons, image=name,
                                     measurements=rows.get(label, {}),
                                     class_name=classes.get(label),
                                     nucleus=nucleus_shapes.get(label), colors=class_colors))
    if cells is None or separate_nuclei:
        for label, polygons in nucleus_shapes.items():
            features.append(_feature("detection", label, polygons, image=name,
                                     measurements=rows.get(label, {}) if cells is None else {},
                                     class_name=classes.get(label), colors=class_colors))
    return {"type": "FeatureCollection", "features": features,
            "cellseg": {"image": name, "version": __version__, "pixel_size_um": pixel_size,
                        "coordinates": "pixels; origin at the top-left corner of the image"}}


def geojson_bytes(collection: dict) -> bytes:
    """A FeatureCollection as UTF-8 JSON (compact; NaN refused, as JSON has none)."""
    return json.dumps(collection, separators=(",", ":"), allow_nan=False).encode("utf-8")


def _fill(polygons, shape) -> np.ndarray:
    """Pixels whose centres lie inside the polygons (exteriors minus holes)."""
    mask = np.zeros(shape, bool)
    for polygon in polygons:
        for k, ring in enumerate(polygon):
            ring = np.asarray(ring, np.float64)
            # Corner coordinates -> pixel-centre ones: no centre lies on an edge.
            rr, cc = _fill_polygon(ring[:, 1] - 0.5, ring[:, 0] - 0.5, shape)
            mask[rr, cc] = k == 0
    return mask


def _polygons_of(geometry: dict) -> list:
    if geometry["type"] == "Polygon":
        return [geometry["coordinates"]]
    if geometry["type"] == "MultiPolygon":
        return geometry["coordinates"]
    raise ValueError(f"only Polygon and MultiPolygon geometries can be filled, got "
                     f"{geometry['type']!r}")


def geojson_to_labels(geojson, shape) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fill the features of a :func:`to_geojson` collection back into label images.

    Parameters
    ----------
    geojson : dict, str or bytes
    shape : tuple
        ``(M, N)`` of the image.

    Returns
    -------
    labels : (M, N) ndarray of uint8
        2 inside a nucleus, 1 elsewhere inside a cell, 0 outside.
    nuclei, cells : (M, N) ndarray of int32
        Instances with the features' labels (``metadata.cellseg_label``, else their
        order from 1); without cell features, ``cells`` is ``nuclei``.

    Examples
    --------
    >>> import numpy as np
    >>> labels = np.array([[1, 1, 0], [1, 2, 0]], np.uint8)
    >>> back, nuclei, cells = geojson_to_labels(to_geojson(labels), labels.shape)
    >>> back.tolist(), nuclei.tolist()
    ([[1, 1, 0], [1, 2, 0]], [[0, 0, 0], [0, 1, 0]])
    """
    if isinstance(geojson, (str, bytes, bytearray)):
        geojson = json.loads(geojson)
    shape = tuple(int(s) for s in shape[:2])
    nuclei = np.zeros(shape, np.int32)
    cells = np.zeros(shape, np.int32)
    any_cell = False
    for k, feature in enumerate(geojson.get("features", ()), start=1):
        properties = feature.get("properties") or {}
        label = int((properties.get("metadata") or {}).get("cellseg_label", k))
        kind = properties.get("objectType", "detection")
        if kind == "cell":
            any_cell = True
            cells[_fill(_polygons_of(feature["geometry"]), shape)] = label
            if feature.get("nucleusGeometry"):
                nuclei[_fill(_polygons_of(feature["nucleusGeometry"]), shape)] = label
        else:
            nuclei[_fill(_polygons_of(feature["geometry"]), shape)] = label
    if not any_cell:
        cells = nuclei.copy()
    labels = np.where(nuclei > 0, 2, np.where(cells > 0, 1, 0)).astype(np.uint8)
    return labels, nuclei, cells


# --- ImageJ ----------------------------------------------------------------------------
def to_imagej_rois(nuclei_instances: np.ndarray, *, limit: int | None = None) -> bytes:
    """Nucleus outlines as an ImageJ ROI set (the zip Fiji's ROI Manager opens).

    One traced polygon ROI per nucleus, named by its label, in label order; its
    vertices are the pixel corners of the outline (as ImageJ's wand traces them). A
    nucleus in several pieces (pixels touching only at corners) gets its largest
    piece; holes are left out (an ImageJ polygon has none).

    Parameters
    ----------
    nuclei_instances : (M, N) ndarray of int
    limit : int, optional
        Most objects accepted (default :func:`cellseg_core.measure.max_objects`).

    Returns
    -------
    bytes
        A zip of ``<label>.roi`` files (read it back with ``roifile.roiread``).

    Examples
    --------
    >>> import io, zipfile, numpy as np
    >>> data = to_imagej_rois(np.array([[0, 3, 3], [0, 3, 3]]))
    >>> zipfile.ZipFile(io.BytesIO(data)).namelist()
    ['3.roi']
    """
    outlines = object_polygons(nuclei_instances, limit=limit)
    buf = _io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for label, polygons in outlines.items():
            largest = max(polygons, key=polygon_area)
            roi = roifile.ImagejRoi.frompoints(largest[0][:-1], name=str(label))
            roi.roitype = roifile.ROI_TYPE.TRACED
            archive.writestr(f"{label}.roi", roi.tobytes())
    return buf.getvalue()


# --- binary masks ----------------------------------------------------------------------
def binary_masks(labels: np.ndarray) -> dict:
    """One 0/255 uint8 mask per class of a 0/1/2 label image (:data:`BINARY_CLASSES`).

    Examples
    --------
    >>> import numpy as np
    >>> masks = binary_masks(np.array([[0, 1, 2]], np.uint8))
    >>> {k: v.tolist() for k, v in masks.items()}
    {'nucleus': [[0, 0, 255]], 'cytoplasm': [[0, 255, 0]], 'cell': [[0, 255, 255]]}
    """
    labels = _check_instances(labels, "labels")
    return {name: np.where(np.isin(labels, classes), np.uint8(255), np.uint8(0))
            for name, classes in BINARY_CLASSES.items()}


def png_bytes(mask: np.ndarray) -> bytes:
    """A 2-D uint8 array as a grayscale PNG."""
    mask = np.asarray(mask)
    if mask.dtype != np.uint8 or mask.ndim != 2:
        raise TypeError(f"`mask` must be a 2-D uint8 array, got {mask.dtype} {mask.shape}")
    buf = _io.BytesIO()
    Image.fromarray(mask, mode="L").save(buf, format="PNG", optimize=False, compress_level=6)
    return buf.getvalue()


def binary_masks_zip(labels: np.ndarray, stem: str = "image") -> bytes:
    """The :func:`binary_masks` of `labels` as PNGs ``<stem>_<class>.png`` in one zip."""
    buf = _io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as archive:
        for name, mask in binary_masks(labels).items():
            archive.writestr(f"{stem}_{name}.png", png_bytes(mask))
    return buf.getvalue()


# --- files -----------------------------------------------------------------------------
def write_exports(out_dir, stem: str, exports, labels: np.ndarray, nuclei: np.ndarray, *,
                  measurements=None, classes=None, pixel_size: float | None = None) -> list:
    """Write the `exports` of one image into `out_dir` (see :data:`EXPORTS`), atomically.

    Parameters
    ----------
    out_dir : path
    stem : str
        The image's output name.
    exports : iterable of str
        Names from :data:`EXPORTS`.
    labels, nuclei : (M, N) ndarray
        Classes 0/1/2 and nucleus instances.
    measurements, classes, pixel_size
        As for :func:`to_geojson`.

    Returns
    -------
    list of Path
        The files written.

    Raises
    ------
    ValueError
        For an unknown export name, or more objects than the object ceiling (the
        binary masks, which need no outlines, are written before).
    """
    exports = list(exports)
    unknown = sorted(set(exports) - set(EXPORTS))
    if unknown:
        raise ValueError(f"unknown export(s) {unknown}; choose from {', '.join(EXPORTS)}")
    out_dir = Path(out_dir)
    written = []
    if "binary" in exports:  # first: masks need no outlines, so no object ceiling
        for cls, mask in binary_masks(labels).items():
            path = out_dir / EXPORTS["binary"].format(stem=stem, cls=cls)
            written.append(write_bytes_atomic(path, png_bytes(mask)))
    if "geojson" in exports:
        collection = to_geojson(labels, nuclei, measurements, classes, pixel_size, name=stem)
        written.append(write_bytes_atomic(out_dir / EXPORTS["geojson"].format(stem=stem),
                                          geojson_bytes(collection)))
    if "imagej" in exports:
        written.append(write_bytes_atomic(out_dir / EXPORTS["imagej"].format(stem=stem),
                                          to_imagej_rois(nuclei)))
    return written


def parse_exports(text: str) -> list[str]:
    """Export names from a comma-separated list (``"geojson,imagej"``), checked.

    Raises
    ------
    ValueError
        For an unknown or empty name, listing the valid ones.

    Examples
    --------
    >>> parse_exports("geojson, binary")
    ['geojson', 'binary']
    """
    names = [part.strip().lower() for part in str(text).split(",")]
    unknown = [n for n in names if n not in EXPORTS]
    if unknown:
        raise ValueError(f"unknown export(s) {unknown}; choose from {', '.join(EXPORTS)} "
                         "(comma-separated, e.g. --export geojson,imagej)")
    return list(dict.fromkeys(names))


def _read_csv(path: Path) -> pd.DataFrame | None:
    try:
        return pd.read_csv(path, dtype={"image": str, "file": str, "status": str})
    except (OSError, ValueError):
        return None


def export_run(out_dir, exports, *, pixel_size: float | None = None, stems=None):
    """Write the `exports` of every image a batch run segmented, from its output folder.

    Reads each image's ``labels/<stem>.tif`` and ``nuclei/<stem>.tif`` and its rows of
    ``objects.csv`` (every numeric column becomes a GeoJSON measurement, a ``class``
    column the classification), and writes the files of :data:`EXPORTS` beside them.
    The run's own files are not touched.

    Parameters
    ----------
    out_dir : path
        A ``cellseg segment`` output folder.
    exports : iterable of str
        Names from :data:`EXPORTS`.
    pixel_size : float, optional
        Micrometres per pixel, for images whose ``images.csv`` row has no
        ``pixel_size_um`` of its own.
    stems : iterable of str, optional
        Only these images (default: every image whose status is ``ok``).

    Returns
    -------
    written : list of Path
    skipped : list of (stem, reason)
        Images above the object ceiling, or whose files cannot be read.
    """
    exports = list(exports)
    out_dir = Path(out_dir)
    images = _read_csv(out_dir / "images.csv")
    if images is None or "image" not in images:
        raise ValueError(f"{out_dir}: not a batch output folder (no readable images.csv)")
    ok = images[images["status"].fillna("") == "ok"] if "status" in images else images
    wanted = None if stems is None else {str(s) for s in stems}
    objects = _read_csv(out_dir / "objects.csv")
    groups = {} if objects is None or "image" not in objects else {
        str(k): g.drop(columns="image") for k, g in objects.groupby("image", sort=False)}
    sizes = {}
    column = "pixel_size_um" if "pixel_size_um" in ok else "pixel_size"  # images.csv's
    if column in ok:
        sizes = {str(k): float(v) for k, v in zip(ok["image"], pd.to_numeric(
            ok[column], errors="coerce")) if np.isfinite(v) and v > 0}
    written, skipped = [], []
    for stem in ok["image"].astype(str):
        if wanted is not None and stem not in wanted:
            continue
        try:
            labels = read_instances(out_dir / "labels" / f"{stem}.tif").astype(np.uint8)
            nuclei = read_instances(out_dir / "nuclei" / f"{stem}.tif")
            written += write_exports(out_dir, stem, exports, labels, nuclei,
                                     measurements=groups.get(stem),
                                     pixel_size=sizes.get(stem, pixel_size))
        except (ValueError, OSError) as err:
            skipped.append((stem, str(err)))
    return written, skipped
