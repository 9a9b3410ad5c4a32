"""Cell classes, QuPath style: per-object features and a random forest over them.

:func:`object_features` measures every nucleus (and its cell, when the class map is
given): size and shape (:func:`cellseg_core.measure.region_stats`, ``solidity``),
intensity per RGB channel (mean and standard deviation: a texture), stain optical
densities (gray OD against the image's bare glass, :func:`cellseg_core.color.optical_density`;
hematoxylin and eosin from colour deconvolution), the mean edge strength inside the
nucleus, the cell's cytoplasm (area, N/C, its OD and the nucleus's OD contrast with it)
and the neighbourhood (nuclei within ``radius`` and ``2 radius``, the nearest one's
distance; ``scipy.spatial.cKDTree``). Every number is a ``np.bincount`` over pixels:
the cost grows with the pixels, not with the objects.

:class:`ObjectClassifier` is a random forest on those features with editable class
names; :func:`class_counts` turns its predictions into counts and densities (per mm²
with a pixel size, per megapixel without). Its model file is the project's format 3
(:mod:`.modelfile`): the forest as a skops archive of allowed types only, the class
and feature names in the JSON header; no pickle, no code.
"""
from __future__ import annotations

import time

import numpy as np
import pandas as pd
from scipy import ndimage as ndi
from scipy.spatial import cKDTree
from skimage.color import rgb2hed

from ..color import gray, optical_density
from ..instances import assign_cells, label_objects
from ..io import as_float_image
from ..measure import region_stats, solidity
from .modelfile import (FORMAT_VERSION, ModelFile, _check_sklearn_version, _checked_payload,
                        _load_skops, _model_bytes, read_model_file)

__all__ = ["FEATURE_NAMES", "DEFAULT_CLASSES", "DEFAULT_RADIUS", "object_features",
           "ObjectClassifier", "class_counts", "train_object_classifier",
           "dataset_nuclei", "score_object_classifier",
           "CLASS_COLUMNS"]

#: Columns :meth:`ObjectClassifier.classify` adds to a per-object table.
CLASS_COLUMNS = ["class", "class_probability"]
#: The classes a new classifier starts with (QuPath's common ones; rename them freely).
DEFAULT_CLASSES = ("tumour", "lymphocyte", "stroma", "other")
#: Neighbourhood radius when none is given: in pixels, or in µm with a pixel size.
DEFAULT_RADIUS = {"px": 50.0, "um": 25.0}
#: Value the classifier sees for a feature that is undefined for an object (NaN: N/C
#: without cytoplasm, solidity beyond the hull limit, nearest neighbour of a lone nucleus).
MISSING = -1.0

_SHAPE = ["nucleus_area", "equivalent_diameter", "major_axis_length", "minor_axis_length",
          "elongation", "eccentricity", "solidity", "extent"]
_CHANNELS = ("red", "green", "blue")
_INTENSITY = ([f"nucleus_mean_{c}" for c in _CHANNELS]
              + [f"nucleus_std_{c}" for c in _CHANNELS])
_STAIN = ["nucleus_od", "nucleus_hematoxylin_od", "nucleus_eosin_od", "nucleus_edge"]
_CELL = ["cell_area", "cytoplasm_area", "nc_ratio", "cytoplasm_mean_gray", "cytoplasm_od",
         "od_contrast"]
_NEIGHBOURS = ["neighbours_r", "neighbours_2r", "nearest_distance"]
#: Columns of :func:`object_features`' matrix, in order.
FEATURE_NAMES = tuple(_SHAPE + _INTENSITY + _STAIN + _CELL + _NEIGHBOURS)
_LENGTHS = {"equivalent_diameter", "major_axis_length", "minor_axis_length",
            "nearest_distance"}
_AREAS = {"nucleus_area", "cell_area", "cytoplasm_area"}
#: Gray level taken as bare glass for the gray optical density: this percentile.
_GLASS_PERCENTILE = 99.0
_MAX_CLASSES, _MAX_NAME = 32, 60


def _check_instances(nuclei, shape) -> np.ndarray:
    nuclei = np.asarray(nuclei)
    if nuclei.ndim != 2 or nuclei.shape != tuple(shape):
        raise ValueError(f"`nuclei` (shape {nuclei.shape}) must be 2-D with the shape of "
                         f"`image` (shape {tuple(shape)})")
    if nuclei.dtype.kind not in "ui":
        raise TypeError(f"`nuclei` must be an integer array of instances, got {nuclei.dtype}")
    return nuclei


def _per_object(where: np.ndarray, values: np.ndarray, ids: np.ndarray):
    """Row of `ids` (-1: none) of each pixel value in `values` at flat `where`."""
    found = values.ravel()[where]
    k = np.minimum(np.searchsorted(ids, found), max(ids.size - 1, 0))
    return np.where(ids[k] == found, k, -1)


def _means(k: np.ndarray, values: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel count and mean of `values` (P,) or (P, C) per object row `k` (P,)."""
    count = np.bincount(k, minlength=n).astype(np.float64)
    values = values.reshape(len(k), -1).astype(np.float64, copy=False)
    sums = np.stack([np.bincount(k, weights=v, minlength=n) for v in values.T], 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return count, sums / count[:, None]


def object_features(image, nuclei, labels=None, *, cells=None, pixel_size: float | None = None,
                    radius: float | None = None) -> tuple[np.ndarray, np.ndarray, list]:
    """Per-nucleus features for an object classifier (see the module notes).

    Parameters
    ----------
    image : (M, N[, 3]) ndarray
        The image (any dtype :func:`~cellseg_core.io.as_float_image` takes); a gray
        image is used as three equal channels.
    nuclei : (M, N) ndarray of int
        Nucleus instances, 0 background.
    labels : (M, N) ndarray of uint8, optional
        Classes 0/1/2: with them, each nucleus's cell (cytoplasm features). Without,
        the cell features are those of a cell without cytoplasm.
    cells : (M, N) ndarray of int, optional
        Each nucleus's cell (same ids), when already computed
        (:func:`~cellseg_core.instances.assign_cells`); else computed from `labels`.
    pixel_size : float, optional
        µm per pixel: lengths in µm, areas in µm², `radius` in µm. Without it, pixels.
    radius : float, optional
        Neighbourhood radius (default :data:`DEFAULT_RADIUS`: 50 px or 25 µm).

    Returns
    -------
    ids : (K,) ndarray of int64
        The nucleus labels, sorted (the rows of :func:`~cellseg_core.measure.object_table`).
    features : (K, F) ndarray of float64
        NaN where a feature is undefined (N/C without cytoplasm, a lone nucleus's
        nearest neighbour).
    names : list of str
        :data:`FEATURE_NAMES`.

    Raises
    ------
    ValueError
        For shapes that differ, a non-positive `pixel_size` or `radius`.
    TypeError
        When `nuclei` is not an integer array.

    Examples
    --------
    >>> import numpy as np
    >>> img = np.full((20, 20), 0.9); img[2:6, 2:6] = 0.2; img[10:18, 10:14] = 0.5
    >>> nuclei = np.zeros((20, 20), np.int32); nuclei[2:6, 2:6] = 1; nuclei[10:18, 10:14] = 2
    >>> ids, x, names = object_features(img, nuclei)
    >>> ids.tolist(), x[:, names.index("nucleus_area")].tolist()
    ([1, 2], [16.0, 32.0])
    >>> x[:, names.index("neighbours_r")].tolist()
    [1.0, 1.0]
    """
    image = as_float_image(image)
    nuclei = _check_instances(nuclei, image.shape[:2])
    if pixel_size is not None and not (np.isfinite(pixel_size) and pixel_size > 0):
        raise ValueError(f"`pixel_size` must be a positive number of µm per pixel, got "
                         f"{pixel_size!r}")
    unit = 1.0 if pixel_size is None else float(pixel_size)
    if radius is None:
        radius = DEFAULT_RADIUS["px" if pixel_size is None else "um"]
    if not (np.isfinite(radius) and radius > 0):
        raise ValueError(f"`radius` must be > 0, got {radius!r}")
    rgb = image if image.ndim == 3 else np.repeat(image[..., None], 3, -1)
    g = gray(rgb.astype(np.float32, copy=False))
    stats = region_stats(nuclei, g)
    ids = stats["label"].to_numpy(np.int64)
    n = ids.size
    names = list(FEATURE_NAMES)
    if n == 0:
        return ids, np.zeros((0, len(names))), names

    # Shape (region_stats: moments; solidity: convex hulls of the largest objects).
    area = stats["area"].to_numpy()
    major, minor = stats["major_axis_length"].to_numpy(), stats["minor_axis_length"].to_numpy()
    box = ((stats["bbox_max_row"] - stats["bbox_min_row"])
           * (stats["bbox_max_col"] - stats["bbox_min_col"])).to_numpy(np.float64)
    solid, _ = solidity(nuclei, stats)
    out = {"nucleus_area": area, "equivalent_diameter": stats["equivalent_diameter"].to_numpy(),
           "major_axis_length": major, "minor_axis_length": minor,
           "elongation": major / np.maximum(minor, 1.0),
           "eccentricity": stats["eccentricity"].to_numpy(), "solidity": solid,
           "extent": area / np.maximum(box, 1.0)}

    # Intensity, stain and texture: sums over the nucleus pixels.
    glass = float(np.percentile(g, _GLASS_PERCENTILE))
    od = optical_density(g, max(glass, 1e-3))
    hed = rgb2hed(np.clip(rgb, 0, 1))
    edge = np.hypot(ndi.sobel(g, 0), ndi.sobel(g, 1))
    inside = np.flatnonzero(nuclei.ravel())
    k = _per_object(inside, nuclei, ids)
    pixels = rgb.reshape(-1, 3)[inside].astype(np.float64)
    _, mean_rgb = _means(k, pixels, n)
    _, var_rgb = _means(k, (pixels - mean_rgb[k]) ** 2, n)  # two passes: no cancellation
    std_rgb = np.sqrt(var_rgb)
    _, stain = _means(k, np.column_stack([a.ravel()[inside] for a in (
        od, hed[..., 0], hed[..., 1], edge)]), n)
    for i, channel in enumerate(_CHANNELS):
        out[f"nucleus_mean_{channel}"] = mean_rgb[:, i]
        out[f"nucleus_std_{channel}"] = std_rgb[:, i]
    for i, name in enumerate(_STAIN):
        out[name] = stain[:, i]

    # The cell: cytoplasm pixels of each nucleus's cell.
    cyto_area = np.zeros(n)
    cyto = np.full((n, 2), np.nan)
    if labels is not None:
        labels = np.asarray(labels)
        if labels.shape != nuclei.shape:
            raise ValueError(f"`labels` (shape {labels.shape}) must have the shape of "
                             f"`nuclei` (shape {nuclei.shape})")
        if (labels == 1).any():
            if cells is None:
                cells = assign_cells(nuclei, labels > 0)
            cells = np.asarray(cells)
            where = np.flatnonzero((labels.ravel() == 1) & (cells.ravel() > 0))
            kc = _per_object(where, cells, ids)
            keep = kc >= 0
            count, means = _means(kc[keep], np.column_stack(
                [g.ravel()[where][keep], od.ravel()[where][keep]]), n)
            cyto_area, cyto = count, means
    out["cell_area"] = area + cyto_area
    out["cytoplasm_area"] = cyto_area
    with np.errstate(invalid="ignore", divide="ignore"):
        out["nc_ratio"] = np.where(cyto_area > 0, area / np.maximum(cyto_area, 1), np.nan)
    out["cytoplasm_mean_gray"], out["cytoplasm_od"] = cyto[:, 0], cyto[:, 1]
    out["od_contrast"] = out["nucleus_od"] - cyto[:, 1]

    # Neighbourhood: other nuclei (centroids) within radius and 2 radius, the nearest.
    centres = stats[["centroid_row", "centroid_col"]].to_numpy() * unit
    tree = cKDTree(centres)
    out["neighbours_r"] = tree.query_ball_point(centres, radius, return_length=True) - 1.0
    out["neighbours_2r"] = tree.query_ball_point(centres, 2 * radius, return_length=True) - 1.0
    nearest = tree.query(centres, k=2)[0][:, 1] if n > 1 else np.full(n, np.inf)
    out["nearest_distance"] = np.where(np.isfinite(nearest), nearest, np.nan)

    for name in _LENGTHS - {"nearest_distance"}:
        out[name] = out[name] * unit
    for name in _AREAS:
        out[name] = out[name] * unit ** 2
    return ids, np.column_stack([np.asarray(out[name], np.float64) for name in names]), names


def class_counts(classes, class_names, shape, *, pixel_size: float | None = None
                 ) -> pd.DataFrame:
    """Objects per class, their share and their density in the image.

    Parameters
    ----------
    classes : sequence of str
        One predicted class per object.
    class_names : sequence of str
        Every class, in the order of the table (classes not in it come after).
    shape : (int, int)
        The image's rows and columns.
    pixel_size : float, optional
        µm per pixel: densities per mm² (``cells_per_mm2``). Without it, per
        megapixel (``cells_per_megapixel``), as the column name says.

    Returns
    -------
    pandas.DataFrame with ``class``, ``count``, ``share`` and ``cells_per_mm2`` or
    ``cells_per_megapixel``; ``attrs["density_unit"]`` is ``"mm²"`` or ``"megapixel"``.

    Examples
    --------
    >>> class_counts(["a", "b", "a"], ["a", "b"], (1000, 1000), pixel_size=1.0)
      class  count     share  cells_per_mm2
    0     a      2  0.666667            2.0
    1     b      1  0.333333            1.0
    """
    rows, cols = (int(v) for v in shape[:2])
    if rows <= 0 or cols <= 0:
        raise ValueError(f"`shape` must be positive, got {tuple(shape)}")
    classes = pd.Series(list(classes), dtype=object)
    order = list(dict.fromkeys([*class_names, *classes.unique()]))
    counts = classes.value_counts().reindex(order, fill_value=0).astype(np.int64)
    total = max(int(counts.sum()), 1)
    if pixel_size is not None:
        if not (np.isfinite(pixel_size) and pixel_size > 0):
            raise ValueError(f"`pixel_size` must be > 0 µm per pixel, got {pixel_size!r}")
        extent, column, unit = rows * cols * (pixel_size / 1000.0) ** 2, "cells_per_mm2", "mm²"
    else:
        extent, column, unit = rows * cols / 1e6, "cells_per_megapixel", "megapixel"
    table = pd.DataFrame({"class": order, "count": counts.to_numpy(),
                          "share": counts.to_numpy() / total,
                          column: counts.to_numpy() / extent})
    table.attrs["density_unit"] = unit
    return table


def _check_names(class_names) -> tuple:
    names = tuple(str(n).strip() for n in class_names)
    if not 2 <= len(names) <= _MAX_CLASSES:
        raise ValueError(f"`class_names` must hold 2 to {_MAX_CLASSES} names, got {len(names)}")
    bad = [n for n in names if not n or len(n) > _MAX_NAME]
    if bad:
        raise ValueError(f"`class_names` must be non-empty, at most {_MAX_NAME} characters, "
                         f"got {bad[0]!r}")
    if len(set(names)) != len(names):
        raise ValueError(f"`class_names` must be distinct, got {list(names)}")
    return names


class ObjectClassifier(ModelFile):
    """A random forest over :func:`object_features`: one class per nucleus.

    Parameters
    ----------
    class_names : sequence of str
        The classes (2 to 32, distinct); rename them with :meth:`rename_class`.
    n_estimators : int
        Trees of the forest.
    microns : bool
        Features in µm (a pixel size is then needed for every image), so that one
        classifier serves images of different magnifications; else pixels.
    radius : float, optional
        Neighbourhood radius, in the features' unit (default :data:`DEFAULT_RADIUS`).
    n_jobs : int
        Threads for fitting and prediction.

    Examples
    --------
    >>> from cellseg_core.data.synthetic import two_type_cells
    >>> s = two_type_cells(0, size=128)
    >>> clf = ObjectClassifier(["round", "long"], n_estimators=20)
    >>> ids, x, _ = clf.features(s.image, s.nuclei, s.labels)
    >>> clf = clf.fit(x, s.types[ids - 1], rng=0)
    >>> bool((clf.predict(x) == np.array(["round", "long"])[s.types[ids - 1]]).all())
    True
    """

    kind = "ObjectClassifier"

    def __init__(self, class_names=DEFAULT_CLASSES, *, n_estimators: int = 200,
                 microns: bool = False, radius: float | None = None, n_jobs: int = 1):
        self.class_names = _check_names(class_names)
        if int(n_estimators) < 1:
            raise ValueError(f"`n_estimators` must be >= 1, got {n_estimators!r}")
        self.n_estimators = int(n_estimators)
        self.microns = bool(microns)
        self.radius = float(DEFAULT_RADIUS["um" if microns else "px"] if radius is None
                            else radius)
        if not (np.isfinite(self.radius) and self.radius > 0):
            raise ValueError(f"`radius` must be > 0, got {radius!r}")
        self.n_jobs = int(n_jobs)
        self.model_ = None
        self.fit_seconds_ = None
        self.training_counts_ = {}

    def __repr__(self) -> str:
        state = "fitted" if self.model_ is not None else "not fitted"
        return (f"ObjectClassifier({list(self.class_names)}, {self.n_estimators} trees, "
                f"{'µm' if self.microns else 'px'}, {state})")

    @property
    def config(self) -> dict:
        """The constructor's arguments as JSON types (stored in model files)."""
        return {"n_estimators": self.n_estimators, "microns": self.microns,
                "radius": self.radius}

    def rename_class(self, old: str, new: str) -> "ObjectClassifier":
        """Call class `old` `new` from now on (predictions and files); returns self."""
        names = list(self.class_names)
        if old not in names:
            raise ValueError(f"`old` must be one of {names}, got {old!r}")
        names[names.index(old)] = new
        self.class_names = _check_names(names)
        self.training_counts_ = {new if k == old else k: v
                                 for k, v in self.training_counts_.items()}
        return self

    def rename_classes(self, names) -> "ObjectClassifier":
        """New names for all classes, in order (position i keeps class i); returns self.

        Examples
        --------
        >>> ObjectClassifier(["a", "b"]).rename_classes(["b", "a"]).class_names
        ('b', 'a')
        """
        names = _check_names(names)
        if len(names) != len(self.class_names):
            raise ValueError(f"`names` must hold {len(self.class_names)} names, got "
                             f"{len(names)}")
        mapping = dict(zip(self.class_names, names))
        self.class_names = names
        self.training_counts_ = {mapping.get(k, k): v for k, v in self.training_counts_.items()}
        return self

    # --- features ----------------------------------------------------------------------
    def features(self, image, nuclei, labels=None, *, cells=None,
                 pixel_size: float | None = None):
        """:func:`object_features` with this classifier's unit and radius.

        Raises
        ------
        ValueError
            When the classifier works in µm and no `pixel_size` is given.
        """
        if self.microns and pixel_size is None:
            raise ValueError("this object classifier measures in µm: give the pixel size "
                             "(µm per pixel) of the image")
        return object_features(image, nuclei, labels, cells=cells,
                               pixel_size=pixel_size if self.microns else None,
                               radius=self.radius)

    def _matrix(self, features) -> np.ndarray:
        x = np.asarray(features, np.float64)
        if x.ndim != 2 or x.shape[1] != len(FEATURE_NAMES):
            raise ValueError(f"`features` must be (K, {len(FEATURE_NAMES)}) as object_features "
                             f"returns, got shape {x.shape}")
        return np.where(np.isfinite(x), x, MISSING)

    def _codes(self, classes) -> np.ndarray:
        classes = np.asarray(classes)
        if classes.dtype.kind in "iu":
            if classes.size and (classes.min() < 0 or classes.max() >= len(self.class_names)):
                raise ValueError(f"`classes` as indices must be in 0..{len(self.class_names) - 1}")
            return classes.astype(np.int64)
        index = {n: i for i, n in enumerate(self.class_names)}
        unknown = sorted({str(c) for c in classes.tolist()} - set(index))
        if unknown:
            raise ValueError(f"`classes` holds {unknown[:5]}, not among the class names "
                             f"{list(self.class_names)}")
        return np.array([index[str(c)] for c in classes.tolist()], np.int64)

    # --- fit / predict -----------------------------------------------------------------
    def fit(self, features, classes, *, rng=None) -> "ObjectClassifier":
        """Fit the forest on objects' `features` (K, F) and their `classes`.

        Parameters
        ----------
        features : (K, F) ndarray
            From :meth:`features` (NaN allowed: undefined features).
        classes : (K,) sequence of str or int
            Class names, or indices into :attr:`class_names`.
        rng : int or Generator, optional
            Seeds the forest.

        Raises
        ------
        ValueError
            When sizes differ, a class is unknown, or fewer than two classes occur.
        """
        from sklearn.ensemble import RandomForestClassifier

        start = time.perf_counter()
        x = self._matrix(features)
        y = self._codes(classes)
        if len(y) != len(x):
            raise ValueError(f"`classes` ({len(y)}) must have one entry per row of "
                             f"`features` ({len(x)})")
        if np.unique(y).size < 2:
            raise ValueError("`classes` must hold at least two different classes (give "
                             "examples of each class you want told apart)")
        seed = int(np.random.default_rng(rng).integers(2**31 - 1))
        # Balanced: users click more cells of the common class than of the rare one.
        model = RandomForestClassifier(self.n_estimators, class_weight="balanced",
                                       n_jobs=self.n_jobs, random_state=seed)
        self.model_ = model.fit(x, y)
        self.fit_seconds_ = time.perf_counter() - start
        codes, counts = np.unique(y, return_counts=True)
        self.training_counts_ = {self.class_names[c]: int(n) for c, n in zip(codes, counts)}
        return self

    def _check_fitted(self):
        if self.model_ is None:
            raise ValueError("this ObjectClassifier is not fitted: call fit() or load it")

    def predict_proba(self, features) -> np.ndarray:
        """(K, C) probabilities over :attr:`class_names` (0 for a class never trained)."""
        self._check_fitted()
        x = self._matrix(features)
        out = np.zeros((len(x), len(self.class_names)))
        if len(x):
            out[:, self.model_.classes_.astype(int)] = self.model_.predict_proba(x)
        return out

    def predict(self, features) -> np.ndarray:
        """(K,) class names (object array)."""
        proba = self.predict_proba(features)
        return np.array(self.class_names, dtype=object)[proba.argmax(1)] if len(proba) \
            else np.array([], dtype=object)

    def classify(self, image, nuclei, labels=None, *, cells=None,
                 pixel_size: float | None = None) -> pd.DataFrame:
        """Every nucleus's class: a table of ``label``, ``class``, ``class_probability``
        (the winning probability) and ``p_<class>`` for each class, sorted by label."""
        ids, x, _ = self.features(image, nuclei, labels, cells=cells, pixel_size=pixel_size)
        proba = self.predict_proba(x)
        best = proba.argmax(1) if len(proba) else np.zeros(0, int)
        table = pd.DataFrame({"label": ids,
                              "class": np.array(self.class_names, dtype=object)[best],
                              "class_probability": proba[np.arange(len(best)), best]})
        for i, name in enumerate(self.class_names):
            table[f"p_{name}"] = proba[:, i]
        return table

    # --- files -------------------------------------------------------------------------
    def _header(self) -> dict:
        self._check_fitted()
        return {"class_names": list(self.class_names), "feature_names": list(FEATURE_NAMES),
                "config": self.config, "fit_seconds": self.fit_seconds_,
                "training_counts": self.training_counts_}

    def to_bytes(self) -> bytes:
        """The model file's content (:meth:`save` writes it; :meth:`load` reads it)."""
        return _model_bytes(self.kind, self._header(), self.model_)

    @classmethod
    def load(cls, source) -> "ObjectClassifier":
        """Read a file (a path or bytes) written by :meth:`save` / :meth:`to_bytes`.

        The same checks as every model file (:func:`~cellseg_core.learn.load_model`):
        magic, header, format, scikit-learn version, checksum, and a payload built
        only from allowed types (never a pickle).

        Raises
        ------
        ValueError
            For anything that is not an object classifier of this format.
        """
        header, payload, name = read_model_file(source)
        if header.get("kind") != cls.kind:
            raise ValueError(f"{name}: holds a {header.get('kind')}, not an object classifier")
        return cls._read(header, payload, name)

    @classmethod
    def _read(cls, header: dict, payload: bytes, name: str, **_) -> "ObjectClassifier":
        if header.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"{name}: object classifiers exist in model format "
                             f"{FORMAT_VERSION} only, got {header.get('format_version')!r}")
        _check_sklearn_version(header, name)
        payload = _checked_payload(header, payload, name)
        try:
            forest = _load_skops(payload)
        except ValueError as err:
            raise ValueError(f"{name}: corrupted or foreign model file ({err})") from None
        try:
            if type(forest).__name__ != "RandomForestClassifier":
                raise TypeError(f"the payload is a {type(forest).__name__}, not a forest")
            if list(header["feature_names"]) != list(FEATURE_NAMES):
                raise ValueError("its features are not this version's (retrain it)")
            model = cls(header["class_names"], **header["config"])
            classes = np.asarray(forest.classes_)
            if (forest.n_features_in_ != len(FEATURE_NAMES) or classes.dtype.kind not in "iu"
                    or classes.min() < 0 or classes.max() >= len(model.class_names)):
                raise ValueError("the forest does not match the header")
        except (KeyError, TypeError, AttributeError, ValueError) as err:
            raise ValueError(f"{name}: corrupted model file ({err})") from None
        model.model_ = forest
        model.fit_seconds_ = header.get("fit_seconds")
        counts = header.get("training_counts")
        model.training_counts_ = dict(counts) if isinstance(counts, dict) else {}
        return model


def dataset_nuclei(dataset, id, mask) -> np.ndarray:
    """Nucleus ids as a class file names them: the instance labels, else the connected
    regions of ``mask == 2`` (see :mod:`cellseg_core.data.classes`)."""
    instances = dataset.instances(id) if hasattr(dataset, "instances") else None
    return instances if instances is not None else label_objects(mask == 2)


def train_object_classifier(dataset, ids, classes_of, classifier: ObjectClassifier | None = None,
                            *, pixel_size: float | None = None, n_estimators: int = 200,
                            rng=0, progress=None) -> ObjectClassifier:
    """Fit an object classifier on the labelled nuclei of dataset items.

    Parameters
    ----------
    dataset : Dataset
        Images, masks (0/1/2) and optional nucleus instances.
    ids : list of str
        The items to use; those for which `classes_of` gives None are skipped.
    classes_of : callable
        ``classes_of(id)`` -> a ``label,class`` table
        (:func:`cellseg_core.data.classes.read_classes`) or None.
    classifier : ObjectClassifier, optional
        Unfitted; default: one of `n_estimators` trees whose classes are those the
        class files name, sorted.
    pixel_size : float, optional
        µm per pixel of every image (needed by a classifier in µm).
    rng, progress
        ``rng`` seeds the forest; ``progress(fraction, message)``.

    Raises
    ------
    ValueError
        When no item has classes, the class files name fewer than two classes, or a
        class file names a nucleus the item lacks.
    """
    xs, ys, used = [], [], []
    ids = list(ids)
    for n, id in enumerate(ids):
        table = classes_of(id)
        if table is None:
            continue
        mask = dataset.mask(id)
        if mask is None:
            raise ValueError(f"item {id!r} has classes but no mask (nuclei to measure)")
        nuclei = dataset_nuclei(dataset, id, mask)
        probe = classifier or ObjectClassifier(["a", "b"])
        found, x, _ = probe.features(dataset.image(id), nuclei, mask, pixel_size=pixel_size)
        rows = np.searchsorted(found, table["label"].to_numpy())
        rows = np.minimum(rows, max(found.size - 1, 0))
        absent = table["label"].to_numpy()[(found.size == 0) | (found[rows]
                                                                != table["label"].to_numpy())]
        if absent.size:
            raise ValueError(f"item {id!r}: its class file names nuclei {absent[:5].tolist()} "
                             f"that its labels do not hold (it has {found.size} nuclei)")
        xs.append(x[rows])
        ys.extend(table["class"].tolist())
        used.append(id)
        if progress is not None:
            progress(0.8 * (n + 1) / len(ids), f"features {n + 1}/{len(ids)}")
    if not used:
        raise ValueError("no image has a class file (classes/<stem>.csv with the columns "
                         "label,class)")
    if classifier is None:
        found = sorted(set(ys))
        if len(found) < 2:
            raise ValueError(f"the class files name only {found}: an object classifier "
                             "needs examples of at least two classes")
        classifier = ObjectClassifier(found, n_estimators=n_estimators)
    classifier.fit(np.concatenate(xs), ys, rng=rng)
    if progress is not None:
        progress(1.0, f"fitted on {len(ys)} nuclei of {len(used)} images")
    return classifier


def score_object_classifier(classifier: ObjectClassifier, dataset, ids, classes_of, *,
                            pixel_size: float | None = None) -> dict | None:
    """Accuracy of `classifier` over the labelled nuclei of items `ids`.

    Parameters
    ----------
    classifier : ObjectClassifier (fitted)
    dataset, ids, classes_of, pixel_size
        As :func:`train_object_classifier`.

    Returns
    -------
    dict with ``test_objects``, ``accuracy`` and ``balanced_accuracy`` (the mean of
    the per-class recalls), or None when no item of `ids` has classes. Labelled
    nuclei of a class the classifier does not know count as errors.
    """
    truth, predicted = [], []
    for id in ids:
        table = classes_of(id)
        if table is None:
            continue
        mask = dataset.mask(id)
        found = classifier.classify(dataset.image(id), dataset_nuclei(dataset, id, mask), mask,
                                    pixel_size=pixel_size)
        merged = table.merge(found, on="label", how="left", suffixes=("_true", ""))
        truth.extend(merged["class_true"])
        predicted.extend(merged["class"].fillna(""))
    if not truth:
        return None
    truth, predicted = np.array(truth, object), np.array(predicted, object)
    recalls = [float((predicted[truth == c] == c).mean()) for c in np.unique(truth)]
    return {"test_objects": len(truth), "accuracy": float((truth == predicted).mean()),
            "balanced_accuracy": float(np.mean(recalls))}
