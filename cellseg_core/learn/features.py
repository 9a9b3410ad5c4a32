"""Per-pixel features of the pixel classifier: smoothed intensity, edges and texture at
several scales, on chosen colour channels, at a reduced working scale."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
from skimage.color import rgb2hed, rgb2lab
from skimage.feature import multiscale_basic_features
from skimage.transform import resize

from ..io import as_float_image

__all__ = ["CHANNELS", "FeatureSettings", "pixel_features"]

#: Colour channels :func:`pixel_features` can use (``rgb`` and ``lab`` give three each).
CHANNELS = ("rgb", "gray", "hematoxylin", "eosin", "lab")


@dataclass(frozen=True)
class FeatureSettings:
    """Which per-pixel features a classifier sees.

    Parameters
    ----------
    channels : tuple of str
        From :data:`CHANNELS`: ``rgb`` (3), ``gray``, ``hematoxylin``, ``eosin`` (colour
        deconvolution), ``lab`` (CIELAB, 3). Default RGB + Lab: on a held-out quarter
        of the VocEd training split it beat RGB alone by 0.014 mean Dice.
    scale : float
        Features are computed on the image resized by this factor (0 < scale <= 1);
        probabilities are upsampled back. VocEd images are upsampled about 4x from
        the microscope, so 0.25 sees the same context for 1/16 of the cost.
    sigma_min, sigma_max : float
        Smallest and largest Gaussian sigma, in pixels *at the working scale*.
    num_sigma : int or None
        Number of sigmas, log-spaced (None: one per octave).
    intensity, edges, texture : bool
        Feature families of :func:`skimage.feature.multiscale_basic_features`.
    position : bool
        Add the distance to the image centre (relative to the image size).
    """

    channels: tuple = ("rgb", "lab")
    scale: float = 0.25
    sigma_min: float = 1.0
    sigma_max: float = 16.0
    num_sigma: int | None = None
    intensity: bool = True
    edges: bool = True
    texture: bool = True
    position: bool = False

    def __post_init__(self):
        channels = (self.channels,) if isinstance(self.channels, str) else tuple(self.channels)
        object.__setattr__(self, "channels", channels)
        if not channels:
            raise ValueError("`channels` must name at least one channel")
        unknown = [c for c in channels if c not in CHANNELS]
        if unknown:
            raise ValueError(f"`channels`: unknown {unknown}; valid: {list(CHANNELS)}")
        if not 0 < self.scale <= 1:
            raise ValueError(f"`scale` must be in (0, 1], got {self.scale!r}")
        if not 0 < self.sigma_min <= self.sigma_max:
            raise ValueError(f"`sigma_min` ({self.sigma_min}) must be > 0 and <= "
                             f"`sigma_max` ({self.sigma_max})")
        if self.num_sigma is not None and self.num_sigma < 1:
            raise ValueError(f"`num_sigma` must be >= 1 or None, got {self.num_sigma!r}")
        if not (self.intensity or self.edges or self.texture or self.position):
            raise ValueError("at least one of `intensity`, `edges`, `texture`, `position` "
                             "must be True")

    def to_dict(self) -> dict:
        out = dataclasses.asdict(self)
        out["channels"] = list(self.channels)
        return out

    @classmethod
    def from_dict(cls, data: dict) -> "FeatureSettings":
        if not isinstance(data, dict):
            raise ValueError(f"feature settings must be an object, got {type(data).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown feature setting(s) {unknown}; valid: {sorted(known)}")
        data = dict(data)
        if "channels" in data:
            data["channels"] = tuple(data["channels"])
        return cls(**data)


def _resize(array: np.ndarray, shape: tuple) -> np.ndarray:
    """Resize the first two axes of `array` to `shape` (anti-aliased when shrinking)."""
    if array.shape[:2] == tuple(shape):
        return array
    shrinking = shape[0] < array.shape[0]
    return resize(array, tuple(shape) + array.shape[2:], order=1, mode="edge",
                  anti_aliasing=shrinking, preserve_range=True).astype(np.float32)


def _working_shape(shape, scale: float) -> tuple:
    return (max(1, round(shape[0] * scale)), max(1, round(shape[1] * scale)))


def _channels(image: np.ndarray, names) -> np.ndarray:
    """(M, N, C) float32 stack of the colour channels `names`, each roughly in [0, 1]."""
    rgb = image if image.ndim == 3 else np.repeat(image[..., None], 3, axis=-1)
    out = []
    hed = None
    for name in names:
        if name == "rgb":
            out.extend(rgb[..., k] for k in range(3))
        elif name == "gray":
            out.append(0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2])
        elif name in ("hematoxylin", "eosin"):
            if hed is None:
                hed = rgb2hed(rgb)
            out.append(hed[..., 0] / 0.35 if name == "hematoxylin" else hed[..., 1] / 0.1)
        elif name == "lab":
            lab = rgb2lab(rgb)
            out.extend([lab[..., 0] / 100, (lab[..., 1] + 50) / 100, (lab[..., 2] + 50) / 100])
    return np.stack(out, axis=-1).astype(np.float32)


def pixel_features(image: np.ndarray, settings: FeatureSettings | None = None) -> np.ndarray:
    """Per-pixel features of `image` at the settings' working scale.

    Parameters
    ----------
    image : (M, N[, 3]) ndarray
        Gray or RGB (a gray image is used as R = G = B). Never modified.
    settings : FeatureSettings, optional

    Returns
    -------
    (M', N', F) ndarray of float32
        ``M' = round(M * settings.scale)`` (same for N).

    Examples
    --------
    >>> import numpy as np
    >>> pixel_features(np.zeros((64, 64, 3)), FeatureSettings(scale=0.5)).shape
    (32, 32, 120)
    """
    settings = settings or FeatureSettings()
    image = as_float_image(image)
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] != 3):
        raise ValueError(f"`image` must be (M, N) or (M, N, 3), got shape {image.shape}")
    shape = _working_shape(image.shape, settings.scale)
    small = _resize(image, shape)
    parts = []
    if settings.intensity or settings.edges or settings.texture:
        channels = _channels(small, settings.channels)
        parts.append(multiscale_basic_features(
            channels, intensity=settings.intensity, edges=settings.edges,
            texture=settings.texture, sigma_min=settings.sigma_min,
            sigma_max=settings.sigma_max, num_sigma=settings.num_sigma,
            channel_axis=-1).astype(np.float32, copy=False))
    if settings.position:
        rows = (np.arange(shape[0]) + 0.5) / shape[0] - 0.5
        cols = (np.arange(shape[1]) + 0.5) / shape[1] - 0.5
        parts.append(np.hypot(rows[:, None], cols[None, :]).astype(np.float32)[..., None])
    return np.concatenate(parts, axis=-1) if len(parts) > 1 else parts[0]


def _downsample_mask(mask: np.ndarray, shape: tuple) -> np.ndarray:
    """The class at the centre of each working-scale pixel (nearest neighbour)."""
    rows = ((np.arange(shape[0]) + 0.5) * mask.shape[0] / shape[0]).astype(int)
    cols = ((np.arange(shape[1]) + 0.5) * mask.shape[1] / shape[1]).astype(int)
    return mask[rows[:, None], cols[None, :]]
