"""Methods: what segments an image, engine parameters or a learned model, behind one
interface.

A :class:`Segmenter` has ``segment(image) -> Segmentation``, a ``name`` people see,
``params`` (the engine :class:`~cellseg_core.params.Params` it runs, or None for a
learned model: the evaluation's exact and cached shortcuts need them) and
``describe()``, the provenance block ``params.json`` carries (the same from the command
line and the app)::

    {"cellseg_version": "0.1.0", "method": "lab02", "kind": "params", "preset": "lab02",
     "params": {...}, "file": null, "sha256": null, "model": null, "model_sha256": null}

``kind`` is ``"params"`` or the model's kind (``PixelClassifier``, ``UNetModel``, ...);
``file`` and ``sha256`` name the file the method was read from (a params JSON or a
model file); ``model`` / ``model_sha256`` repeat them for a model (``model`` is the type
name of a model that has no file), as ``params.json`` always had.

:func:`load_method` turns what a user names into a Segmenter: a preset name
(``"lab02"``), a params JSON (a path, or text), a model file, ``builtin:NAME`` (a model
shipped with cellseg, see :data:`BUILTIN_MODELS`), Params or a fitted model.
:class:`Untrained` is a method that is fitted on a dataset before it segments (the
unsupervised baselines, :data:`BASELINES`); :func:`compare` fits those and scores every
method on a dataset's images.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Protocol, runtime_checkable

import numpy as np

from ._version import __version__
from .evaluation import Evaluation, evaluate
from .learn import (KMeansBaseline, MeanShiftBaseline, NucleusModel, load_model,
                    train_on_dataset)
from .params import Params
from .pipeline import Segmentation, segment
from .presets import PRESETS, get_preset
from .textbook import baseline_objects, textbook_segmentation

__all__ = ["Segmenter", "ParamsMethod", "ModelMethod", "Untrained", "BUILTIN_MODELS",
           "BASELINES", "as_segmenter", "load_method", "load_params", "preset_methods",
           "compare", "OTSU_BASELINE", "TextbookMethod", "NUCLEUS_PRESETS", "nucleus_methods"]


@runtime_checkable
class Segmenter(Protocol):
    """What every method offers (Params and every kind of learned model)."""

    name: str
    params: Params | None

    def segment(self, image: np.ndarray) -> Segmentation:
        """Segment one image."""

    def describe(self) -> dict:
        """The provenance block (see the module notes)."""


def _block(name, kind, *, preset=None, params=None, file=None, sha256=None, model=False):
    out = {"cellseg_version": __version__, "method": name, "kind": kind, "preset": preset,
           "params": params.to_dict() if params is not None else None,
           "file": file, "sha256": sha256, "model": None, "model_sha256": None}
    if model:
        out.update(model=file or kind, model_sha256=sha256)
    return out


@dataclass(frozen=True, eq=False)
class ParamsMethod:
    """The engine pipeline (:func:`~cellseg_core.segment`) with fixed params.

    Examples
    --------
    >>> m = ParamsMethod(get_preset("lab02"), name="lab02", preset="lab02")
    >>> m.segment(np.array([[0.2, 0.5, 1.0]], np.float32)).labels.tolist()
    [[2, 1, 0]]
    >>> m.describe()["kind"], m.describe()["preset"]
    ('params', 'lab02')
    """

    params: Params
    name: str = "params"
    preset: str | None = None
    file: str | None = None
    sha256: str | None = None

    def segment(self, image: np.ndarray) -> Segmentation:
        return segment(image, self.params)

    def describe(self) -> dict:
        return _block(self.name, "params", preset=self.preset, params=self.params,
                      file=self.file, sha256=self.sha256)


@dataclass(frozen=True, eq=False)
class ModelMethod:
    """A fitted learned model (anything with ``.segment(image)``) as a method."""

    model: object
    name: str = ""
    file: str | None = None
    sha256: str | None = None
    params: Params | None = field(default=None, init=False)

    def __post_init__(self):
        if not callable(getattr(self.model, "segment", None)):
            raise TypeError(f"`model` must have a .segment(image) method, got "
                            f"{type(self.model).__name__}")
        if not self.name:
            object.__setattr__(self, "name", self.file or self.kind)

    @property
    def kind(self) -> str:
        return getattr(self.model, "kind", type(self.model).__name__)

    def segment(self, image: np.ndarray) -> Segmentation:
        return self.model.segment(image)

    def describe(self) -> dict:
        return _block(self.name, self.kind, file=self.file, sha256=self.sha256, model=True)


@dataclass(frozen=True, eq=False)
class Untrained:
    """A method that must be fitted on a dataset before it segments.

    `make` builds the unfitted model (e.g. :class:`~cellseg_core.learn.KMeansBaseline`);
    :meth:`fit` fits it with :func:`~cellseg_core.learn.train_on_dataset`.
    """

    name: str
    make: Callable[[], object]
    params: Params | None = field(default=None, init=False)

    def fit(self, dataset, ids, *, rng=0, progress=None) -> ModelMethod:
        model = train_on_dataset(dataset, ids, model=self.make(), rng=rng, progress=progress)
        return ModelMethod(model, name=self.name)


#: Models shipped with cellseg, for ``load_method("builtin:NAME")``: name -> function of
#: no arguments that returns the fitted model. One line adds one.
BUILTIN_MODELS: dict[str, Callable[[], object]] = {
    "nuclei": NucleusModel,  # cellseg_core/models/nuclei.onnx, see its model card
}

#: The unsupervised baselines (fitted on the training split when they are compared):
#: what supervision adds.
BASELINES = {name: Untrained(name, make) for name, make in (
    ("baseline: k-means", KMeansBaseline), ("baseline: mean-shift", MeanShiftBaseline))}


#: The name of the textbook nucleus baseline in the nucleus comparison
#: (:class:`TextbookMethod`).
OTSU_BASELINE = "otsu baseline"
#: The presets whose result is nucleus instances on any kind of image (labels 0/2), the
#: ones offered wherever nuclei are counted. auto-cytology is not one: on stained and
#: bright-field images its nuclei are the dark part of each cell, touching ones unsplit.
NUCLEUS_PRESETS = ("auto-nuclei", "auto-fluorescence")


@dataclass(frozen=True, eq=False)
class TextbookMethod:
    """The textbook nucleus baseline (:mod:`cellseg_core.textbook`) as a method: Gaussian
    σ 2, Otsu, holes filled, objects under 30 px removed, distance watershed; bright or
    dark nuclei as the image kind says (`objects` ``auto``), or as `objects` says.

    Examples
    --------
    >>> img = np.ones((40, 40), np.float32); img[5:15, 5:15] = 0.2
    >>> m = TextbookMethod()
    >>> int(m.segment(img).nuclei.max()), m.describe()["kind"]
    (1, 'textbook baseline (objects: auto)')
    """

    objects: str = "auto"
    name: str = OTSU_BASELINE
    params: Params | None = field(default=None, init=False)

    def __post_init__(self):
        baseline_objects(np.zeros((1, 1), np.float32), self.objects)  # checks `objects`

    def segment(self, image: np.ndarray) -> Segmentation:
        return textbook_segmentation(image, self.objects)

    def describe(self) -> dict:
        return _block(self.name, f"textbook baseline (objects: {self.objects})")


def nucleus_methods() -> dict[str, Segmenter]:
    """The nucleus methods compared by default (:func:`~.evaluation.compare_nuclei`):
    the built-in model, the textbook Otsu baseline (:class:`TextbookMethod`, polarity
    from the image) and the automatic presets auto-nuclei and auto-fluorescence.

    Examples
    --------
    >>> list(nucleus_methods())
    ['builtin:nuclei', 'otsu baseline', 'auto-nuclei', 'auto-fluorescence']
    """
    return {"builtin:nuclei": _load_builtin("nuclei"),
            OTSU_BASELINE: TextbookMethod(),
            **{name: ParamsMethod(get_preset(name), name=name, preset=name)
               for name in NUCLEUS_PRESETS}}


def preset_methods() -> dict[str, ParamsMethod]:
    """Every built-in preset as a method: name -> :class:`ParamsMethod`."""
    return {name: ParamsMethod(p, name=name, preset=name) for name, p in PRESETS.items()}


def as_segmenter(method, *, name: str | None = None) -> Segmenter:
    """`method` as a :class:`Segmenter`: itself, Params, or a fitted model.

    Raises
    ------
    TypeError
        For anything else.
    """
    if isinstance(method, (ParamsMethod, ModelMethod, TextbookMethod)):
        return method
    if isinstance(method, Params):
        return ParamsMethod(method, name=name or "params")
    if callable(getattr(method, "segment", None)):
        return ModelMethod(method, name=name or "")
    raise TypeError(f"`method` must be Params or have a .segment(image) method, got "
                    f"{type(method).__name__}")


def load_params(source) -> Params:
    """Params from a JSON file (path) or text: a params object or a provenance block.

    A ``params.json`` written by a batch run or downloaded from the app
    (``{"cellseg_version": ..., "params": {...}, ...}``) is accepted, so a run can be
    repeated with ``--params OUT/params.json``.
    """
    return _read_params(source)[0]


def _read_params(source) -> tuple[Params, str | None, str | None]:
    """(params, file name or None, SHA-256 of the file or None)."""
    file = sha = None
    if isinstance(source, (str, Path)) and not str(source).lstrip().startswith("{"):
        path = Path(source)
        if not path.is_file():
            raise ValueError(f"{path}: no such parameters file")
        where = f"{path}: "
        data = path.read_bytes()
        file, sha = str(source), hashlib.sha256(data).hexdigest()
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as err:
            raise ValueError(f"{where}not valid JSON (not UTF-8 text: {err})") from None
    else:
        text = source.decode() if isinstance(source, bytes) else str(source)
        where = ""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"{where}not valid JSON ({err})") from None
    if isinstance(data, dict) and "cellseg_version" in data:
        if data.get("params") is None:
            raise ValueError(f"{where}was written for a learned model, not parameters; "
                             "use --model with the model file it names")
        data = data["params"]
    try:
        return Params.from_dict(data), file, sha
    except ValueError as err:
        raise ValueError(f"{where}{err}") from None


def _load_model_file(path, trust_pickle: bool) -> ModelMethod:
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such model file")
    data = path.read_bytes()
    # An ONNX file is a nucleus network (training/train_nuclei.py); it holds no code.
    model = (NucleusModel(path) if path.suffix.lower() == ".onnx"
             else load_model(path, trust_pickle=trust_pickle))
    return ModelMethod(model, name=path.name, file=str(path),
                       sha256=hashlib.sha256(data).hexdigest())


def _load_builtin(name: str) -> ModelMethod:
    if name not in BUILTIN_MODELS:
        raise ValueError(f"unknown built-in model {name!r}; valid: "
                         f"{[f'builtin:{n}' for n in BUILTIN_MODELS]}")
    model = BUILTIN_MODELS[name]()
    file = getattr(model, "path", None)
    sha = hashlib.sha256(Path(file).read_bytes()).hexdigest() if file else None
    return ModelMethod(model, name=f"builtin:{name}", file=Path(file).name if file else None,
                       sha256=sha)


def load_method(spec=None, *, preset: str | None = None, params=None, model=None,
                trust_pickle: bool = False) -> Segmenter:
    """The method a user names, as a :class:`Segmenter`.

    Parameters
    ----------
    spec : str, Path, Params or model, optional
        A preset name, ``builtin:NAME``, a params JSON file (``*.json``) or text, a
        model file, Params, or a fitted model / Segmenter.
    preset, params, model : optional
        The command line's ``--preset``, ``--params`` (a file or Params) and ``--model``
        (a file or a fitted model); at most one of these and `spec`. None at all means
        ``Params()`` (the course's Lab 01 thresholds).
    trust_pickle : bool
        Passed to :func:`~cellseg_core.learn.load_model` for model files.

    Raises
    ------
    ValueError
        When more than one is given, or what is named cannot be read.

    Examples
    --------
    >>> load_method("lab03v2").describe()["preset"]
    'lab03v2'
    >>> load_method(preset="lab02").params == get_preset("lab02")
    True
    """
    given = [name for name, v in (("a method", spec), ("--preset", preset),
                                  ("--params", params), ("--model", model)) if v is not None]
    if len(given) > 1:
        raise ValueError(f"give only one of --preset, --params, --model (got {', '.join(given)})")
    if preset is not None:
        return ParamsMethod(get_preset(preset), name=preset, preset=preset)
    if params is not None:
        if isinstance(params, Params):
            return ParamsMethod(params)
        loaded, file, sha = _read_params(params)
        return ParamsMethod(loaded, name=Path(file).name if file else "params", file=file,
                            sha256=sha)
    if model is not None:
        if isinstance(model, str) and model.startswith("builtin:"):
            return _load_builtin(model[len("builtin:"):])
        if isinstance(model, (str, Path)):
            return _load_model_file(model, trust_pickle)
        return as_segmenter(model)
    if spec is None:
        return ParamsMethod(Params(), name="default")
    if not isinstance(spec, (str, Path)):
        return as_segmenter(spec)
    text = str(spec)
    if text.startswith("builtin:"):
        return _load_builtin(text[len("builtin:"):])
    if text in PRESETS:
        return load_method(preset=text)
    if text.lstrip().startswith("{") or text.lower().endswith(".json"):
        return load_method(params=spec)
    if Path(text).is_file():
        return _load_model_file(text, trust_pickle)
    raise ValueError(f"{text!r} is not a preset ({', '.join(PRESETS)}), a params JSON, a "
                     "model file or builtin:NAME")


def compare(dataset, ids, methods: dict, *, fit_ids=None, cache=None, progress=None,
            rng=0) -> tuple[dict[str, Evaluation], dict[str, ModelMethod]]:
    """Score several methods on the items `ids` of `dataset`.

    Parameters
    ----------
    dataset : Dataset
    ids : list of str
    methods : dict
        Name -> Segmenter, Params, fitted model or :class:`Untrained` (fitted here first,
        on `fit_ids`).
    fit_ids : list of str, optional
        Default: the dataset's training split, else `ids`.
    cache : mapping, optional
        Passed to :func:`~cellseg_core.evaluation.evaluate`.
    progress : callable, optional
        ``progress(done, total, text)`` over all methods' images.
    rng : int
        Seeds the fitting.

    Returns
    -------
    evaluations : dict
        Name -> Evaluation, in the order of `methods`.
    fitted : dict
        Name -> the fitted :class:`ModelMethod` of each :class:`Untrained` method.
    """
    ids = list(ids)
    total = max(1, len(methods) * len(ids))
    out, fitted = {}, {}
    for j, (name, method) in enumerate(methods.items()):
        def step(done, n, j=j, name=name):
            if progress is not None:
                progress(j * n + done, total, f"{name}: image {done} of {n}")
        if isinstance(method, Untrained):
            train = list(fit_ids or (dataset.split or {}).get("train") or ids)
            if progress is not None:
                progress(j * len(ids), total, f"{name}: fitting on {len(train)} images")
            method = fitted[name] = method.fit(dataset, train, rng=rng)
        out[name] = evaluate(dataset, ids, as_segmenter(method, name=name), cache=cache,
                             progress=step)
    if progress is not None:
        progress(total, total, "done")
    return out, fitted
