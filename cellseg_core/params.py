"""The one parameter model of the pipeline.

Every setting of :func:`cellseg_core.segment` lives here, in frozen dataclasses with
str-Enum choices, so that parameters are hashable (cache keys), comparable, and
serialise to JSON as they are. Widgets, presets, URL query parameters, the optimiser
and the command line all go through :meth:`Params.from_dict` / :meth:`Params.with_values`.
"""
from __future__ import annotations

import dataclasses
import json
import math
import numbers
from dataclasses import dataclass, field, fields
from enum import Enum

import numpy as np

__all__ = [
    "SCHEMA_VERSION",
    "LIMITS",
    "CONTROL_RANGES",
    "Mode",
    "Channel",
    "BlurKind",
    "ThresholdMethod",
    "BackgroundMethod",
    "BlurParams",
    "ThresholdParams",
    "CleanupParams",
    "WatershedParams",
    "AutoKind",
    "AutoParams",
    "CleanupScheme",
    "CONNECTIVITIES",
    "Params",
]

#: Version 2 added the `auto` section; version 1 files load with it switched off.
#: Version 3 added ``cleanup.scheme`` and ``cleanup.connectivity`` (older files load with
#: ``nested`` and 4, what they meant when they were saved) and ``threshold.percentile``
#: (used by the new ``percentile`` method only).
SCHEMA_VERSION = 3

#: The labelling connectivities ``cleanup.connectivity`` may take: 4 (pixels that share
#: an edge are one piece) or 8 (diagonal neighbours too).
CONNECTIVITIES = (4, 8)


class Mode(str, Enum):
    """What the labels mean: cytology (0/1/2) or fluorescence nuclei (0/2)."""

    CYTOLOGY = "cytology"
    FLUORESCENCE = "fluorescence"


class Channel(str, Enum):
    """Which single channel the thresholds apply to."""

    GRAY = "gray"
    RED = "red"
    GREEN = "green"
    BLUE = "blue"
    HEMATOXYLIN = "hematoxylin"


class BlurKind(str, Enum):
    NONE = "none"
    GAUSSIAN = "gaussian"
    MEDIAN = "median"
    MEAN = "mean"


class ThresholdMethod(str, Enum):
    """Manual thresholds, a global automatic method, or a local (adaptive) one."""

    MANUAL = "manual"
    OTSU = "otsu"
    MULTIOTSU = "multiotsu"
    LI = "li"
    YEN = "yen"
    TRIANGLE = "triangle"
    ISODATA = "isodata"
    MEAN = "mean"
    MINIMUM = "minimum"
    LOCAL = "local"
    PERCENTILE = "percentile"


class BackgroundMethod(str, Enum):
    """How an automatic cytology method finds the cell/background threshold `t_bg`.

    ``same``: the method itself on the whole channel; ``peak``: below the bright
    background mode by six robust standard deviations of the background (bright-field
    slides have a bright, even background); ``manual``: the `t_bg` given.
    """

    SAME = "same"
    PEAK = "peak"
    MANUAL = "manual"


class CleanupScheme(str, Enum):
    """How the clean-up treats the classes (:func:`cellseg_core.morphology.clean_labels`).

    ``nested``: the cell (cytoplasm + nucleus) and the nucleus inside it; a removed
    nucleus piece becomes cytoplasm (it is still inside a cell), opening and closing
    act on the cell and on the nucleus, and cytoplasm pieces are measured after the
    nucleus clean-up. ``course``: as the course's own code (Lab 03 ``full_pipeline``,
    Lab 03-v2 ``segment_morph``): each class mask on its own, opening and closing per
    class (cytoplasm first, then nucleus) with scikit-image's borders, removed pieces
    of either class become background, cytoplasm pieces measured on the thresholded
    cytoplasm.
    """

    NESTED = "nested"
    COURSE = "course"


class AutoKind(str, Enum):
    """Whether the automatic nucleus method runs, and for which kind of image.

    ``off``: the fixed pipeline of the other sections. ``detect``: the kind is read
    from the image (:func:`cellseg_core.imagekind.detect_kind`). The other values
    force a kind: ``fluorescence`` (bright nuclei on a dark background), ``stained``
    (bright-field with a colour stain: H&E, Pap, Giemsa, IHC with hematoxylin) or
    ``brightfield`` (gray bright-field or phase contrast: dark nuclei).
    """

    OFF = "off"
    DETECT = "detect"
    FLUORESCENCE = "fluorescence"
    STAINED = "stained"
    BRIGHTFIELD = "brightfield"


#: The values each numeric parameter may take, ``(low, high)`` inclusive. The checks of
#: the dataclasses below read them, and so does every control of the app: one place.
#: Every bound is finite: a value from a file or a link must fit a control, and sizes
#: are capped so the work stays bounded (a Gaussian of sigma 10⁵, or a local threshold
#: or marker footprint that wide, would run for hours). The thresholds on the object
#: channel reach far past any image's values (images are read into [0, 1]; synthetic
#: ones reach a few units), so a threshold that keeps nothing stays expressible.
LIMITS = {
    "blur.sigma": (0.0, 50.0),
    "blur.size": (1, 101),
    "threshold.t_nuc": (0.0, 1.0),
    "threshold.t_bg": (0.0, 1.0),
    "threshold.t_object": (-1000.0, 1000.0),
    "threshold.block_size": (3, 501),
    "threshold.offset": (-1000.0, 1000.0),
    "threshold.percentile": (0.0, 100.0),
    "cleanup.opening_radius": (0, 50),
    "cleanup.closing_radius": (0, 50),
    "cleanup.min_nucleus_size": (0, 10**9),
    "cleanup.min_cytoplasm_size": (0, 10**9),
    "cleanup.connectivity": (4, 8),  # 4 or 8 only (CONNECTIVITIES)
    "watershed.min_distance": (1, 1000),
    "watershed.footprint": (1, 201),
    "auto.diameter": (0.0, 1000.0),  # 0: estimated from the image; else at least 3
}

#: What a control offers for each numeric parameter, ``(low, high, step)`` (None: no
#: bound: a number box), always inside :data:`LIMITS`. A control that must show a value outside its
#: range (from a file or a link) widens the range to that value.
CONTROL_RANGES = {
    "blur.sigma": (0.0, 10.0, 0.1),
    "blur.size": (1, 31, 1),
    "threshold.t_nuc": (0.0, 1.0, 0.005),
    "threshold.t_bg": (0.0, 1.0, 0.005),
    "threshold.t_object": (0.0, 1.5, 0.005),
    "threshold.block_size": (3, 301, 2),
    "threshold.offset": (-0.3, 0.3, 0.005),
    "threshold.percentile": (0.0, 100.0, 1.0),
    "cleanup.opening_radius": (0, 50, 1),
    "cleanup.closing_radius": (0, 50, 1),
    "cleanup.min_nucleus_size": (0, None, 10),
    "cleanup.min_cytoplasm_size": (0, None, 10),
    "cleanup.connectivity": (4, 8, 4),
    "watershed.min_distance": (1, 200, 1),
    "watershed.footprint": (1, 201, 1),
    "auto.diameter": (0.0, 200.0, 1.0),
}


def _short(value, limit: int = 60) -> str:
    """``repr(value)``, cut to `limit` characters: messages quote what they refuse, and a
    link or a file may hold a 100 kB value."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text):,} characters)"


def _check(condition, name, expected, value):
    if not condition:
        raise ValueError(f"`{name}` must be {expected}, got {_short(value)}")


def _check_limit(name: str, value) -> None:
    """`value` is finite and inside ``LIMITS[name]``, else a ValueError naming `name`."""
    low, high = LIMITS[name]
    shown = [f"{b:,}" if isinstance(b, int) else f"{b:g}" for b in (low, high)]
    _check(math.isfinite(value) and low <= value <= high, name,
           f"between {shown[0]} and {shown[1]}", value)


@dataclass(frozen=True)
class BlurParams:
    """Smoothing of the channel before thresholding.

    `sigma` is used by the gaussian blur, `size` (window side in pixels) by median and mean.
    """

    kind: BlurKind = BlurKind.NONE
    sigma: float = 1.0
    size: int = 3

    def __post_init__(self):
        _check_limit("blur.sigma", self.sigma)
        _check_limit("blur.size", self.size)


@dataclass(frozen=True)
class ThresholdParams:
    """Thresholds on the (blurred) channel.

    Cytology: nucleus where value < `t_nuc`, cytoplasm where `t_nuc` <= value < `t_bg`.
    Fluorescence: object where value > `t_object`. With an automatic `method` the
    thresholds are computed per image and the manual values are ignored. In
    cytology a one-threshold method splits nucleus from cytoplasm inside the cell,
    and `background` says where `t_bg` comes from; ``local``
    compares each pixel with the weighted mean of its `block_size` neighbourhood
    minus `offset` (scikit-image's ``threshold_local``), ``percentile`` with the
    `percentile`-th percentile of its `block_size` window minus `offset` (the
    fluorescence tutorial's percentile filter).
    """

    method: ThresholdMethod = ThresholdMethod.MANUAL
    background: BackgroundMethod = BackgroundMethod.SAME
    t_nuc: float = 0.45
    t_bg: float = 0.85
    t_object: float = 0.5
    block_size: int = 51
    offset: float = 0.0
    percentile: float = 50.0

    def __post_init__(self):
        for name in ("t_nuc", "t_bg", "t_object", "block_size", "offset", "percentile"):
            _check_limit(f"threshold.{name}", getattr(self, name))
        _check(self.t_nuc < self.t_bg, "threshold.t_nuc", f"< t_bg ({self.t_bg})", self.t_nuc)
        _check(self.block_size % 2 == 1, "threshold.block_size", "an odd integer",
               self.block_size)


@dataclass(frozen=True)
class CleanupParams:
    """Morphological clean-up of the thresholded classes; 0 / False switches a step off.

    Order: opening, closing (each class mask, disk of the given radius), removal of
    nucleus pieces smaller than `min_nucleus_size` (they become cytoplasm; background
    with ``scheme="course"``) and of cytoplasm pieces smaller than
    `min_cytoplasm_size` (they become background), then filling of holes inside
    nuclei. `scheme` says how the classes are treated (:class:`CleanupScheme`);
    `connectivity` (4 or 8) which pixels make one piece, for the size filters and for
    numbering the nuclei.
    """

    opening_radius: int = 0
    closing_radius: int = 0
    min_nucleus_size: int = 0
    min_cytoplasm_size: int = 0
    fill_holes: bool = False
    scheme: CleanupScheme = CleanupScheme.NESTED
    connectivity: int = 4

    def __post_init__(self):
        for name in ("opening_radius", "closing_radius", "min_nucleus_size",
                     "min_cytoplasm_size"):
            _check_limit(f"cleanup.{name}", getattr(self, name))
        _check_limit("cleanup.connectivity", self.connectivity)
        _check(self.connectivity in CONNECTIVITIES, "cleanup.connectivity", "4 or 8",
               self.connectivity)

    def __setstate__(self, state: dict) -> None:
        """Restore from a saved state (a model file written before schema 3 holds no
        `scheme` or `connectivity`: they take the defaults, what such files meant)."""
        defaults = {f.name: f.default for f in fields(self)}
        for name, value in {**defaults, **state}.items():
            object.__setattr__(self, name, value)


@dataclass(frozen=True)
class WatershedParams:
    """Split touching nuclei: distance transform, peaks, watershed within the mask.

    Peaks are at least `min_distance` pixels apart and maximal within a square
    `footprint` (side in pixels).
    """

    enabled: bool = False
    min_distance: int = 5
    footprint: int = 3

    def __post_init__(self):
        _check_limit("watershed.min_distance", self.min_distance)
        _check_limit("watershed.footprint", self.footprint)


@dataclass(frozen=True)
class AutoParams:
    """The automatic nucleus method (:mod:`cellseg_core.autoseg`), resolved per image.

    With `kind` other than ``off``, :func:`cellseg_core.segment` finds the nuclei
    by the automatic method, every size from the nucleus `diameter` (pixels;
    ``0`` = estimated from the image), and records what it resolved in
    ``Segmentation.auto``. In cytology mode the cell outline still comes from the
    `threshold` and `cleanup` sections (see :func:`cellseg_core.segment`).
    """

    kind: AutoKind = AutoKind.OFF
    diameter: float = 0.0

    def __post_init__(self):
        _check_limit("auto.diameter", self.diameter)
        _check(self.diameter == 0 or self.diameter >= 3, "auto.diameter",
               "0 (estimate) or at least 3 pixels", self.diameter)


_SECTIONS = {
    "blur": BlurParams,
    "threshold": ThresholdParams,
    "cleanup": CleanupParams,
    "watershed": WatershedParams,
    "auto": AutoParams,
}


@dataclass(frozen=True)
class Params:
    """All parameters of :func:`cellseg_core.segment`.

    Examples
    --------
    >>> p = Params().with_values({"threshold.t_nuc": 0.39, "threshold.t_bg": 0.99})
    >>> Params.from_json(p.to_json()) == p
    True
    """

    mode: Mode = Mode.CYTOLOGY
    channel: Channel = Channel.GRAY
    blur: BlurParams = field(default_factory=BlurParams)
    threshold: ThresholdParams = field(default_factory=ThresholdParams)
    cleanup: CleanupParams = field(default_factory=CleanupParams)
    watershed: WatershedParams = field(default_factory=WatershedParams)
    auto: AutoParams = field(default_factory=AutoParams)

    # --- flat, dotted view: "threshold.t_nuc" -> value ---------------------------------
    def flat(self) -> dict:
        """Return every parameter under its dotted name, values as JSON types."""
        out = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if dataclasses.is_dataclass(value):
                for g in fields(value):
                    out[f"{f.name}.{g.name}"] = _plain(getattr(value, g.name))
            else:
                out[f.name] = _plain(value)
        return out

    def get(self, name: str):
        """Value of a dotted parameter name such as ``"threshold.t_nuc"``."""
        flat = self.flat()
        if name not in flat:
            raise ValueError(f"unknown parameter {_short(name)}; valid: {sorted(flat)}")
        return flat[name]

    def with_values(self, values: dict) -> "Params":
        """Return a copy with dotted-name parameters replaced (values validated)."""
        flat = self.flat()
        unknown = sorted(set(values) - set(flat))
        if unknown:
            shown = ", ".join(_short(n) for n in unknown[:5]) + (", …" if len(unknown) > 5 else "")
            raise ValueError(f"unknown parameter(s) [{shown}]; valid: {sorted(flat)}")
        flat.update(values)
        return Params.from_flat(flat)

    @classmethod
    def from_flat(cls, flat: dict) -> "Params":
        nested: dict = {}
        for name, value in flat.items():
            head, _, tail = name.partition(".")
            if tail:
                nested.setdefault(head, {})[tail] = value
            else:
                nested[head] = value
        return cls.from_dict(nested)

    # --- JSON ------------------------------------------------------------------------
    def to_dict(self) -> dict:
        out = {"schema_version": SCHEMA_VERSION}
        for f in fields(self):
            value = getattr(self, f.name)
            if dataclasses.is_dataclass(value):
                out[f.name] = {g.name: _plain(getattr(value, g.name)) for g in fields(value)}
            else:
                out[f.name] = _plain(value)
        return out

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_dict(cls, data: dict) -> "Params":
        """Build and validate params from a (possibly partial) nested dict.

        Missing keys take their defaults; unknown keys, wrong types and a schema
        version newer than this library's raise `ValueError`.
        """
        if not isinstance(data, dict):
            raise ValueError(f"parameters must be a JSON object, got {type(data).__name__}")
        data = dict(data)
        version = data.pop("schema_version", SCHEMA_VERSION)
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise ValueError(f"`schema_version` must be a positive integer, got {_short(version)}")
        if version > SCHEMA_VERSION:
            raise ValueError(
                f"parameters were saved with schema_version {version}, newer than this "
                f"version of cellseg understands ({SCHEMA_VERSION}); upgrade cellseg")
        kwargs = {}
        known = {f.name: f for f in fields(cls)}
        for name, value in data.items():
            if name not in known:
                raise ValueError(f"unknown parameter {_short(name)}; valid: {sorted(known)}")
            if name in _SECTIONS:
                kwargs[name] = _build_section(_SECTIONS[name], name, value)
            else:
                kwargs[name] = _coerce(known[name].type, name, value)
        return cls(**kwargs)

    @classmethod
    def from_json(cls, text: str | bytes) -> "Params":
        try:
            data = json.loads(text)
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise ValueError(f"parameters file is not valid JSON: {err}") from None
        return cls.from_dict(data)


def _plain(value):
    return value.value if isinstance(value, Enum) else value


_ENUMS = {"Mode": Mode, "Channel": Channel, "BlurKind": BlurKind,
          "ThresholdMethod": ThresholdMethod, "BackgroundMethod": BackgroundMethod,
          "AutoKind": AutoKind, "CleanupScheme": CleanupScheme}


def _build_section(section_cls, section_name, value):
    if not isinstance(value, dict):
        raise ValueError(f"`{section_name}` must be an object, got {_short(value)}")
    known = {f.name: f for f in fields(section_cls)}
    kwargs = {}
    for name, item in value.items():
        if name not in known:
            raise ValueError(
                f"unknown parameter {_short(section_name + '.' + name)}; valid: "
                f"{sorted(section_name + '.' + k for k in known)}")
        kwargs[name] = _coerce(known[name].type, f"{section_name}.{name}", item)
    return section_cls(**kwargs)


def _coerce(type_name, name, value):
    """Check a JSON value against a field's annotated type (a string under PEP 563)."""
    if type_name in _ENUMS:
        enum = _ENUMS[type_name]
        try:
            return enum(value)
        except ValueError:
            raise ValueError(
                f"`{name}` must be one of {[e.value for e in enum]}, got {_short(value)}"
            ) from None
    if type_name == "bool":
        if isinstance(value, np.bool_):  # a numpy bool from a widget or an array
            value = bool(value)
        if not isinstance(value, bool):
            raise ValueError(f"`{name}` must be true or false, got {_short(value)}")
        return value
    if type_name == "int":
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or \
                not math.isfinite(value) or value != int(value):
            raise ValueError(f"`{name}` must be an integer, got {_short(value)}")
        return int(value)
    if type_name == "float":
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise ValueError(f"`{name}` must be a number, got {_short(value)}")
        return float(value)
    raise TypeError(f"no coercion for field type {type_name!r}")  # pragma: no cover
