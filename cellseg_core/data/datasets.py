"""Sets of images with (optional) ground truth: folders and the VocEd course layout.

A :class:`Dataset` lists its items when it is opened (file names only) and reads an
image or a mask only when asked. Which folders a user may open comes from
configuration (:mod:`cellseg_core.data.catalog`).

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

import json
import os
import re
from pathlib import Path
from typing import Callable

import numpy as np

from ..io import IMAGE_SUFFIXES, read_image, read_instances, read_mask

__all__ = ["Dataset", "open_dataset", "resolve_id"]

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
        split = _read_splits(root, ids)

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
        split = _read_splits(root, ids)

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


def _read_splits(root: Path, ids: list) -> dict | None:
    """``split.json`` and every named ``split_<name>.json`` next to it (the course's
    ``split_lab02.json``): the named files' parts appear as ``<name>-<part>``
    (``lab02-train``, ``lab02-test``)."""
    split = _read_split(root / "split.json", ids)
    for path in sorted(root.glob("split_*.json")):
        name = path.stem[len("split_"):]
        if not name or _SAFE_NAME.search(name):
            continue
        named = _read_split(path, ids) or {}
        split = {**(split or {}), **{f"{name}-{part}": members
                                     for part, members in named.items()}}
    return split


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

