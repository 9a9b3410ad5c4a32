"""The built-in nucleus model: a small U-Net run with onnxruntime, no PyTorch.

The network predicts, per pixel, background / nucleus interior / nucleus boundary
(a 1-px inner ring of every nucleus, so that touching nuclei are parted by a double
ring). Instances come from a marker watershed: markers are the connected parts of the
interior probability above a threshold, and they flood the foreground (interior plus
boundary probability). The model was trained on images rescaled so that their median
nucleus is :data:`MODEL_DIAMETER`-ish pixels across (the exact value is stored in the
model file); an image is rescaled by ``model diameter / diameter`` before prediction,
where ``diameter`` is given by the user or estimated (:func:`estimate_diameter`).

The training script (PyTorch) is ``training/train_nuclei.py``; the model card is
``cellseg_core/models/nuclei.md``.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi
from skimage.segmentation import relabel_sequential, watershed
from skimage.transform import resize

from ..autoseg import RELATIVE, estimate_nucleus_diameter, split_nuclei
from ..instances import filter_by_size, label_objects
from ..io import as_float_image
from ..morphology import fill_holes
from ..params import Mode, Params
from ..pipeline import Segmentation
from ..scale import median_diameter

__all__ = ["BUILTIN_MODEL", "NucleusModel", "predict_nuclei", "normalize_image",
           "probabilities_to_instances", "estimate_diameter", "nucleus_targets",
           "LEGACY_DECODE", "DECODE", "TTA_PASSES"]

#: The model file shipped inside the package.
BUILTIN_MODEL = Path(__file__).resolve().parent.parent / "models" / "nuclei.onnx"

#: Marks a file as one of ours (ONNX metadata key ``cellseg_format``).
FORMAT = "cellseg-nuclei-unet"
FORMAT_VERSION = "1"

_SESSIONS: dict = {}
_LOCK = threading.Lock()

#: How a model file without decode keys in its metadata is decoded: the way every file
#: was before the keys existed (markers = interior cores; size estimated by the model).
LEGACY_DECODE = {"decode": "interior", "size_estimate": "model", "tta": "1"}
#: The decode new files are written with (chosen on the train splits, issue 18):
#: foreground parted by a distance-transform watershed, each part kept when it holds
#: an interior core; the size read off the image as ``auto-nuclei`` does.
DECODE = {"decode": "distance", "size_estimate": "classical", "tta": "1"}
#: Test-time augmentation: passes over the dihedral transforms (rot90 k, then flipped).
TTA_PASSES = (1, 2, 4, 8)
_DECODES = ("interior", "distance")
_SIZE_ESTIMATES = ("model", "classical")


# --- pieces shared with the training script -------------------------------------------------

def normalize_image(image, *, low: float = 1.0, high: float = 99.8) -> np.ndarray:
    """RGB float32 image scaled so that its `low`/`high` percentiles map to 0 and 1.

    Gray images are replicated to three channels; the percentiles are taken over all
    channels together (colour balance is kept). Values outside [0, 1] are kept but
    bounded to [-0.5, 1.5], so that a bright speck cannot dominate.

    Examples
    --------
    >>> import numpy as np
    >>> out = normalize_image(np.linspace(0, 1, 1000).reshape(10, 100))
    >>> out.shape, out.dtype, round(float(out.min()), 2), round(float(out.max()), 2)
    ((10, 100, 3), dtype('float32'), -0.01, 1.0)
    """
    image = as_float_image(image)
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=-1)
    lo, hi = np.percentile(image, [low, high])
    scale = 1.0 / max(float(hi - lo), 1e-6)
    out = (image - np.float32(lo)) * np.float32(scale)
    return np.clip(out, -0.5, 1.5, out=out).astype(np.float32, copy=False)


def nucleus_targets(labels: np.ndarray) -> np.ndarray:
    """Training classes of an instance image: 0 background, 1 interior, 2 boundary.

    The boundary is every nucleus pixel with a 4-neighbour outside that nucleus.

    Examples
    --------
    >>> import numpy as np
    >>> lab = np.zeros((5, 6), int); lab[1:4, 1:3] = 1; lab[1:4, 3:5] = 2
    >>> nucleus_targets(lab)
    array([[0, 0, 0, 0, 0, 0],
           [0, 2, 2, 2, 2, 0],
           [0, 2, 2, 2, 2, 0],
           [0, 2, 2, 2, 2, 0],
           [0, 0, 0, 0, 0, 0]], dtype=uint8)
    """
    labels = np.asarray(labels)
    padded = np.pad(labels, 1, mode="edge")
    edge = np.zeros(labels.shape, bool)
    for dr, dc in ((0, 1), (2, 1), (1, 0), (1, 2)):
        edge |= padded[dr:dr + labels.shape[0], dc:dc + labels.shape[1]] != labels
    out = (labels > 0).astype(np.uint8)
    out[(labels > 0) & edge] = 2
    return out


def probabilities_to_instances(probabilities: np.ndarray, *, marker_threshold: float = 0.5,
                               foreground_threshold: float = 0.5,
                               min_size: int = 12, decode: str = "interior",
                               diameter: float = 20.0) -> np.ndarray:
    """Nucleus instances from (M, N, 3) class probabilities by marker watershed.

    Parameters
    ----------
    probabilities : (M, N, 3) ndarray
        Background, interior and boundary probabilities.
    marker_threshold : float
        Interior probability above which a pixel is part of a nucleus core.
    foreground_threshold : float
        Interior + boundary probability above which a pixel belongs to some nucleus.
    min_size : int
        Smaller cores and smaller final objects (pixels) are dropped.
    decode : {'interior', 'distance'}
        ``interior``: each core (connected pixels above `marker_threshold`) is a
        marker and floods the foreground downhill in interior probability.
        ``distance``: the foreground (holes filled) is parted as ``auto-nuclei``
        parts its mask (:func:`cellseg_core.autoseg.split_nuclei` on the distance to
        the background, smoothed, markers at least ``RELATIVE['marker_depth']`` radii
        above their saddle, compact watershed), and a part is kept when it holds at
        least `min_size` core pixels.
        It parts touching nuclei whose cores have merged.
    diameter : float
        Nucleus diameter (px) at this scale, for ``distance``: the model's diameter.

    Returns
    -------
    (M, N) ndarray of int32, instances 1..n

    Examples
    --------
    >>> import numpy as np
    >>> p = np.zeros((1, 10, 3)); p[..., 0] = 1
    >>> p[0, 1:4] = [0, 1, 0]; p[0, 4:6] = [0, 0, 1]; p[0, 6:9] = [0, 1, 0]
    >>> probabilities_to_instances(p, min_size=1)
    array([[0, 1, 1, 1, 1, 2, 2, 2, 2, 0]], dtype=int32)

    Two overlapping disks whose cores touch: one marker for ``interior``, two parts
    for ``distance``.

    >>> rr, cc = np.indices((30, 44))
    >>> fg = ((rr - 15) ** 2 + (cc - 14) ** 2 < 100) | ((rr - 15) ** 2 + (cc - 29) ** 2 < 100)
    >>> p = np.stack([~fg, fg, np.zeros_like(fg)], -1).astype(float)
    >>> [int(probabilities_to_instances(p, decode=d, diameter=20).max())
    ...  for d in ("interior", "distance")]
    [1, 2]
    """
    probabilities = np.asarray(probabilities, np.float32)
    if probabilities.ndim != 3 or probabilities.shape[-1] != 3:
        raise ValueError(f"`probabilities` must be (M, N, 3), got shape {probabilities.shape}")
    if decode not in _DECODES:
        raise ValueError(f"`decode` must be one of {list(_DECODES)}, got {decode!r}")
    interior = probabilities[..., 1]
    foreground = (interior + probabilities[..., 2]) > foreground_threshold
    core = interior > marker_threshold
    if decode == "distance":
        if not (np.isfinite(diameter) and diameter > 0):
            raise ValueError(f"`diameter` must be a positive number, got {diameter!r}")
        foreground = fill_holes(foreground | core)
        distance = ndi.distance_transform_edt(foreground) / (diameter / 2)
        landscape = ndi.gaussian_filter(distance, RELATIVE["marker_smoothing"] * diameter,
                                        mode="nearest")
        labels = split_nuclei(foreground, landscape, RELATIVE["marker_depth"],
                              RELATIVE["compactness"] * 2 / diameter)
        cored = np.bincount(labels[core], minlength=int(labels.max()) + 1) >= min_size
        cored[0] = False
        labels = np.where(cored[labels], labels, 0)
    else:
        markers = filter_by_size(label_objects(core), min_size)
        if markers.max() == 0:
            return np.zeros(interior.shape, np.int32)
        labels = watershed(-interior, markers, mask=foreground | (markers > 0))
    labels = filter_by_size(labels, min_size)
    return relabel_sequential(labels)[0].astype(np.int32, copy=False)


# --- the model file ---------------------------------------------------------------------

def _session(path: Path):
    """One cached onnxruntime session per (file, size, mtime); refuses foreign files."""
    import onnxruntime as ort

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"`model`: no model file at {path}")
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    with _LOCK:
        if key in _SESSIONS:
            return _SESSIONS[key]
        options = ort.SessionOptions()
        options.intra_op_num_threads = 2
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        try:
            session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types
            raise ValueError(f"`model`: {path.name} is not a readable ONNX model "
                             f"({type(exc).__name__})") from None
        meta = session.get_modelmeta().custom_metadata_map
        if meta.get("cellseg_format") != FORMAT:
            raise ValueError(f"`model`: {path.name} is an ONNX model but not a cellseg nucleus "
                             f"model (metadata cellseg_format={meta.get('cellseg_format')!r}, "
                             f"expected {FORMAT!r})")
        if meta.get("cellseg_format_version") != FORMAT_VERSION:
            raise ValueError(f"`model`: {path.name} has format version "
                             f"{meta.get('cellseg_format_version')!r}; this version reads "
                             f"{FORMAT_VERSION!r}")
        inputs, outputs = session.get_inputs(), session.get_outputs()
        if len(inputs) != 1 or len(inputs[0].shape) != 4 or inputs[0].shape[1] != 3 \
                or len(outputs) != 1:
            raise ValueError(f"`model`: {path.name} does not take one (B, 3, H, W) image")
        _SESSIONS.clear()  # keep one model in memory; a new file replaces the old
        _SESSIONS[key] = (session, meta)
        return session, meta


@dataclass(frozen=True)
class _Settings:
    diameter: float
    multiple: int
    low: float
    high: float


class NucleusModel:
    """The nucleus U-Net from an ONNX file (the built-in one by default).

    Parameters
    ----------
    path : str or Path, optional
        An ONNX file written by ``training/train_nuclei.py``; default :data:`BUILTIN_MODEL`.
    marker_threshold, foreground_threshold : float, optional
        Passed to :func:`probabilities_to_instances`; default: the values chosen on the
        validation images at training time (stored in the file), else 0.5.
    min_size : int
        Smallest nucleus kept, in pixels at model scale.
    decode : {'interior', 'distance'}, optional
        How probabilities become instances (:func:`probabilities_to_instances`).
    size_estimate : {'model', 'classical'}, optional
        How the nucleus diameter is estimated when not given (:func:`estimate_diameter`).
    tta : {1, 2, 4, 8}, optional
        Test-time augmentation: probabilities averaged over this many flips/rotations
        (each a network pass: 4 or 8 cost 4 or 8 times the time of one).

    The last three default to the file's metadata keys ``decode``, ``size_estimate``
    and ``tta``; a file without them (written before they existed) gets
    :data:`LEGACY_DECODE`, so it decodes as it always did.

    Raises
    ------
    ValueError
        When the file is missing, not ONNX, or an ONNX model that is not ours.
    """

    def __init__(self, path=None, *, marker_threshold: float | None = None,
                 foreground_threshold: float | None = None, min_size: int = 12,
                 decode: str | None = None, size_estimate: str | None = None,
                 tta: int | None = None):
        self.path = Path(path) if path is not None else BUILTIN_MODEL
        self._session, meta = _session(self.path)
        low, high = (float(v) for v in meta.get("normalize_percentiles", "1,99.8").split(","))
        self.settings = _Settings(float(meta["diameter"]), int(meta.get("multiple", 8)), low, high)
        self.metadata = dict(meta)
        self.marker_threshold = float(meta.get("marker_threshold", 0.5)
                                      if marker_threshold is None else marker_threshold)
        self.foreground_threshold = float(meta.get("foreground_threshold", 0.5)
                                          if foreground_threshold is None else foreground_threshold)
        self.min_size = min_size
        self.decode = decode if decode is not None else meta.get("decode",
                                                                 LEGACY_DECODE["decode"])
        self.size_estimate = (size_estimate if size_estimate is not None else
                              meta.get("size_estimate", LEGACY_DECODE["size_estimate"]))
        self.tta = tta if tta is not None else meta.get("tta", LEGACY_DECODE["tta"])
        if self.decode not in _DECODES:
            raise ValueError(f"`decode` must be one of {list(_DECODES)}, got {self.decode!r}")
        if self.size_estimate not in _SIZE_ESTIMATES:
            raise ValueError(f"`size_estimate` must be one of {list(_SIZE_ESTIMATES)}, "
                             f"got {self.size_estimate!r}")
        given = self.tta
        try:
            self.tta = int(given)
        except (TypeError, ValueError):
            self.tta = None
        if self.tta not in TTA_PASSES:
            raise ValueError(f"`tta` must be one of {list(TTA_PASSES)}, got {given!r}")

    @property
    def diameter(self) -> float:
        """Nucleus diameter (px) the network was trained at."""
        return self.settings.diameter

    # -- network ---------------------------------------------------------------------------
    def _run(self, x: np.ndarray) -> np.ndarray:
        """Probabilities (M, N, 3) of a (M, N, 3) normalised image, M and N multiples."""
        logits = self._session.run(None, {self._session.get_inputs()[0].name:
                                          np.ascontiguousarray(np.moveaxis(x, -1, 0)[None])})[0][0]
        logits = logits - logits.max(0, keepdims=True)
        e = np.exp(logits)
        return np.moveaxis(e / e.sum(0, keepdims=True), 0, -1)

    def probabilities(self, x: np.ndarray, *, tile: int = 512, overlap: int = 128,
                      tta: int = 1) -> np.ndarray:
        """Class probabilities of a normalised (M, N, 3) image at model scale, in tiles.

        With ``tta`` > 1, the mean of the probabilities of the first ``tta`` of the
        image's eight flips/rotations (rot90 by 0-3 quarter turns, then the same
        mirrored), each mapped back.

        Tiles of ``tile`` px overlapping by ``overlap`` px start on multiples of the
        network's stride; each tile contributes only its centre (the overlap is split
        half-half between neighbours), so the tile edges, where the network sees
        padding, never reach the output. With the default overlap (a 64-px margin) the
        result equals the whole-image prediction (measured: identical to float
        precision on a 512² image; a 32-px margin differs by up to 0.6 near seams).
        """
        if tta not in TTA_PASSES:
            raise ValueError(f"`tta` must be one of {list(TTA_PASSES)}, got {tta!r}")
        if tta > 1:
            order = [(k, False) for k in range(4)] + [(k, True) for k in range(4)]
            if tta == 2:
                order = [(0, False), (0, True)]
            total = np.zeros(x.shape[:2] + (3,), np.float32)
            for k, mirror in order[:tta]:
                y = np.rot90(x[:, ::-1] if mirror else x, k)
                p = np.rot90(self.probabilities(np.ascontiguousarray(y), tile=tile,
                                                overlap=overlap), -k)
                total += p[:, ::-1] if mirror else p
            return total / np.float32(tta)
        mult = self.settings.multiple
        if tile % mult or overlap % (2 * mult) or not 0 <= overlap < tile:
            raise ValueError(f"`tile` ({tile}) must be a multiple of {mult} and `overlap` "
                             f"({overlap}) a multiple of {2 * mult} below it")
        m, n = x.shape[:2]
        if m <= tile and n <= tile:
            pm, pn = (-m) % mult, (-n) % mult
            xp = np.pad(x, ((0, pm), (0, pn), (0, 0)), mode="symmetric")
            return self._run(xp)[:m, :n]
        step, half = tile - overlap, overlap // 2
        rows = list(range(0, max(m - overlap, 1), step))
        cols = list(range(0, max(n - overlap, 1), step))
        height, width = rows[-1] + tile, cols[-1] + tile
        xp = np.pad(x, ((0, height - m), (0, width - n), (0, 0)), mode="symmetric")
        out = np.empty((height, width, 3), np.float32)
        for i, r in enumerate(rows):
            for j, c in enumerate(cols):
                p = self._run(xp[r:r + tile, c:c + tile])
                r0 = 0 if i == 0 else half
                c0 = 0 if j == 0 else half
                r1 = tile if i == len(rows) - 1 else tile - half
                c1 = tile if j == len(cols) - 1 else tile - half
                out[r + r0:r + r1, c + c0:c + c1] = p[r0:r1, c0:c1]
        return out[:m, :n]

    # -- whole images ----------------------------------------------------------------------
    def predict(self, image, *, diameter: float | None = None, tile: int = 512,
                overlap: int = 128) -> tuple[np.ndarray, np.ndarray]:
        """Nucleus instances and class probabilities of an image.

        Parameters
        ----------
        image : (M, N[, 3]) ndarray
            Gray or RGB, any type :func:`cellseg_core.io.as_float_image` accepts.
        diameter : float, optional
            Typical nucleus diameter in pixels; estimated with
            :func:`estimate_diameter` when not given.
        tile, overlap : int
            Tile size and overlap (px, at model scale).

        Returns
        -------
        instances : (M, N) ndarray of int32, nuclei numbered 1..n
        probabilities : (M, N, 3) ndarray of float32, background / interior / boundary
        """
        if diameter is None and self.size_estimate == "classical":
            diameter = estimate_diameter(image, model=self, tile=tile, overlap=overlap)
        x = normalize_image(image, low=self.settings.low, high=self.settings.high)
        if diameter is None:
            diameter = estimate_diameter(x, model=self, tile=tile, overlap=overlap,
                                         _normalized=True, method="model")
        try:
            diameter = float(diameter)
        except (TypeError, ValueError):
            raise ValueError(f"`diameter` must be a number of pixels, got {diameter!r}") from None
        if not np.isfinite(diameter) or diameter <= 0:
            raise ValueError(f"`diameter` must be a positive number of pixels, got {diameter}")
        return self._predict_normalized(x, diameter, tile, overlap)

    def _predict_normalized(self, x, diameter, tile, overlap):
        prob = self.probabilities(self.to_model_scale(x, diameter), tile=tile,
                                  overlap=overlap, tta=self.tta)
        return self.decode_probabilities(prob, x.shape[:2])

    def to_model_scale(self, x: np.ndarray, diameter: float) -> np.ndarray:
        """Image `x` rescaled by ``model diameter / diameter`` (as is within 2 %)."""
        factor = self.diameter / diameter
        if abs(factor - 1) <= 0.02:
            return x
        size = tuple(max(1, int(round(s * factor))) for s in x.shape[:2])
        return resize(x, size, order=1, preserve_range=True,
                      anti_aliasing=factor < 1).astype(np.float32)

    def decode_probabilities(self, prob: np.ndarray, shape) -> tuple[np.ndarray, np.ndarray]:
        """Instances and probabilities, at image `shape`, of probabilities at model scale.

        Decoded with this model's settings (:func:`probabilities_to_instances`), then
        both resized to `shape` (nearest for the instances).
        """
        instances = probabilities_to_instances(
            prob, marker_threshold=self.marker_threshold,
            foreground_threshold=self.foreground_threshold, min_size=self.min_size,
            decode=self.decode, diameter=self.diameter)
        if prob.shape[:2] != tuple(shape):
            prob = resize(prob, shape, order=1, preserve_range=True,
                          anti_aliasing=False).astype(np.float32)
            instances = resize(instances, shape, order=0, preserve_range=True,
                               anti_aliasing=False).astype(np.int32)
            instances = relabel_sequential(instances)[0].astype(np.int32, copy=False)
        return instances, prob

    def segment(self, image, *, diameter: float | None = None) -> Segmentation:
        """:class:`~cellseg_core.pipeline.Segmentation` with nucleus instances.

        ``labels`` holds 0 (background) and 2 (nucleus), as fluorescence presets do;
        ``channel`` and ``blurred`` hold the nucleus probability (interior + boundary).
        """
        image = as_float_image(image)
        if diameter is None:
            diameter = estimate_diameter(image, model=self)
        nuclei, prob = self.predict(image, diameter=diameter)
        labels = np.where(nuclei > 0, 2, 0).astype(np.uint8)
        nucleus_p = prob[..., 1] + prob[..., 2]
        return Segmentation(labels=labels, nuclei=nuclei, channel=nucleus_p, blurred=nucleus_p,
                            raw=labels, thresholds={"diameter": diameter,
                                                    "marker": self.marker_threshold,
                                                    "foreground": self.foreground_threshold},
                            params=Params(mode=Mode.FLUORESCENCE),
                            method=f"NucleusModel/{self.path.name}")


def _model(model) -> NucleusModel:
    if isinstance(model, NucleusModel):
        return model
    return NucleusModel(model)


def estimate_diameter(image, *, model=None, tile: int = 512, overlap: int = 128,
                      method: str | None = None, _normalized: bool = False) -> float:
    """Typical nucleus diameter (px) of an image.

    Parameters
    ----------
    image : (M, N[, 3]) ndarray
    model : NucleusModel or path, optional
        Default: the built-in model.
    method : {'model', 'classical'}, optional
        Default: the model's ``size_estimate`` (its file's metadata).
        ``classical``: read off the image as ``auto-nuclei`` does
        (:func:`cellseg_core.autoseg.estimate_nucleus_diameter`: kind of image,
        nucleus channel, Otsu pieces, no network pass); when that finds nothing, the
        model's estimate. ``model``: the model is run at the image's own scale, then
        again after rescaling by the median equivalent diameter of what it found (up
        to three passes, until the estimate moves by less than 15 %); the median of
        the last pass. Nuclei smaller than ~8 px or larger than ~100 px are outside
        what ``model`` finds well (it can lock onto fragments of large nuclei).

    Returns
    -------
    float
        The estimate; the model's own diameter when nothing is found.
    """
    model = _model(model)
    method = model.size_estimate if method is None else method
    if method not in _SIZE_ESTIMATES:
        raise ValueError(f"`method` must be one of {list(_SIZE_ESTIMATES)}, got {method!r}")
    if method == "classical" and not _normalized:
        found = estimate_nucleus_diameter(image)
        if np.isfinite(found) and found > 0:
            return float(np.clip(found, 4, 400))
    x = image if _normalized else normalize_image(image, low=model.settings.low,
                                                  high=model.settings.high)
    guess = model.diameter
    for _ in range(3):
        instances, _ = model._predict_normalized(x, guess, tile, overlap)
        found = median_diameter(instances)
        if not np.isfinite(found):
            return float(model.diameter)
        found = float(np.clip(found, 4, 400))
        done = abs(np.log(found / guess)) < np.log(1.15)
        guess = found
        if done:
            break
    return guess


def predict_nuclei(image, *, diameter: float | None = None, model=None, tile: int = 512,
                   overlap: int = 128) -> tuple[np.ndarray, np.ndarray]:
    """Nucleus instances of an image with the built-in (or a given) nucleus model.

    Parameters
    ----------
    image : (M, N[, 3]) ndarray
        Fluorescence, stained or bright-field; gray or RGB, any numeric type.
    diameter : float, optional
        Typical nucleus diameter in pixels ("nuclei ≈ N px across"); estimated if None.
    model : NucleusModel or path, optional
        Default: the model shipped with the package.
    tile, overlap : int
        Tiling at model scale.

    Returns
    -------
    instances : (M, N) ndarray of int32
    probabilities : (M, N, 3) ndarray of float32 (background, interior, boundary)

    Examples
    --------
    >>> import numpy as np
    >>> img = np.zeros((64, 64), np.float32)
    >>> rr, cc = np.ogrid[:64, :64]
    >>> img[(rr - 20) ** 2 + (cc - 20) ** 2 < 100] = 1
    >>> img[(rr - 44) ** 2 + (cc - 40) ** 2 < 100] = 1
    >>> instances, prob = predict_nuclei(img, diameter=20)
    >>> int(instances.max()), prob.shape
    (2, (64, 64, 3))
    """
    return _model(model).predict(image, diameter=diameter, tile=tile, overlap=overlap)
