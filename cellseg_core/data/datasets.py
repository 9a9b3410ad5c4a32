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
``<id>/images/<id>.png`` + ``<id>/masks/*.png`` (+ ``split.json``)
    The Data Science Bowl 2018 layout (``stage1_train``): one folder per image, one
    binary mask file per nucleus; read as instances (:meth:`Dataset.from_dsb`).
``rgb/`` + ``csv/`` and/or ``mask/``
    The TCGA-style layout of the ECSE 415 study (:mod:`.tcga`, :meth:`Dataset.from_tcga`):
    nuclei from polygons (or the mask's instance channels), each with a class.

Where the ids name patients (TCGA barcodes) and there is no ``split.json``, the split
is patient-wise (:func:`.patients.patient_split`): no patient on both sides.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Callable

import numpy as np

from ..io import IMAGE_SUFFIXES, read_image, read_instances, read_mask
from .patients import patient_split, patients_of
from .tcga import (mask_instances, polygons_to_masks, read_polygons, read_rgb_mask,
                   resize_labels, rgb_mask_to_labels)

__all__ = ["Dataset", "TCGADataset", "open_dataset", "resolve_id"]

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

    @property
    def has_instances(self) -> bool:
        """True when at least one item has instance labels (the nucleus model trains on
        them; Compare on nuclei scores them)."""
        return bool(self._instance_ids)

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
                   mask_ids=masks, instance_ids=labels,
                   split_factory=_patient_split_factory(ids, split))

    @classmethod
    def from_tcga(cls, path, *, name: str | None = None) -> "TCGADataset":
        """A dataset in the ECSE 415 study's TCGA-style layout (see :mod:`.tcga`).

        ``rgb/<stem>.png`` tiles; nuclei from ``csv/<stem>.csv`` polygons when there,
        else from ``mask/<stem>.png`` (channel 1 × channel 2), resized to the tile
        with nearest neighbour. The dataset is nuclei-only (kind ``fluorescence``:
        mask 2 inside every nucleus, instances from the nuclei);
        :meth:`TCGADataset.nucleus_classes` gives each nucleus's class and
        :meth:`TCGADataset.colour_labels` the colour-coded mask as labels. The split
        is ``split.json`` when present, else patient-wise.
        """
        root = Path(path).resolve()
        images = _list_files(root / "rgb")
        if not images:
            raise ValueError(f"{root}: no rgb/ folder with image files")
        csvs = {p.stem: p for p in (root / "csv").glob("*.csv")
                if p.stem in images} if (root / "csv").is_dir() else {}
        masks = {k: v for k, v in _list_files(root / "mask").items() if k in images}
        ids = sorted(images, key=_natural_key)
        split = _read_split(root / "split.json", ids)
        with_truth = sorted(set(csvs) | set(masks), key=_natural_key)

        def image(id):
            return read_image(images[id])

        def shape_of(id):
            return image(id).shape[:2]

        def instances(id):
            if id in csvs:
                return polygons_to_masks(read_polygons(csvs[id]), shape_of(id),
                                         dataset.class_names)[1]
            return resize_labels(mask_instances(read_rgb_mask(masks[id])), shape_of(id))

        dataset = TCGADataset(name=_safe_name(name or root.name), ids=ids,
                              kind="fluorescence", split=split, source=str(root),
                              image=image, instances=instances, instance_ids=with_truth,
                              split_factory=_patient_split_factory(ids, split),
                              csvs=csvs, masks=masks)
        return dataset

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
    def from_dsb(cls, path, *, name: str | None = None) -> "Dataset":
        """A dataset in the DSB 2018 layout: ``<id>/images/<id>.png`` + ``<id>/masks/*.png``.

        Each mask file is one nucleus (nonzero pixels); the instances of an item paint
        them with ids 1, 2, ... in file-name order (a later mask wins where two
        overlap). The RGBA PNGs of the DSB are read as RGB, or as gray when their
        three channels are equal (the fluorescence images). The kind is
        ``fluorescence`` (instance ground truth); a ``split.json`` next to the item
        folders is used when present.

        Raises
        ------
        ValueError
            When no ``<id>/images/<id>.*`` item is found.

        Examples
        --------
        >>> import tempfile, pathlib
        >>> from skimage.io import imsave
        >>> root = pathlib.Path(tempfile.mkdtemp())
        >>> for sub in ("a1/images", "a1/masks"):
        ...     (root / sub).mkdir(parents=True)
        >>> img = np.zeros((8, 8), np.uint8); img[1:3, 1:3] = 200; img[5:7, 5:7] = 200
        >>> imsave(root / "a1/images/a1.png", img, check_contrast=False)
        >>> for k, (r, c) in enumerate([(1, 1), (5, 5)]):
        ...     m = np.zeros((8, 8), np.uint8); m[r:r + 2, c:c + 2] = 255
        ...     imsave(root / f"a1/masks/m{k}.png", m, check_contrast=False)
        >>> ds = Dataset.from_dsb(root)
        >>> ds.ids, ds.kind, int(ds.instances("a1").max()), ds.image("a1").shape
        (['a1'], 'fluorescence', 2, (8, 8))
        """
        root = Path(path).resolve()
        items = {}
        for folder in sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else ():
            image = _list_files(folder / "images").get(folder.name)
            if image is not None and not folder.name.startswith("."):
                items[folder.name] = (image, sorted(_list_files(folder / "masks").values()))
        if not items:
            raise ValueError(f"{root}: no <id>/images/<id>.png items (DSB 2018 layout)")
        ids = sorted(items, key=_natural_key)
        with_masks = [i for i in ids if items[i][1]]

        def image(id):
            img = read_image(items[id][0])
            if img.ndim == 3 and np.array_equal(img[..., 0], img[..., 1]) \
                    and np.array_equal(img[..., 0], img[..., 2]):
                img = np.ascontiguousarray(img[..., 0])
            return img

        def instances(id):
            return _paint_masks(items[id][1])

        return cls(name=_safe_name(name or root.name), ids=ids, kind="fluorescence",
                   split=_read_split(root / "split.json", ids), source=str(root),
                   image=image, instances=instances, instance_ids=with_masks)

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


class TCGADataset(Dataset):
    """A :class:`Dataset` in the TCGA-style layout (:meth:`Dataset.from_tcga`), with the
    nuclei's classes and the colour-coded masks."""

    def __init__(self, *args, csvs: dict | None = None, masks: dict | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self._csvs, self._masks = dict(csvs or {}), dict(masks or {})
        self._class_names = None

    @property
    def patients(self) -> dict | None:
        """id -> patient (TCGA participant barcode), or None when an id names none."""
        return patients_of(self.ids)

    @property
    def class_names(self) -> list:
        """The nucleus classes of all the CSVs, sorted (label k + 1 is class k)."""
        if self._class_names is None:
            names = set()
            for path in self._csvs.values():
                names.update(read_polygons(path)["class"])
            self._class_names = sorted(names)
        return self._class_names

    def nucleus_classes(self, id) -> np.ndarray | None:
        """(M, N) uint8: 0 background, 1 + the index in :attr:`class_names` inside
        each nucleus (from the CSV), or the mask's channel 0 inside each nucleus when
        there is no CSV; None without either."""
        id = self._check(id)
        shape = self.image(id).shape[:2]
        if id in self._csvs:
            return polygons_to_masks(read_polygons(self._csvs[id]), shape,
                                     self.class_names)[0]
        if id in self._masks:
            mask = resize_labels(read_rgb_mask(self._masks[id]), shape)
            return np.where(mask_instances(mask) > 0, mask[..., 0], 0).astype(np.uint8)
        return None

    def colour_labels(self, id, palette: dict | None = None) -> np.ndarray | None:
        """The colour-coded mask image as labels (:func:`.tcga.rgb_mask_to_labels`),
        resized to the tile with nearest neighbour; None without a mask image."""
        id = self._check(id)
        if id not in self._masks:
            return None
        mask = resize_labels(read_rgb_mask(self._masks[id]), self.image(id).shape[:2])
        return rgb_mask_to_labels(mask, palette)


def _patient_split_factory(ids, split):
    """A patient-wise split, computed on first access, when there is no ``split.json``
    and every id names a patient; else None."""
    if split is not None or not patients_of(ids):
        return None
    return lambda ds: patient_split(ds.ids, patients_of(ds.ids))


def _paint_masks(paths) -> np.ndarray:
    """Instances (int32) from one binary mask file per object, ids in file order."""
    labels = None
    for k, path in enumerate(paths, start=1):
        mask = read_instances(path) > 0
        if labels is None:
            labels = np.zeros(mask.shape, np.int32)
        elif mask.shape != labels.shape:
            raise ValueError(f"{path}: mask shape {mask.shape} differs from the item's "
                             f"other masks {labels.shape}")
        labels[mask] = k
    return labels


def _is_dsb(root: Path) -> bool:
    """Whether `root` holds at least one ``<id>/images/<id>.*`` item."""
    for folder in root.iterdir():
        if folder.is_dir() and folder.name in _list_files(folder / "images"):
            return True
    return False


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
    """Open a dataset folder, detecting its layout (``images/``, ``X/`` + ``y/`` or DSB)."""
    root = Path(path)
    if (root / "images").is_dir():
        return Dataset.from_folder(root, name=name)
    if (root / "X").is_dir():
        return Dataset.from_voced_npy(root, name=name)
    if (root / "rgb").is_dir():
        return Dataset.from_tcga(root, name=name)
    if root.is_dir() and _is_dsb(root):
        return Dataset.from_dsb(root, name=name)
    raise ValueError(f"{root}: not a dataset folder (expected images/ [+ masks/], "
                     "X/*.npy + y/*.npy, rgb/ + csv/ or mask/ (TCGA), or the DSB 2018 "
                     "layout <id>/images/<id>.png + <id>/masks/*.png)")



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

