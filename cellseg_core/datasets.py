"""Sets of images with (optional) ground truth: folders, the VocEd course layout, demo data.

A :class:`Dataset` lists its items when it is opened (file names only) and reads an
image or a mask only when asked. Which datasets a user can pick comes from
configuration, never from a path typed in a browser:

- the environment variable ``CELLSEG_DATA``: an ``os.pathsep``-separated list of
  dataset folders, or of folders whose sub-folders are datasets;
- a TOML file (the path in ``CELLSEG_CONFIG``, or passed to
  :func:`available_datasets`) with ``data = ["folder", ...]`` (same meaning as
  ``CELLSEG_DATA``) and/or a ``[datasets]`` table ``name = "folder"``; relative
  paths are relative to the file.

Layouts understood by :func:`open_dataset`:

``images/`` + ``masks/`` (+ ``labels/``) (+ ``split.json``)
    Images and class masks (0 background, 1 cytoplasm, 2 nucleus) matched by file
    stem, in any format :mod:`cellseg_core.io` reads; ``labels/`` holds instance
    masks (fluorescence ground truth). ``split.json`` is ``{"train": [...],
    "test": [...]}`` with stems, or integers matched to stems by ``int(stem)``
    (``7`` → ``"007"``).
``X/*.npy`` + ``y/*.npy``
    The VocEd course's arrays: ``(3, M, N)`` float images and label arrays.
"""
from __future__ import annotations

import functools
import json
import os
import re
from pathlib import Path
from typing import Callable

import numpy as np

from .io import IMAGE_SUFFIXES, read_image, read_instances, read_mask

try:                                    # Python >= 3.11
    import tomllib
except ModuleNotFoundError:             # pragma: no cover - Python 3.10 with tomli
    import tomli as tomllib

__all__ = [
    "Dataset",
    "open_dataset",
    "demo_datasets",
    "available_datasets",
    "resolve_id",
    "stratified_split",
    "nc_ratios",
    "DEMO_SPLIT_SEED",
]

#: Seed of the demo datasets' train/test split.
DEMO_SPLIT_SEED = 42

_KINDS = ("cytology", "fluorescence")
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


def _natural_key(stem: str):
    """Sort "2" before "10" and zero-padded stems as they are."""
    return (0, int(stem), stem) if stem.isdigit() else (1, 0, stem)


def _list_files(folder: Path) -> dict[str, Path]:
    """Stem → path of the image files directly inside `folder` (hidden files skipped)."""
    if not folder.is_dir():
        return {}
    out = {}
    for path in folder.iterdir():
        if path.name.startswith(".") or path.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        if not path.is_file():
            continue
        if path.stem in out:
            raise ValueError(f"{folder}: two files share the stem {path.stem!r} "
                             f"({out[path.stem].name}, {path.name})")
        out[path.stem] = path
    return out


class Dataset:
    """A named, ordered set of images with optional ground truth.

    Build one with :meth:`from_folder`, :meth:`from_voced_npy`, :meth:`from_arrays`,
    :func:`open_dataset` or :func:`demo_datasets`; nothing is read until
    :meth:`image`, :meth:`mask` or :meth:`instances` is called.

    Attributes
    ----------
    name : str
        Short name shown to users (letters, digits, ``._-``).
    ids : list of str
        Item ids (file stems), in natural order.
    kind : {'cytology', 'fluorescence'}
        Cytology masks are 0/1/2; fluorescence ground truth is instances (class 2).
    split : dict or None
        ``{"train": [ids], "test": [ids]}`` when the dataset defines one (computed on
        first access for the demo datasets).
    source : str
        Where the data come from (a folder, or ``demo:<name>``); with `name` it
        identifies the dataset in caches.
    """

    def __init__(self, name: str, ids, kind: str = "cytology", split: dict | None = None,
                 source: str = "", *, image: Callable, mask: Callable | None = None,
                 instances: Callable | None = None, mask_ids=(), instance_ids=(),
                 split_factory: Callable | None = None):
        if kind not in _KINDS:
            raise ValueError(f"`kind` must be one of {list(_KINDS)}, got {kind!r}")
        self.name = name
        self.ids = list(ids)
        self.kind = kind
        self.source = source
        self._image, self._mask, self._instances = image, mask, instances
        self._mask_ids, self._instance_ids = frozenset(mask_ids), frozenset(instance_ids)
        self._split_factory = split_factory
        self._split = None
        if split is not None:
            self.split = split

    @property
    def split(self) -> dict | None:
        if self._split is None and self._split_factory is not None:
            self.split = self._split_factory(self)
        return self._split

    @split.setter
    def split(self, value: dict | None):
        if value is not None:
            known = set(self.ids)
            for part, members in value.items():
                unknown = [m for m in members if m not in known]
                if unknown:
                    raise ValueError(f"dataset {self.name!r}: split {part!r} names ids that "
                                     f"are not in the dataset: {unknown[:5]}")
        self._split = value

    def __len__(self) -> int:
        return len(self.ids)

    def __repr__(self) -> str:
        return (f"Dataset(name={self.name!r}, kind={self.kind!r}, n={len(self.ids)}, "
                f"has_masks={self.has_masks}, source={self.source!r})")

    @property
    def key(self) -> tuple:
        """(name, source): identifies the dataset in caches."""
        return (self.name, self.source)

    @property
    def has_masks(self) -> bool:
        """True when at least one item has ground truth."""
        return bool(self._mask_ids or self._instance_ids)

    def _check(self, id) -> str:
        return resolve_id(self, id)

    def image(self, id) -> np.ndarray:
        """The image `id` as float32 ``(M, N)`` or ``(M, N, 3)`` in [0, 1]."""
        return self._image(self._check(id))

    def mask(self, id) -> np.ndarray | None:
        """Class mask of `id` (uint8 0/1/2), or None when it has no ground truth.

        For fluorescence data with instance labels only, the mask is 2 inside
        every object (the class the fluorescence pipeline predicts).
        """
        id = self._check(id)
        if id in self._mask_ids:
            return self._mask(id)
        if id in self._instance_ids:
            return (self._instances(id) > 0).view(np.uint8) * np.uint8(2)
        return None

    def instances(self, id) -> np.ndarray | None:
        """Instance labels of `id` (int32, 0 background), or None when there are none."""
        id = self._check(id)
        if id in self._instance_ids:
            return self._instances(id).astype(np.int32, copy=False)
        return None

    # --- constructors ------------------------------------------------------------------
    @classmethod
    def from_folder(cls, path, *, name: str | None = None) -> "Dataset":
        """A dataset from ``images/`` + ``masks/`` (+ ``labels/``) (+ ``split.json``).

        Parameters
        ----------
        path : str or Path
            The folder holding ``images/``.
        name : str, optional
            Defaults to the folder's name.

        Raises
        ------
        ValueError
            When there is no ``images/`` folder, or ``split.json`` is malformed.
        """
        root = Path(path).resolve()
        images = _list_files(root / "images")
        if not images:
            raise ValueError(f"{root}: no images/ folder with image files")
        masks = {k: v for k, v in _list_files(root / "masks").items() if k in images}
        labels = {k: v for k, v in _list_files(root / "labels").items() if k in images}
        ids = sorted(images, key=_natural_key)
        kind = "fluorescence" if labels and not masks else "cytology"
        split = _read_split(root / "split.json", ids)

        def image(id):
            return read_image(images[id])

        def mask(id):
            return read_mask(masks[id])

        def instances(id):
            return read_instances(labels[id])

        return cls(name=_safe_name(name or root.name), ids=ids, kind=kind, split=split,
                   source=str(root), image=image, mask=mask, instances=instances,
                   mask_ids=masks, instance_ids=labels)

    @classmethod
    def from_voced_npy(cls, path, *, name: str | None = None) -> "Dataset":
        """A dataset in the VocEd course's layout: ``X/<n>.npy`` images, ``y/<n>.npy`` labels.

        Images are ``(3, M, N)`` float arrays; labels hold 0/1/2. A ``split.json`` next
        to ``X/`` is used when present.
        """
        root = Path(path).resolve()
        images = {k: v for k, v in _list_files(root / "X").items() if v.suffix == ".npy"}
        if not images:
            raise ValueError(f"{root}: no X/*.npy images")
        masks = {k: v for k, v in _list_files(root / "y").items() if k in images}
        ids = sorted(images, key=_natural_key)
        split = _read_split(root / "split.json", ids)

        def image(id):
            return read_image(images[id])

        def mask(id):
            return read_mask(masks[id])

        return cls(name=_safe_name(name or root.name), ids=ids, kind="cytology", split=split,
                   source=str(root), image=image, mask=mask, mask_ids=masks)

    @classmethod
    def from_arrays(cls, name: str, images, masks=None, instances=None, *,
                    kind: str = "cytology", split: dict | None = None,
                    source: str | None = None) -> "Dataset":
        """An in-memory dataset from lists of arrays (ids ``"000"``, ``"001"``, ...)."""
        n = len(images)
        width = max(3, len(str(max(n - 1, 0))))
        ids = [f"{i:0{width}d}" for i in range(n)]
        index = {id: i for i, id in enumerate(ids)}
        for what, items in (("masks", masks), ("instances", instances)):
            if items is not None and len(items) != n:
                raise ValueError(f"`{what}` has {len(items)} items, `images` has {n}")
        return cls(
            name=_safe_name(name), ids=ids, kind=kind, split=split,
            source=source or f"memory:{name}",
            image=lambda id: images[index[id]],
            mask=(lambda id: masks[index[id]]) if masks is not None else None,
            instances=(lambda id: instances[index[id]]) if instances is not None else None,
            mask_ids=ids if masks is not None else (),
            instance_ids=ids if instances is not None else ())


def _safe_name(name: str) -> str:
    cleaned = _SAFE_NAME.sub("-", str(name)).strip("-.")
    return cleaned or "dataset"


def _read_split(path: Path, ids: list) -> dict | None:
    """Parse ``split.json``; integers are matched to stems by ``int(stem)``."""
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(data, dict) or not all(isinstance(v, list) for v in data.values()):
        raise ValueError(f"{path}: expected {{\"train\": [...], \"test\": [...]}}")
    by_int = {}
    for stem in ids:
        if stem.isdigit():
            by_int.setdefault(int(stem), []).append(stem)
    known = set(ids)
    split = {}
    for part, members in data.items():
        out = []
        for member in members:
            if isinstance(member, bool):
                raise ValueError(f"{path}: {part!r} holds {member!r}, not an id")
            if isinstance(member, int):
                stems = by_int.get(member, [])
                if len(stems) != 1:
                    raise ValueError(f"{path}: id {member} of {part!r} matches "
                                     f"{len(stems)} files (expected one)")
                out.append(stems[0])
            elif isinstance(member, str) and member in known:
                out.append(member)
            else:
                raise ValueError(f"{path}: {part!r} names {member!r}, which is not in the "
                                 "dataset")
        split[str(part)] = sorted(out, key=_natural_key)
    return split


def open_dataset(path, *, name: str | None = None) -> Dataset:
    """Open a dataset folder, detecting its layout (``images/`` or ``X/`` + ``y/``)."""
    root = Path(path)
    if (root / "images").is_dir():
        return Dataset.from_folder(root, name=name)
    if (root / "X").is_dir():
        return Dataset.from_voced_npy(root, name=name)
    raise ValueError(f"{root}: not a dataset folder (expected images/ [+ masks/] or "
                     "X/*.npy + y/*.npy)")


def _is_dataset(path: Path) -> bool:
    return (path / "images").is_dir() or (path / "X").is_dir()


# --- demo data -------------------------------------------------------------------------
def demo_datasets() -> dict[str, Dataset]:
    """The built-in demo datasets, generated in memory from :mod:`cellseg_core.synthetic`.

    ``demo-cytology`` (24 RGB cells, masks 0/1/2) and ``demo-fluorescence`` (12 images
    of nuclei with instance labels), each with a deterministic train/test split
    (stratified by N/C quartile for cytology, seed :data:`DEMO_SPLIT_SEED`, a quarter
    for test). The images are generated on first access to an image, a mask or the
    split, once per process.
    """
    return dict(_demo())


@functools.lru_cache(maxsize=1)
def _demo() -> dict[str, Dataset]:
    from . import synthetic

    cyto = _Lazy(lambda: synthetic.cytology_set(n=24, rng=synthetic.SEED))
    fluo = _Lazy(lambda: synthetic.fluorescence_set(n=12, rng=synthetic.SEED))
    ids_c = [f"{i:03d}" for i in range(24)]
    ids_f = [f"{i:03d}" for i in range(12)]
    cytology = Dataset(
        "demo-cytology", ids_c, "cytology", source="demo:cytology",
        image=lambda id: cyto()[int(id)].image, mask=lambda id: cyto()[int(id)].mask,
        mask_ids=ids_c,
        split_factory=lambda ds: stratified_split(ds, 0.25, DEMO_SPLIT_SEED))
    fluorescence = Dataset(
        "demo-fluorescence", ids_f, "fluorescence", source="demo:fluorescence",
        image=lambda id: fluo()[int(id)].image, instances=lambda id: fluo()[int(id)].labels,
        instance_ids=ids_f,
        split_factory=lambda ds: _random_split(ds.ids, 0.25, DEMO_SPLIT_SEED))
    return {cytology.name: cytology, fluorescence.name: fluorescence}


class _Lazy:
    """Call `make` once, on first use."""

    def __init__(self, make):
        self._make, self._value = make, None

    def __call__(self):
        if self._value is None:
            self._value = self._make()
        return self._value


# --- configuration ---------------------------------------------------------------------
def _config_entries(config) -> list[tuple[str | None, Path]]:
    """(name or None, folder) pairs from a TOML path or an already parsed dict."""
    if config is None:
        return []
    base = Path.cwd()
    if not isinstance(config, dict):
        path = Path(config)
        try:
            with open(path, "rb") as fh:
                config = tomllib.load(fh)
        except FileNotFoundError:
            raise ValueError(f"config file {path} does not exist") from None
        except tomllib.TOMLDecodeError as err:
            raise ValueError(f"config file {path}: not valid TOML ({err})") from None
        base = path.resolve().parent
    unknown = sorted(set(config) - {"data", "datasets"})
    if unknown:
        raise ValueError(f"config: unknown key(s) {unknown}; valid: ['data', 'datasets']")
    entries = []
    data = config.get("data", [])
    if isinstance(data, str):
        data = [data]
    if not isinstance(data, list) or not all(isinstance(d, str) for d in data):
        raise ValueError("config: `data` must be a list of folder paths")
    entries += [(None, base / d) for d in data]
    named = config.get("datasets", {})
    if not isinstance(named, dict) or not all(isinstance(v, str) for v in named.values()):
        raise ValueError("config: `datasets` must be a table of name = \"folder\"")
    entries += [(name, base / folder) for name, folder in named.items()]
    return entries


def available_datasets(config=None) -> dict[str, Dataset]:
    """Every dataset a user may pick: the demo ones, ``CELLSEG_DATA`` and a config file.

    Parameters
    ----------
    config : str, Path or dict, optional
        A TOML file (or its parsed content) with ``data = [folders]`` and/or a
        ``[datasets]`` table of ``name = "folder"``. Defaults to the file named by
        the environment variable ``CELLSEG_CONFIG``, if set.

    Returns
    -------
    dict
        Name → :class:`Dataset`, demo datasets first. A folder listed in
        ``CELLSEG_DATA`` or ``data`` is a dataset itself or holds dataset folders.
        Folders that are missing or not datasets are skipped; a name used twice gets
        a ``-2``, ``-3`` suffix.

    Raises
    ------
    ValueError
        When the config file is missing or malformed.
    """
    if config is None and os.environ.get("CELLSEG_CONFIG"):
        config = os.environ["CELLSEG_CONFIG"]
    entries: list[tuple[str | None, Path]] = []
    for item in os.environ.get("CELLSEG_DATA", "").split(os.pathsep):
        if item.strip():
            entries.append((None, Path(item.strip()).expanduser()))
    entries += _config_entries(config)

    out = dict(demo_datasets())
    seen = set()
    for name, folder in entries:
        folder = folder.expanduser()
        if not folder.is_dir():
            continue
        folders = [folder] if (name or _is_dataset(folder)) else sorted(
            p for p in folder.iterdir() if p.is_dir() and _is_dataset(p))
        for path in folders:
            real = path.resolve()
            if real in seen:
                continue
            try:
                dataset = open_dataset(real, name=name)
            except ValueError:
                continue
            seen.add(real)
            base, k = dataset.name, 2
            while dataset.name in out:
                dataset.name = f"{base}-{k}"
                k += 1
            out[dataset.name] = dataset
    return out


def resolve_id(dataset: Dataset, id) -> str:
    """Check that `id` names an item of `dataset` and return it.

    Ids come from the user (a URL, a select box): anything that looks like a path
    is refused before it is looked up.

    Raises
    ------
    ValueError
        For a non-string id, one holding ``..``, a path separator or a drive, an
        absolute path, or an id the dataset does not have.

    Examples
    --------
    >>> ds = Dataset.from_arrays("tiny", [np.zeros((2, 2), np.float32)])
    >>> resolve_id(ds, "000")
    '000'
    """
    if not isinstance(id, str):
        raise ValueError(f"`id` must be a string, got {type(id).__name__}")
    if (not id or ".." in id or "/" in id or "\\" in id or ":" in id or "\x00" in id
            or os.path.isabs(id)):
        raise ValueError(f"`id` {id!r} is not a valid item id")
    if id not in _id_set(dataset):
        raise ValueError(f"`id` {id!r} is not in dataset {dataset.name!r}")
    return id


def _id_set(dataset: Dataset) -> frozenset:
    cached = dataset.__dict__.get("_id_cache")
    if cached is None or cached[0] is not dataset.ids or cached[1] != len(dataset.ids):
        cached = (dataset.ids, len(dataset.ids), frozenset(dataset.ids))
        dataset.__dict__["_id_cache"] = cached
    return cached[2]


# --- splits ----------------------------------------------------------------------------
def nc_ratios(dataset: Dataset, ids=None) -> np.ndarray:
    """True N/C ratio (nucleus / cytoplasm pixels) of each item; NaN without cytoplasm."""
    ids = dataset.ids if ids is None else ids
    out = np.full(len(ids), np.nan)
    for i, id in enumerate(ids):
        mask = dataset.mask(id)
        if mask is None:
            raise ValueError(f"dataset {dataset.name!r}: item {id!r} has no mask")
        counts = np.bincount(mask.ravel(), minlength=3)
        if counts[1]:
            out[i] = counts[2] / counts[1]
    return out


def _random_split(ids, test_fraction, seed) -> dict:
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(ids))
    n_test = max(1, int(round(test_fraction * len(ids))))
    test = {ids[i] for i in order[:n_test]}
    return {"train": [i for i in ids if i not in test], "test": [i for i in ids if i in test]}


def stratified_split(dataset: Dataset, test_fraction: float = 0.2, seed: int = 42,
                     drop_without_nucleus: bool = False) -> dict:
    """Train/test split stratified by N/C-ratio quartile (the course's Lab 02 way).

    The N/C ratio of each mask is cut into quartiles (``pandas.qcut``, ties merged)
    and scikit-learn's ``train_test_split(test_size=test_fraction,
    random_state=seed, stratify=quartile)`` splits the ids. Items without
    cytoplasm (N/C undefined) form their own stratum.

    Parameters
    ----------
    dataset : Dataset
        Every item must have a mask.
    test_fraction : float
        In (0, 1).
    seed : int
    drop_without_nucleus : bool
        Leave out the items whose mask has no nucleus (the course drops them).

    Returns
    -------
    dict
        ``{"train": [ids], "test": [ids]}``, each in the dataset's order.

    Raises
    ------
    ValueError
        For a bad `test_fraction`, an item without mask, or too few items.
    """
    import pandas as pd
    from sklearn.model_selection import train_test_split

    if not 0 < test_fraction < 1:
        raise ValueError(f"`test_fraction` must be in (0, 1), got {test_fraction}")
    ids = list(dataset.ids)
    nucleus = np.zeros(len(ids), bool)
    nc = np.full(len(ids), np.nan)
    for i, id in enumerate(ids):
        mask = dataset.mask(id)
        if mask is None:
            raise ValueError(f"`dataset` {dataset.name!r}: item {id!r} has no mask to "
                             "stratify by")
        counts = np.bincount(mask.ravel(), minlength=3)
        nucleus[i] = counts[2] > 0
        if counts[1]:
            nc[i] = counts[2] / counts[1]
    if drop_without_nucleus:
        keep = np.flatnonzero(nucleus)
        ids, nc = [ids[i] for i in keep], nc[keep]
    if len(ids) < 2:
        raise ValueError(f"`dataset` {dataset.name!r} has {len(ids)} usable item(s); "
                         "a split needs at least 2")
    strata = np.full(len(ids), -1)
    finite = np.isfinite(nc)
    if finite.sum() >= 4:
        strata[finite] = pd.qcut(nc[finite], 4, labels=False, duplicates="drop")
    else:
        strata[finite] = 0
    counts = np.bincount(strata + 1)
    n_test = int(np.ceil(test_fraction * len(ids)))
    stratify = strata if (counts[counts > 0].min() >= 2
                          and n_test >= np.count_nonzero(counts)
                          and len(ids) - n_test >= np.count_nonzero(counts)) else None
    train, test = train_test_split(ids, test_size=test_fraction, random_state=seed,
                                   stratify=stratify)
    test = set(test)
    return {"train": [i for i in ids if i not in test], "test": [i for i in ids if i in test]}
