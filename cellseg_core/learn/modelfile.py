"""The model-file format: one file per model, whatever its kind.

A file is a magic line (``CELLSEG-MODEL``), the size of a JSON header, the header
(format tag and version, kind, the kind's settings and clean-up, versions of
scikit-learn / numpy / cellseg, size and SHA-256 of the payload) and the payload:

- ``PixelClassifier``: the estimator (an auto-context model: both stages) as a
  ``skops.io`` archive: JSON and numpy arrays, no pickle, so reading a file runs no
  code from it (format version 3). Only the object types listed in
  :data:`_SKOPS_TYPES` (every type the three estimators hold, measured; nothing else,
  whatever skops itself would trust) are let through, before anything is built.
- ``UNetModel``: a torch state dict, read with ``weights_only=True``.
- ``ProbabilityEnsemble``: its members' own files, one after the other.

:func:`read_model_file` checks the magic, header, format and format version;
:func:`cellseg_core.learn.load_model` (:mod:`.registry`) hands the rest to the kind's
reader, which checks the scikit-learn version and the checksum. Files of format
versions 1 and 2 hold a pickle, which can run code when read: they are refused unless
the caller trusts the file (``trust_pickle=True``, ``cellseg segment --trust-pickle``,
the app's "Trust this file" box) *and* the admin allows it (environment variable
``CELLSEG_ALLOW_PICKLE_MODELS=1``, off by default); even then only an exact list of
(module, name) globals is resolved. Load a trusted old file once and ``save`` it to
convert it.
"""
from __future__ import annotations

import hashlib
import io as _io
import json
import os
import pickle
import sys
import threading
import zipfile
from pathlib import Path

import numpy as np

from .._version import __version__
from ..io import write_bytes_atomic

__all__ = ["FORMAT", "FORMAT_VERSION", "PICKLE_ENV", "pickle_models_allowed",
           "read_model_file", "ModelFile"]

#: Format tag and version written in every model file's header.
FORMAT = "cellseg-model"
# 1: pickled estimator; 2: PixelClassifier auto-context (two stages), still pickled;
# 3: the estimator as a skops.io archive (no pickle, no code).
FORMAT_VERSION = 3
_MAGIC = b"CELLSEG-MODEL\n"
#: Format versions whose PixelClassifier payload is a pickle (read only when trusted).
_PICKLE_FORMATS = (1, 2)
#: Environment variable with which an admin allows old pickled model files to be read
#: when a user trusts one ("1"; off by default, and on a shared server keep it off).
PICKLE_ENV = "CELLSEG_ALLOW_PICKLE_MODELS"


def _sklearn_version() -> str:
    import sklearn

    return sklearn.__version__


# Format 3 payloads (skops.io archives). Every object type the three estimators of
# `_make_estimator` and an auto-context payload hold (measured with scikit-learn 1.9 on
# all six): a file naming any other type is refused before skops builds anything, and
# skops is told to trust exactly these (never ``get_untrusted_types()`` of the file).
_SKOPS_TYPES = frozenset({
    "builtins.dict", "builtins.list", "builtins.str", "builtins.tuple",
    "builtins.int", "builtins.float", "builtins.bool", "builtins.NoneType",
    "numpy.ndarray", "numpy.bool", "numpy.bool_", "numpy.int8", "numpy.int16",
    "numpy.int32", "numpy.int64", "numpy.uint8", "numpy.uint16", "numpy.uint32",
    "numpy.uint64", "numpy.float32", "numpy.float64",
    "numpy.random._generator.Generator",
    "sklearn._loss._loss.CyHalfMultinomialLoss",
    "sklearn._loss.link.Interval",
    "sklearn._loss.link.MultinomialLogit",
    "sklearn._loss.loss.HalfMultinomialLoss",
    "sklearn.ensemble._forest.ExtraTreesClassifier",
    "sklearn.ensemble._forest.RandomForestClassifier",
    "sklearn.ensemble._hist_gradient_boosting.binning._BinMapper",
    "sklearn.ensemble._hist_gradient_boosting.gradient_boosting.HistGradientBoostingClassifier",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.preprocessing._label.LabelEncoder",
    "sklearn.tree._classes.DecisionTreeClassifier",
    "sklearn.tree._classes.ExtraTreeClassifier",
    "sklearn.tree._tree.Tree",
})
# The skops node loaders those types use (a FunctionNode, MethodNode, ... never).
_SKOPS_LOADERS = frozenset({"DictNode", "ListNode", "JsonNode", "TypeNode", "TupleNode",
                            "NdArrayNode", "RandomGeneratorNode", "LossNode", "ObjectNode",
                            "TreeNode"})
# A format-3 archive may unpack to at most this many times its size (measured: 3x for
# boosting, 12x for forests) and this many bytes: a zip bomb is refused unread.
_MAX_UNPACK_RATIO = 200
_MAX_UNPACKED_BYTES = 1 << 30
_ESTIMATOR_TYPES = ("HistGradientBoostingClassifier", "RandomForestClassifier",
                    "ExtraTreesClassifier")

# Format 1-2 payloads (pickles), read only when trusted: the exact (module, name) globals
# the three estimators reference (measured), the numpy array plumbing of older writers
# and harmless builtins. Exact pairs: never a module prefix, never "any class".
_PICKLE_GLOBALS = frozenset({
    ("numpy", "dtype"), ("numpy", "ndarray"),
    ("numpy._core.multiarray", "scalar"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.numeric", "_frombuffer"), ("numpy.core.numeric", "_frombuffer"),
    ("numpy.random._pcg64", "PCG64"), ("numpy.random._mt19937", "MT19937"),
    ("numpy.random._pickle", "__bit_generator_ctor"),
    ("numpy.random._pickle", "__generator_ctor"),
    ("numpy.random._pickle", "__randomstate_ctor"),
    ("numpy.random.bit_generator", "SeedSequence"),
    ("numpy.random.bit_generator", "__pyx_unpickle_SeedSequence"),
    ("sklearn._loss._loss", "CyHalfMultinomialLoss"),
    ("sklearn._loss._loss", "__pyx_unpickle_CyHalfMultinomialLoss"),
    ("sklearn._loss.link", "Interval"), ("sklearn._loss.link", "MultinomialLogit"),
    ("sklearn._loss.loss", "HalfMultinomialLoss"),
    ("sklearn.ensemble._forest", "ExtraTreesClassifier"),
    ("sklearn.ensemble._forest", "RandomForestClassifier"),
    ("sklearn.ensemble._hist_gradient_boosting.binning", "_BinMapper"),
    ("sklearn.ensemble._hist_gradient_boosting.gradient_boosting",
     "HistGradientBoostingClassifier"),
    ("sklearn.ensemble._hist_gradient_boosting.predictor", "TreePredictor"),
    ("sklearn.preprocessing._label", "LabelEncoder"),
    ("sklearn.tree._classes", "DecisionTreeClassifier"),
    ("sklearn.tree._classes", "ExtraTreeClassifier"),
    ("sklearn.tree._tree", "Tree"),
    ("copyreg", "_reconstructor"),
    *(("builtins", name) for name in ("slice", "set", "frozenset", "tuple", "list", "dict",
                                      "int", "float", "bool", "complex", "bytearray",
                                      "bytes", "object")),
})


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that resolves only the exact globals of :data:`_PICKLE_GLOBALS`."""

    def find_class(self, module, name):
        if (module, name) in _PICKLE_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"model file refers to {module}.{name}, "
                                     "which a cellseg model never holds")


def pickle_models_allowed() -> bool:
    """Whether the admin allows trusted old (pickled) model files: :data:`PICKLE_ENV`
    set to ``1`` (or ``true``, ``yes``, ``on``); off by default.

    Examples
    --------
    >>> import os
    >>> pickle_models_allowed() == (os.environ.get(PICKLE_ENV, "") in ("1", "true", "yes", "on"))
    True
    """
    return os.environ.get(PICKLE_ENV, "").strip().lower() in ("1", "true", "yes", "on")


_SKOPS_IMPORT = threading.Lock()


def _skops_io():
    """``skops.io``, imported without its default trust list.

    On import, skops lists every scikit-learn estimator as trusted by default
    (``sklearn.utils.all_estimators()``: it imports all of scikit-learn, 3 s, and
    PyTorch through scikit-learn's array-API shim). We never rely on that default
    (:func:`_load_skops` checks every type against :data:`_SKOPS_TYPES` first, and
    passes that list), so during the import ``all_estimators`` returns nothing: 0.7 s,
    no PyTorch, and skops itself trusts fewer types. Harmless if skops changes.
    """
    if "skops.io" in sys.modules:
        return sys.modules["skops.io"]
    import sklearn.utils

    with _SKOPS_IMPORT:
        real = sklearn.utils.all_estimators
        sklearn.utils.all_estimators = lambda *args, **kwargs: []
        try:
            import skops.io
        finally:
            sklearn.utils.all_estimators = real
    return skops.io


def _write_model(path, kind: str, header: dict, estimator) -> Path:
    path = Path(path)
    write_bytes_atomic(path, _model_bytes(kind, header, estimator))
    return path


def _container(kind: str, payload: bytes, header: dict) -> bytes:
    """A model file of any kind: magic, the JSON header (format, versions, payload
    size and SHA-256, plus the kind's own `header` fields), then `payload`."""
    header = {"format": FORMAT, "format_version": FORMAT_VERSION, "kind": kind,
              "numpy_version": np.__version__, "cellseg_version": __version__,
              "payload_sha256": hashlib.sha256(payload).hexdigest(),
              "payload_bytes": len(payload), **header}
    head = json.dumps(header).encode()
    return _MAGIC + len(head).to_bytes(8, "little") + head + payload


def _checked_payload(header: dict, payload: bytes, name: str) -> bytes:
    """`payload` if its size and SHA-256 match the header, else a ValueError."""
    if (len(payload) != header.get("payload_bytes")
            or hashlib.sha256(payload).hexdigest() != header.get("payload_sha256")):
        raise ValueError(f"{name}: corrupted model file (checksum mismatch: truncated or "
                         "modified)")
    return payload


def _model_bytes(kind: str, header: dict, estimator) -> bytes:
    sio = _skops_io()
    # Deflated: 3x (boosting) to 12x (forests) smaller than stored.
    return _container(kind, sio.dumps(estimator, compression=zipfile.ZIP_DEFLATED),
                      {"sklearn_version": _sklearn_version(), "payload_format": "skops",
                       **header})


def _skops_types(payload: bytes) -> set:
    """Every "module.Class" (and every unknown node loader) a skops archive names,
    read from its ``schema.json`` without building anything."""
    with zipfile.ZipFile(_io.BytesIO(payload)) as archive:
        unpacked = sum(info.file_size for info in archive.infolist())  # zipfile stops there
        if unpacked > min(_MAX_UNPACK_RATIO * len(payload), _MAX_UNPACKED_BYTES):
            raise ValueError(f"the archive unpacks to {unpacked:,} bytes from {len(payload):,} "
                             "(a zip bomb?)")
        schema = json.loads(archive.read("schema.json"))
    found, todo = set(), [schema]
    while todo:
        node = todo.pop()
        if isinstance(node, list):
            todo.extend(node)
        elif isinstance(node, dict):
            if {"__class__", "__module__", "__loader__"} & node.keys():
                module, cls = node.get("__module__"), node.get("__class__")
                loader = node.get("__loader__")
                found.add(f"{module}.{cls}" if isinstance(module, str)
                          and isinstance(cls, str) else repr((module, cls)))
                if loader is not None and loader not in _SKOPS_LOADERS:
                    found.add(f"skops loader {loader!r}")
            todo.extend(node.values())
    return found


def _load_skops(payload: bytes):
    """The estimator (or auto-context dict) of a format-3 payload; only
    :data:`_SKOPS_TYPES` are ever built. ValueError for anything else."""
    sio = _skops_io()
    try:
        names = _skops_types(payload)
    except (zipfile.BadZipFile, KeyError, UnicodeDecodeError, ValueError, RecursionError,
            EOFError) as err:
        raise ValueError(f"unreadable payload: {err}") from None
    foreign = sorted(names - _SKOPS_TYPES)
    if foreign:
        raise ValueError(f"it refers to {', '.join(foreign[:5])}"
                         f"{' and more' if len(foreign) > 5 else ''}, which a cellseg model "
                         "never holds; refusing to load it")
    try:
        obj = sio.loads(payload, trusted=sorted(_SKOPS_TYPES))
    except Exception as err:  # skops raises many kinds on a malformed archive
        raise ValueError(f"unreadable payload: {type(err).__name__}: {err}") from None

    def estimator(x):
        return type(x).__name__ in _ESTIMATOR_TYPES and type(x).__module__.startswith(
            "sklearn.ensemble.")

    if isinstance(obj, dict):
        stage1 = obj.get("stage1")
        ok = (set(obj) == {"stage1", "stage2"} and isinstance(stage1, list) and stage1
              and all(estimator(m) for m in stage1) and estimator(obj["stage2"]))
    else:
        ok = estimator(obj)
    if not ok:
        raise ValueError(f"payload holds a {type(obj).__name__}, not a classifier")
    return obj


def _check_sklearn_version(header: dict, name: str) -> None:
    """Refuse trees saved by another scikit-learn version (they do not carry over)."""
    if header.get("sklearn_version") != _sklearn_version():
        raise ValueError(
            f"{name}: model saved with scikit-learn {header.get('sklearn_version')}, but "
            f"scikit-learn {_sklearn_version()} is installed; retrain the model (or install "
            "that version): trees do not carry over between scikit-learn versions")


def _check_pickle_trust(name: str, version: int, trust_pickle: bool) -> None:
    """Refuse an old pickled file unless it is trusted and the admin allows that."""
    if not trust_pickle:
        raise ValueError(
            f"{name}: this model file was saved in the old pickle format (format version "
            f"{version}), which can run code when it is read; re-save it with this version of "
            "cellseg, or, only if you trust its source, load it with trust "
            "(`cellseg segment --model FILE --trust-pickle`, the app's 'Trust this file' "
            f"box, load_model(..., trust_pickle=True); needs {PICKLE_ENV}=1)")
    if not pickle_models_allowed():
        raise ValueError(
            f"{name}: this model file was saved in the old pickle format (format version "
            f"{version}), which can run code; the admin turned off reading such files "
            f"({PICKLE_ENV} is not set to 1). Re-save the model with this version of cellseg "
            "where reading it is allowed")


def read_model_file(source) -> tuple[dict, bytes, str]:
    """The header, the payload and a name for messages of a model file (a path or
    bytes), once its magic, header, format and format version are checked.

    Raises
    ------
    ValueError
        When the file is missing, is not a cellseg model (a text file, a foreign
        pickle), has an unreadable header, or was written by a newer format.

    Examples
    --------
    >>> read_model_file(b"not a model")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: model data: not a cellseg model file (no 'CELLSEG-MODEL' header); ...
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        data, name = bytes(source), "model data"
    else:
        path = Path(source)
        if not path.is_file():
            raise ValueError(f"{path}: no such model file")
        data, name = path.read_bytes(), str(path)
    if not data.startswith(_MAGIC):
        raise ValueError(f"{name}: not a cellseg model file (no '{_MAGIC.decode().strip()}' "
                         "header); refusing to read it")
    offset = len(_MAGIC) + 8
    size = int.from_bytes(data[len(_MAGIC):offset], "little")
    try:
        header = json.loads(data[offset:offset + size].decode())
        if not isinstance(header, dict):
            raise ValueError("header is not an object")
    except (UnicodeDecodeError, ValueError, RecursionError) as err:
        raise ValueError(f"{name}: corrupted model file (unreadable header: {err})") from None
    if header.get("format") != FORMAT:
        raise ValueError(f"{name}: not a cellseg model file (format {header.get('format')!r})")
    version = header.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION or version < 1:
        raise ValueError(f"{name}: model format version {version!r} is not supported by this "
                         f"cellseg (reads up to {FORMAT_VERSION}); upgrade cellseg")
    return header, data[offset + size:], name


class ModelFile:
    """``save(path)`` for a model that has ``to_bytes()``."""

    def save(self, path) -> Path:
        """Write :meth:`to_bytes` to `path` (atomically)."""
        path = Path(path)
        write_bytes_atomic(path, self.to_bytes())
        return path
