"""Synthetic images with exact ground truth: the seed's fluorescence model and cytology.

Two generators feed the demo datasets, the tests and the benchmarks; both are
deterministic given `rng` (anything :func:`numpy.random.default_rng` accepts).

Fluorescence (the seed's model)
    Nuclei are Gaussian blobs ``I = B·exp(−r² / 2σ²)``, summed, plus Gaussian noise
    (``NOISE_SCALE``), clipped at 0 (never at 1: two blobs may add up above 1).
    Centres are drawn by rejection sampling, at least ``MIN_SEPARATION`` apart and
    ``ceil(3σ)`` from the border so that every blob is whole. Options add a
    low-frequency illumination gradient ``G(row, col) = gradient · col / size`` (the
    issue's ``0.2·x/IMAGE_SIZE`` with ``gradient=0.2``, x being the column), a second dim
    population (brightness 0.4), or a pair of touching cells (:func:`touching_pair`).

    Ground truth: centres (row, col), instance labels and which cells are dim. The
    extent of cell k is the set of pixels where its noise-free blob is the largest
    of all blobs *and* at least half its own peak, i.e. within
    ``σ·sqrt(2 ln 2) ≈ 1.18σ`` (7.1 px for σ = 6, about 157 px) of its centre, cut
    at the bisector where two cells meet.

Cytology (bright-field, three classes)
    Transmitted light through stained cells, ``RGB = exp(−OD)`` with optical densities
    that add up (Beer–Lambert), so overlapping cells darken each other as on a slide:

    * background: near-white with slight noise (values clipped at 1, as saturated
      camera backgrounds are);
    * cell: a smooth irregular outline ``r(θ) = R·(1 + Σ a_k cos(kθ + φ_k))``, k = 2..5;
      pink or violet cytoplasm with a mottled texture and a paler rim;
    * nucleus: a darker purple smooth blob inside the cell, unevenly stained (a
      low-frequency density field and granular chromatin) with a few lighter holes
      (they stay nucleus in the mask);
    * debris: small dark specks in the background, not in the mask;
    * optics: a slight blur of the density before exposure.

    One main cell, sometimes a second one cut by the border; N/C ratios (nucleus /
    cytoplasm pixels) from normal (~0.1–0.3) to malignant-looking (~1–2). The mask is
    exact: 0 background, 1 cytoplasm, 2 nucleus.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import fft as sfft
from scipy import ndimage as ndi

from ..params import Params

__all__ = [
    "SEED", "IMAGE_SIZE", "N_CELLS", "CELL_SIGMA", "CELL_BRIGHTNESS", "NOISE_SCALE",
    "MIN_SEPARATION", "SMOOTH_SIGMA", "THRESHOLD", "MIN_CELL_SIZE", "DIM_BRIGHTNESS",
    "GRADIENT", "PAIR_DISTANCE", "NC_RANGE",
    "FluorescenceSample", "fluorescence_image", "noise_image", "touching_pair",
    "seed_params", "fluorescence_set",
    "CytologySample", "cytology_image", "cytology_set",
    "CELL_TYPES", "TwoTypeSample", "two_type_cells",
]

# --- the seed's constants -------------------------------------------------------------
SEED = 7493418
IMAGE_SIZE = 128
N_CELLS = 8
CELL_SIGMA = 6.0
CELL_BRIGHTNESS = 1.0
NOISE_SCALE = 0.15
MIN_SEPARATION = 24
# The seed's operating point.
SMOOTH_SIGMA = 2.0
THRESHOLD = 0.50
MIN_CELL_SIZE = 30
# Extensions of the model.
DIM_BRIGHTNESS = 0.4
GRADIENT = 0.2
PAIR_DISTANCE = 14.0
#: N/C ratios the cytology generator draws from (normal to malignant-looking).
NC_RANGE = (0.1, 2.0)


# ======================================================================================
# Fluorescence
# ======================================================================================
@dataclass(frozen=True, eq=False)
class FluorescenceSample:
    """A synthetic fluorescence image and its ground truth.

    Attributes
    ----------
    image : (M, N) ndarray of float32
        Non-negative intensities (not clipped at 1).
    centres : (K, 2) ndarray of float64
        Row and column of each cell's centre, in label order (cell k has label k + 1).
    labels : (M, N) ndarray of int32
        Instances 1..K (0 background); see the module docstring for the extent.
    dim : (K,) ndarray of bool
        Which cells belong to the dim population.
    brightness : (K,) ndarray of float64
        Peak brightness B of each cell.
    """

    image: np.ndarray
    centres: np.ndarray
    labels: np.ndarray
    dim: np.ndarray
    brightness: np.ndarray

    @property
    def n_cells(self) -> int:
        return len(self.centres)


def _check_positive(name, value, *, allow_zero=False):
    ok = value >= 0 if allow_zero else value > 0
    if not (math.isfinite(value) and ok):
        raise ValueError(f"`{name}` must be {'>= 0' if allow_zero else '> 0'}, got {value!r}")


def _border_margin(sigma: float) -> int:
    """Distance from the border that keeps a blob whole (3σ: under 1.2 % of its peak)."""
    return int(math.ceil(3.0 * sigma))


def _sample_centres(rng: np.random.Generator, n: int, size: int, margin: float,
                    min_separation: float, max_tries: int = 10_000) -> np.ndarray:
    """Rejection sampling of `n` centres at least `min_separation` apart.

    Candidates come in batches from `rng`; each is checked against all accepted
    centres at once, so the result depends only on the generator's state.
    """
    low, high = margin, size - 1 - margin
    if high < low:
        raise ValueError(f"`size` ({size}) is too small for blobs of this `sigma` "
                         f"(border margin {margin} px on each side)")
    centres = np.empty((n, 2))
    count = tries = 0
    while count < n:
        if tries >= max_tries:
            raise ValueError(
                f"could not place {n} cells at least {min_separation} px apart in a "
                f"{size}×{size} image after {max_tries} tries; lower `n_cells` or "
                f"`min_separation`")
        batch = rng.uniform(low, high, size=(64, 2))
        tries += len(batch)
        for candidate in batch:
            if count and np.min(np.hypot(*(centres[:count] - candidate).T)) < min_separation:
                continue
            centres[count] = candidate
            count += 1
            if count == n:
                break
    return centres


def _blobs(shape, centres, sigma, brightness):
    """Noise-free blob stack (K, M, N): blob k = B_k·exp(−r_k² / 2σ²)."""
    rows = np.arange(shape[0], dtype=np.float64)
    cols = np.arange(shape[1], dtype=np.float64)
    # Separable: exp(-(dr²+dc²)/2σ²) = exp(-dr²/2σ²)·exp(-dc²/2σ²).
    er = np.exp(-((rows[None, :] - centres[:, :1]) ** 2) / (2 * sigma ** 2))
    ec = np.exp(-((cols[None, :] - centres[:, 1:]) ** 2) / (2 * sigma ** 2))
    return brightness[:, None, None] * er[:, :, None] * ec[:, None, :]


def _instance_labels(blobs: np.ndarray, brightness: np.ndarray) -> np.ndarray:
    """Cell k where its blob is the largest and at least half its own peak."""
    if len(blobs) == 0:
        return np.zeros(blobs.shape[1:], np.int32)
    winner = np.argmax(blobs, axis=0)
    top = np.take_along_axis(blobs, winner[None], axis=0)[0]
    inside = top >= 0.5 * brightness[winner]
    return np.where(inside, winner + 1, 0).astype(np.int32)


def _fluorescence_from_centres(rng, size, centres, brightness, dim, sigma, noise, gradient):
    blobs = _blobs((size, size), centres, sigma, brightness)
    clean = blobs.sum(axis=0) if len(blobs) else np.zeros((size, size))
    if gradient:
        clean = clean + gradient * np.arange(size)[None, :] / size
    image = np.clip(clean + rng.normal(0.0, noise, (size, size)), 0.0, None)
    return FluorescenceSample(image=image.astype(np.float32), centres=centres,
                              labels=_instance_labels(blobs, brightness), dim=dim,
                              brightness=brightness)


def fluorescence_image(rng=SEED, *, size: int = IMAGE_SIZE, n_cells: int = N_CELLS,
                       sigma: float = CELL_SIGMA, brightness: float = CELL_BRIGHTNESS,
                       noise: float = NOISE_SCALE, min_separation: float = MIN_SEPARATION,
                       n_dim: int = 0, dim_brightness: float = DIM_BRIGHTNESS,
                       gradient: float = 0.0) -> FluorescenceSample:
    """The seed's synthetic fluorescence image: Gaussian nuclei plus noise.

    Parameters
    ----------
    rng : int, Generator or None
        Seed for :func:`numpy.random.default_rng`; the default gives the seed's image.
    size : int
        Side of the square image in pixels.
    n_cells : int
        Number of cells of brightness `brightness`.
    sigma : float
        Standard deviation of each Gaussian blob, in pixels.
    brightness : float
        Peak intensity B of a cell.
    noise : float
        Standard deviation of the additive Gaussian noise (then clipped at 0).
    min_separation : float
        Minimum distance between any two centres, in pixels.
    n_dim : int
        Number of additional dim cells, of peak `dim_brightness`, placed with the
        same separation rule.
    dim_brightness : float
    gradient : float
        Illumination gradient added along the columns, ``gradient · col / size``
        (0.2 is the issue's ``G = 0.2·x/IMAGE_SIZE``).

    Returns
    -------
    FluorescenceSample

    Raises
    ------
    ValueError
        For negative counts or sizes, or when the cells do not fit.

    Examples
    --------
    >>> s = fluorescence_image()
    >>> s.image.shape, s.image.dtype, s.n_cells, int(s.labels.max())
    ((128, 128), dtype('float32'), 8, 8)
    """
    size = int(size)
    if size < 1:
        raise ValueError(f"`size` must be >= 1, got {size}")
    if n_cells < 0 or n_dim < 0:
        raise ValueError(f"`n_cells` and `n_dim` must be >= 0, got {n_cells} and {n_dim}")
    _check_positive("sigma", sigma)
    _check_positive("brightness", brightness, allow_zero=True)
    _check_positive("dim_brightness", dim_brightness, allow_zero=True)
    _check_positive("noise", noise, allow_zero=True)
    _check_positive("min_separation", min_separation, allow_zero=True)
    if not math.isfinite(gradient):
        raise ValueError(f"`gradient` must be finite, got {gradient!r}")
    rng = np.random.default_rng(rng)
    total = n_cells + n_dim
    centres = _sample_centres(rng, total, size, _border_margin(sigma), min_separation)
    # Dim cells are the last n_dim drawn: the bright ones do not move when n_dim changes.
    dim = np.arange(total) >= n_cells
    bright = np.where(dim, dim_brightness, brightness).astype(np.float64)
    return _fluorescence_from_centres(rng, size, centres, bright, dim, sigma, noise, gradient)


def noise_image(rng=SEED, *, size: int = IMAGE_SIZE, noise: float = NOISE_SCALE) -> np.ndarray:
    """Pure noise, as the seed's background: Gaussian, clipped at 0, float32 (size, size).

    Examples
    --------
    >>> img = noise_image()
    >>> img.shape, bool(img.min() == 0)
    ((128, 128), True)
    """
    size = int(size)
    if size < 1:
        raise ValueError(f"`size` must be >= 1, got {size}")
    _check_positive("noise", noise, allow_zero=True)
    rng = np.random.default_rng(rng)
    return np.clip(rng.normal(0.0, noise, (size, size)), 0.0, None).astype(np.float32)


def touching_pair(distance: float = PAIR_DISTANCE, *, rng=SEED, size: int = IMAGE_SIZE,
                  sigma: float = CELL_SIGMA, brightness: float = CELL_BRIGHTNESS,
                  noise: float = NOISE_SCALE) -> FluorescenceSample:
    """Two cells `distance` px apart around the image centre, in a random direction.

    At the seed's operating point the two blobs merge into one thresholded object
    (the intensity between them stays far above 0.5); a watershed must split them.

    Examples
    --------
    >>> s = touching_pair()
    >>> round(float(np.hypot(*(s.centres[0] - s.centres[1]))), 6)
    14.0
    """
    size = int(size)
    _check_positive("distance", distance, allow_zero=True)
    _check_positive("sigma", sigma)
    _check_positive("noise", noise, allow_zero=True)
    if distance / 2 + _border_margin(sigma) > size / 2:
        raise ValueError(f"`distance` ({distance}) does not fit in a {size}-px image")
    rng = np.random.default_rng(rng)
    angle = rng.uniform(0.0, np.pi)
    centre = (size - 1) / 2.0
    offset = distance / 2 * np.array([np.sin(angle), np.cos(angle)])
    centres = np.array([centre - offset, centre + offset])
    bright = np.full(2, float(brightness))
    return _fluorescence_from_centres(rng, size, centres, bright, np.zeros(2, bool),
                                      sigma, noise, 0.0)


def seed_params() -> Params:
    """The seed's operating point as fluorescence params.

    Gaussian smoothing ``SMOOTH_SIGMA``, object where value > ``THRESHOLD``, objects
    under ``MIN_CELL_SIZE`` px dropped, no watershed.
    """
    return Params().with_values({
        "mode": "fluorescence",
        "blur.kind": "gaussian",
        "blur.sigma": SMOOTH_SIGMA,
        "threshold.method": "manual",
        "threshold.t_object": THRESHOLD,
        "cleanup.min_nucleus_size": MIN_CELL_SIZE,
        "watershed.enabled": False,
    })


_FLUO_VARIANTS = (
    {},                                    # the seed's model
    {"n_dim": 3},                          # plus a dim population
    {"gradient": GRADIENT},                # uneven illumination
    {"n_dim": 3, "gradient": GRADIENT},    # both
)


def fluorescence_set(n: int = 12, rng=SEED) -> list[FluorescenceSample]:
    """A demo set of `n` fluorescence images.

    Image 0 with the default `rng` is the seed's image; images cycle through the
    plain model, a dim population (3 cells of brightness 0.4), an illumination
    gradient (0.2) and both. The first k images do not depend on `n`.
    """
    if n < 0:
        raise ValueError(f"`n` must be >= 0, got {n}")
    seeds = _child_seeds(rng, n)
    return [fluorescence_image(seed, **_FLUO_VARIANTS[i % len(_FLUO_VARIANTS)])
            for i, seed in enumerate(seeds)]


def _child_seeds(rng, n: int) -> list:
    """`n` independent seeds from `rng`; the first is `rng` itself when it is an int.

    The others are spawned children (:meth:`numpy.random.Generator.spawn`), so the
    first k seeds do not depend on `n`.
    """
    if n == 0:
        return []
    if isinstance(rng, (int, np.integer)) and not isinstance(rng, bool):
        return [int(rng)] + np.random.default_rng(int(rng)).spawn(n - 1)
    return np.random.default_rng(rng).spawn(n)


# ======================================================================================
# Cytology
# ======================================================================================
@dataclass(frozen=True, eq=False)
class CytologySample:
    """A synthetic bright-field cytology image and its exact mask.

    Attributes
    ----------
    image : (M, N, 3) ndarray of float32
        RGB in [0, 1].
    mask : (M, N) ndarray of uint8
        0 background, 1 cytoplasm, 2 nucleus.
    """

    image: np.ndarray
    mask: np.ndarray

    @property
    def nc_ratio(self) -> float:
        """Nucleus pixels / cytoplasm pixels of the mask (NaN without cytoplasm)."""
        cytoplasm = int((self.mask == 1).sum())
        return float("nan") if cytoplasm == 0 else int((self.mask == 2).sum()) / cytoplasm


# Optical densities (−ln transmission, per R, G, B) of one unit of stain.
_OD_CYTO = np.array([[0.22, 0.50, 0.26],    # pink (eosin / orange-G rich)
                     [0.45, 0.47, 0.25],    # violet-grey
                     [0.55, 0.45, 0.20]])   # blue-violet (cyanophilic)
_OD_NUCLEUS = np.array([0.85, 0.95, 0.45])  # hematoxylin: dark purple
_OD_DEBRIS = np.array([0.90, 1.00, 0.55])
_ANGLES = np.linspace(-np.pi, np.pi, 1025)  # table of outline radii, looked up by angle


@lru_cache(maxsize=8)
def _frequency2(size: int) -> np.ndarray:
    """Squared spatial frequency of each rfft2 coefficient of a size × size image."""
    fr = sfft.fftfreq(size)[:, None]
    fc = sfft.rfftfreq(size)[None, :]
    return (fr ** 2 + fc ** 2).astype(np.float32)


def _noise_fields(rng, size, sigmas):
    """Smooth noise fields, one per sigma: Gaussian-filtered white noise (FFT, periodic),
    each rescaled to zero mean and unit standard deviation. Shape (len(sigmas), size, size).
    """
    sigmas = np.asarray(sigmas, np.float32)
    white = rng.standard_normal((len(sigmas), size, size), dtype=np.float32)
    transfer = np.exp(np.float32(-2 * np.pi ** 2) * sigmas[:, None, None] ** 2
                      * _frequency2(size))
    transfer[:, 0, 0] = 0.0  # zero mean
    fields = sfft.irfft2(sfft.rfft2(white) * transfer, s=(size, size))
    fields /= np.sqrt(np.mean(fields ** 2, axis=(1, 2), keepdims=True)) + 1e-12
    return fields


def _outline(rng, irregularity):
    """Relative radius r(θ) = 1 + Σ a_k cos(kθ + φ_k), k = 2..5, tabulated on _ANGLES."""
    k = np.arange(2, 6)
    amplitude = irregularity * rng.uniform(0.3, 1.0, k.size) / k
    phase = rng.uniform(0, 2 * np.pi, k.size)
    return 1.0 + amplitude @ np.cos(k[:, None] * _ANGLES + phase[:, None])


def _relative_radius(rows, cols, centre, radius, table):
    """r / (radius · r(θ)) around `centre`: < 1 inside the outline."""
    dr, dc = rows - np.float32(centre[0]), cols - np.float32(centre[1])
    index = np.rint((np.arctan2(dr, dc) + np.pi) * ((len(table) - 1) / (2 * np.pi)))
    return np.hypot(dr, dc) / (np.float32(radius) * table.astype(np.float32)[index.astype(np.intp)])


def _nucleus_shape(rng, rows, cols, cell, rho_cell, centre, radius, nc_ratio):
    """Nucleus mask and relative radius, scaled so nucleus / cytoplasm ≈ `nc_ratio`.

    The nucleus has its own smooth outline, sits a little off-centre and always
    keeps a rim of cytoplasm (it is clipped to ``rho_cell < 0.9``).
    """
    offset = rng.uniform(-0.12, 0.12, 2) * radius * (1 - min(nc_ratio, 1.5) / 2)
    base = _relative_radius(rows, cols, np.asarray(centre) + offset, 1.0, _outline(rng, 0.18))
    cell_area = np.count_nonzero(cell)
    allowed = rho_cell < 0.9
    # The clipped area grows with the scale: bisect the scale to hit the target area.
    low, high = 0.0, 2.0 * radius
    for _ in range(16):
        n_radius = (low + high) / 2
        area = np.count_nonzero((base < n_radius) & allowed)
        ratio = area / max(cell_area - area, 1)
        if abs(ratio / nc_ratio - 1) < 0.01:
            break
        low, high = (n_radius, high) if ratio < nc_ratio else (low, n_radius)
    rho = base / np.float32(n_radius)
    nucleus = (rho < 1.0) & allowed
    return nucleus, rho


def _stamp(field, centres, radii, weights, rows_cols_dtype=np.float32):
    """Add Gaussian spots ``w·exp(−d² / 2r²)`` to `field` in place, each in its own window.

    A loop over spots (a few), each touching only its ±4r window.
    """
    size_r, size_c = field.shape
    for (r0, c0), radius, weight in zip(centres, radii, weights):
        half = int(math.ceil(4 * radius))
        r_lo, r_hi = max(int(r0) - half, 0), min(int(r0) + half + 1, size_r)
        c_lo, c_hi = max(int(c0) - half, 0), min(int(c0) + half + 1, size_c)
        if r_lo >= r_hi or c_lo >= c_hi:
            continue
        dr = np.arange(r_lo, r_hi, dtype=rows_cols_dtype)[:, None] - r0
        dc = np.arange(c_lo, c_hi, dtype=rows_cols_dtype)[None, :] - c0
        field[r_lo:r_hi, c_lo:c_hi] += weight * np.exp(-(dr ** 2 + dc ** 2) / (2 * radius ** 2))
    return field


def cytology_image(rng=None, *, size: int = 256, nc_ratio: float | None = None
                   ) -> CytologySample:
    """A synthetic Pap-stained cytology image with its exact 3-class mask.

    Parameters
    ----------
    rng : int, Generator or None
        Seed for :func:`numpy.random.default_rng` (None: fresh entropy).
    size : int
        Side of the square image (at least 32).
    nc_ratio : float, optional
        Target N/C ratio of the main cell, in (0, 4]; drawn log-uniformly from
        ``NC_RANGE`` when None. The main cell's mask ratio is within 2 per cent
        of it (a second cell, when there is one, changes the image's overall ratio).

    Returns
    -------
    CytologySample

    Examples
    --------
    >>> s = cytology_image(1, nc_ratio=0.5)
    >>> s.image.shape, s.image.dtype, s.mask.dtype, sorted(np.unique(s.mask).tolist())
    ((256, 256, 3), dtype('float32'), dtype('uint8'), [0, 1, 2])
    """
    size = int(size)
    if size < 32:
        raise ValueError(f"`size` must be >= 32, got {size}")
    rng = np.random.default_rng(rng)
    if nc_ratio is None:
        nc_ratio = float(np.exp(rng.uniform(*np.log(NC_RANGE))))
    if not (math.isfinite(nc_ratio) and 0 < nc_ratio <= 4):
        raise ValueError(f"`nc_ratio` must be in (0, 4], got {nc_ratio!r}")
    scale = size / 256.0
    rows = np.arange(size, dtype=np.float32)[:, None]
    cols = np.arange(size, dtype=np.float32)[None, :]

    # Cells: a main one near the centre; sometimes a second, cut by the border.
    cells = [(size / 2 + rng.uniform(-20, 20, 2) * scale, rng.uniform(62, 102) * scale,
              nc_ratio)]
    if rng.random() < 0.35:
        angle = rng.uniform(0, 2 * np.pi)
        where = size / 2 + size * 0.62 * np.array([np.sin(angle), np.cos(angle)])
        cells.append((where, rng.uniform(35, 60) * scale,
                      float(np.exp(rng.uniform(*np.log(NC_RANGE))))))

    cyto_od = np.zeros((3, size, size), np.float32)   # per stain colour channel
    nuc_od = np.zeros((size, size), np.float32)
    cell_mask = np.zeros((size, size), bool)
    nucleus_mask = np.zeros((size, size), bool)
    # Texture fields, shared by the cells of the image (they lie in different places).
    large, fine, folds, uneven, chromatin = _noise_fields(
        rng, size, np.array([7.0, 1.5, 4.0, 10.0, 1.2]) * scale)
    for centre, radius, ratio in cells:
        rho_cell = _relative_radius(rows, cols, centre, radius, _outline(rng, 0.35))
        cell = rho_cell < 1.0
        nucleus, rho_n = _nucleus_shape(rng, rows, cols, cell, rho_cell, centre, radius, ratio)
        cell_mask |= cell
        nucleus_mask |= nucleus
        # Cytoplasm: a stain mix, mottled texture, dark folds, a paler rim.
        texture = np.clip(1.0 + 0.40 * large + 0.18 * fine, 0.1, None)
        texture += 1.2 * np.clip(folds - 1.3, 0.0, None)
        rim = 0.2 + 0.8 * np.clip((1.0 - rho_cell) / 0.35, 0.0, 1.0) ** 0.8
        amount = np.where(cell, rng.uniform(0.5, 1.8) * texture * rim, 0.0)
        cyto_od += amount[None] * (rng.dirichlet([1.0, 1.0, 1.0]) @ _OD_CYTO
                                   ).astype(np.float32)[:, None, None]
        # Nucleus: uneven staining, granular chromatin, a few lighter holes.
        density = np.clip(1.0 + 0.25 * uneven + 0.18 * chromatin, 0.3, None)
        density *= rng.uniform(0.55, 1.6)
        starts = np.argwhere(nucleus & (rho_n < 0.55))
        if len(starts):
            holes = starts[rng.integers(len(starts), size=rng.integers(1, 5))]
            h_radius = rng.uniform(2.5, 6.0, len(holes)) * scale * math.sqrt(max(ratio, 0.2))
            light = _stamp(np.zeros((size, size), np.float32), holes, h_radius,
                           np.ones(len(holes)))
            density *= 1.0 - 0.85 * np.clip(light, 0.0, 1.0)
        edge = np.clip((1.0 - rho_n) / 0.08, 0.0, 1.0)  # soft nuclear border
        nuc_od += np.where(nucleus, density * edge, 0.0)

    # Debris: small dark specks on the background, outside every cell.
    n_specks = int(rng.integers(4, 14))
    candidates = rng.uniform(0, size - 1, (n_specks * 4, 2))
    near_cell = ndi.binary_dilation(cell_mask, iterations=max(int(6 * scale), 1))
    specks = candidates[~near_cell[tuple(candidates.astype(int).T)]][:n_specks]
    debris = _stamp(np.zeros((size, size), np.float32), specks,
                    rng.uniform(0.8, 2.2, len(specks)) * scale,
                    rng.uniform(0.6, 1.6, len(specks)))

    # Optics: slight blur of the densities; camera: exposure, noise, saturation at 1.
    od = (cyto_od + nuc_od[None] * _OD_NUCLEUS.astype(np.float32)[:, None, None]
          + debris[None] * _OD_DEBRIS.astype(np.float32)[:, None, None] + 0.004)
    od = ndi.gaussian_filter(od, (0, scale, scale), mode="nearest")
    image = np.exp(-od) * np.float32(rng.uniform(1.005, 1.04))
    image += rng.normal(0.0, 0.008, image.shape).astype(np.float32)
    image = np.clip(np.moveaxis(image, 0, -1), 0.0, 1.0).astype(np.float32)
    mask = cell_mask.view(np.uint8) + nucleus_mask.view(np.uint8)
    return CytologySample(image=image, mask=mask)


def cytology_set(n: int = 24, rng=SEED, *, size: int = 256) -> list[CytologySample]:
    """A demo set of `n` cytology images whose N/C ratios span ``NC_RANGE``.

    Image i draws its ratio log-uniformly from quarter ``i mod 4`` of the (log) range,
    so any 4 consecutive images cover normal to malignant-looking cells. The first k
    images do not depend on `n`.
    """
    if n < 0:
        raise ValueError(f"`n` must be >= 0, got {n}")
    seeds = _child_seeds(rng, n)
    edges = np.linspace(*np.log(NC_RANGE), 5)
    out = []
    for i, seed in enumerate(seeds):
        gen = np.random.default_rng(seed)
        quarter = i % 4
        ratio = float(np.exp(gen.uniform(edges[quarter], edges[quarter + 1])))
        out.append(cytology_image(gen, size=size, nc_ratio=ratio))
    return out


# ======================================================================================
# Two cell types (object classification)
# ======================================================================================
#: The two types :func:`two_type_cells` draws, in the order of ``TwoTypeSample.types``.
CELL_TYPES = ("small dark round", "large pale elongated")


@dataclass(frozen=True, eq=False)
class TwoTypeSample:
    """A synthetic image of cells of two types, with exact ground truth.

    Attributes
    ----------
    image : (M, N, 3) ndarray of float32
        RGB in [0, 1].
    labels : (M, N) ndarray of uint8
        0 background, 1 cytoplasm, 2 nucleus.
    nuclei : (M, N) ndarray of int32
        Nucleus instances 1..K.
    types : (K,) ndarray of int64
        The type of nucleus k + 1: 0 or 1, an index into :data:`CELL_TYPES`.
    """

    image: np.ndarray
    labels: np.ndarray
    nuclei: np.ndarray
    types: np.ndarray


def two_type_cells(rng=SEED, *, size: int = 256, tile: int = 32, noise: float = 0.03,
                   fraction: float = 0.5) -> TwoTypeSample:
    """Cells of two types on a jittered grid: small dark round nuclei or large pale
    elongated ones, each in a round pale cytoplasm (for object classifiers).

    One cell per ``tile × tile`` square, its centre moved up to ``tile / 10`` from the
    square's centre. Type 0 nuclei are discs of radius ``0.14 tile`` (±10 %) with
    transmission 0.30; type 1 nuclei are ellipses of semi-axes ``0.28 tile`` and
    ``0.14 tile`` (±10 %), at a random angle, with transmission 0.55. Cytoplasm:
    discs of radius ``0.36 tile``, transmission 0.78; background 0.93. Gaussian noise
    of sd `noise`, clipped to [0, 1]; the RGB tint is hematoxylin-like.

    Parameters
    ----------
    rng : int or Generator
    size : int
        Image side (pixels), a multiple of `tile`.
    tile : int
        Grid step (pixels), >= 16.
    noise : float
        Noise standard deviation (>= 0).
    fraction : float
        Probability that a cell is of type 1.

    Examples
    --------
    >>> s = two_type_cells(0, size=64)
    >>> s.image.shape, int(s.nuclei.max()), s.types.shape
    ((64, 64, 3), 4, (4,))
    >>> bool((s.labels[s.nuclei > 0] == 2).all())
    True
    """
    if tile < 16 or size < tile or size % tile:
        raise ValueError(f"`size` ({size}) must be a multiple of `tile` ({tile}), tile >= 16")
    _check_positive("noise", noise, allow_zero=True)
    if not 0 <= fraction <= 1:
        raise ValueError(f"`fraction` must be in [0, 1], got {fraction!r}")
    rng = np.random.default_rng(rng)
    n_side = size // tile
    k = n_side * n_side
    types = (rng.random(k) < fraction).astype(np.int64)
    centre = (np.stack(np.divmod(np.arange(k), n_side), 1) + 0.5) * tile
    centre += rng.uniform(-tile / 10, tile / 10, (k, 2))
    minor = 0.14 * tile * rng.uniform(0.9, 1.1, k)
    major = np.where(types == 1, 2.0 * minor * rng.uniform(0.9, 1.1, k), minor)
    angle = rng.uniform(0, np.pi, k)
    # Each pixel belongs to its tile's cell: one vectorised evaluation for all of them.
    rows, cols = np.mgrid[:size, :size]
    cell = (rows // tile) * n_side + cols // tile
    dr, dc = rows - centre[cell, 0], cols - centre[cell, 1]
    cos, sin = np.cos(angle[cell]), np.sin(angle[cell])
    u, v = dr * cos + dc * sin, -dr * sin + dc * cos
    in_nucleus = (u / major[cell]) ** 2 + (v / minor[cell]) ** 2 <= 1
    in_cell = dr ** 2 + dc ** 2 <= (0.36 * tile) ** 2
    labels = np.where(in_nucleus, 2, np.where(in_cell, 1, 0)).astype(np.uint8)
    nuclei = np.where(in_nucleus, cell + 1, 0).astype(np.int32)
    transmission = np.select([in_nucleus & (types[cell] == 0), in_nucleus, in_cell],
                             [0.30, 0.55, 0.78], 0.93)
    tint = np.array([1.0, 1.3, 0.7])  # purple, as hematoxylin
    image = transmission[..., None] ** tint + rng.normal(0, noise, (size, size, 3))
    return TwoTypeSample(image=np.clip(image, 0, 1).astype(np.float32), labels=labels,
                         nuclei=nuclei, types=types)
