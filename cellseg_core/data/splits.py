"""Train / test splits of a :class:`~cellseg_core.data.Dataset`: the split a command asks
for, the course's stratified split, a random split."""
from __future__ import annotations

import numpy as np
import pandas as pd

from .datasets import Dataset

__all__ = ["split_ids", "stratified_split", "nc_ratios", "course_split", "COURSE_SPLITS",
           "STRATIFY_BY"]

#: What :func:`stratified_split` can stratify by: the nucleus size in pixels (the course's
#: Lab 02) or the N/C ratio.
STRATIFY_BY = ("nucleus_size", "nc")

#: Named splits of the course that any cytology dataset with masks can be split by:
#: name → keyword arguments of :func:`stratified_split`. ``lab02``: the course's Lab 02
#: (drop the images without nucleus, stratify by nucleus-size quartile, 20 % test,
#: ``random_state=42``); its parts are ``lab02-train`` and ``lab02-test``.
COURSE_SPLITS = {"lab02": {"test_fraction": 0.2, "seed": 42, "drop_without_nucleus": True,
                           "by": "nucleus_size"}}


def course_split(dataset: Dataset, name: str = "lab02") -> dict:
    """The course's named split of `dataset`, ``{"<name>-train": [...], "<name>-test": [...]}``.

    Read from the dataset's ``split_<name>.json`` where it has one (the parts appear in
    ``dataset.split``), else derived by :func:`stratified_split` with
    :data:`COURSE_SPLITS` ``[name]`` (on VocEd both give the same ids).

    Raises
    ------
    ValueError
        For a name not in :data:`COURSE_SPLITS`, or a dataset that cannot be split so.

    Examples
    --------
    >>> masks = [np.full((2, 2), 2 if i % 3 else 1, np.uint8) for i in range(10)]
    >>> masks = [np.pad(m, ((0, 0), (0, i))) for i, m in enumerate(masks)]
    >>> ds = Dataset.from_arrays("tiny", [m * 0.3 for m in masks], masks)
    >>> split = course_split(ds)
    >>> sorted(split), len(split["lab02-test"]) + len(split["lab02-train"])
    (['lab02-test', 'lab02-train'], 6)
    """
    if name not in COURSE_SPLITS:
        raise ValueError(f"`name` must be one of {sorted(COURSE_SPLITS)}, got {name!r}")
    parts = (f"{name}-train", f"{name}-test")
    table = dataset.split or {}
    if all(p in table for p in parts):
        return {p: list(table[p]) for p in parts}
    made = stratified_split(dataset, **COURSE_SPLITS[name])
    return {parts[0]: made["train"], parts[1]: made["test"]}


def split_ids(dataset: Dataset, split: str, *, note=None) -> list[str]:
    """The ids of `split` (``train``, ``test``, any part of ``split.json``, a course
    split such as ``lab02-test`` (see :func:`course_split`), or ``all``).

    A dataset without ``split.json`` has only ``all``; asked for ``test`` it gives all
    its ids and says so through ``note(text)`` (the command line prints it).

    Raises
    ------
    ValueError
        For a split the dataset does not have.

    Examples
    --------
    >>> ds = Dataset.from_arrays("tiny", [np.zeros((2, 2))] * 3,
    ...                          split={"train": ["000", "001"], "test": ["002"]})
    >>> split_ids(ds, "test"), len(split_ids(ds, "all"))
    (['002'], 3)
    """
    if split == "all":
        return list(dataset.ids)
    table = dataset.split
    course, _, part = split.rpartition("-")
    if course in COURSE_SPLITS and part in ("train", "test") and split not in (table or {}):
        return course_split(dataset, course)[split]
    if not table:
        if split == "test":
            if note is not None:
                note(f"note: {dataset.name} has no split.json; evaluating all "
                     f"{len(dataset.ids)} images")
            return list(dataset.ids)
        raise ValueError(f"{dataset.name} has no split.json, so no {split!r} split; "
                         "use --split all")
    if split not in table:
        named = [f"{c}-{p}" for c in COURSE_SPLITS for p in ("train", "test")]
        raise ValueError(f"--split must be one of {sorted(set(table) | set(named)) + ['all']}, "
                         f"got {split!r}")
    return list(table[split])


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
                     drop_without_nucleus: bool = False, by: str = "nucleus_size") -> dict:
    """Train/test split stratified by quartile of the nucleus size (the course's Lab 02
    way) or of the N/C ratio.

    ``by="nucleus_size"``, as the course's Lab 02: the nucleus pixels of each mask are
    binned by ``np.digitize(size, np.percentile(size, [25, 50, 75]))``.
    ``by="nc"``: the N/C ratio is cut into quartiles (``pandas.qcut``, ties merged),
    items without cytoplasm (N/C undefined) forming their own stratum. Then
    scikit-learn's ``train_test_split(test_size=test_fraction, random_state=seed,
    stratify=quartile)`` splits the ids (without stratification when a stratum is
    too small for it).

    Parameters
    ----------
    dataset : Dataset
        Every item must have a mask.
    test_fraction : float
        In (0, 1).
    seed : int
    drop_without_nucleus : bool
        Leave out the items whose mask has no nucleus (the course drops them).
    by : {'nucleus_size', 'nc'}
        What the quartiles are of.

    Returns
    -------
    dict
        ``{"train": [ids], "test": [ids]}``, each in the dataset's order.

    Raises
    ------
    ValueError
        For a bad `test_fraction`, an item without mask, or too few items.
    """
    from sklearn.model_selection import train_test_split

    if not 0 < test_fraction < 1:
        raise ValueError(f"`test_fraction` must be in (0, 1), got {test_fraction}")
    if by not in STRATIFY_BY:
        raise ValueError(f"`by` must be one of {list(STRATIFY_BY)}, got {by!r}")
    ids = list(dataset.ids)
    nucleus = np.zeros(len(ids), bool)
    nucleus_px = np.zeros(len(ids), np.int64)
    nc = np.full(len(ids), np.nan)
    for i, id in enumerate(ids):
        mask = dataset.mask(id)
        if mask is None:
            raise ValueError(f"`dataset` {dataset.name!r}: item {id!r} has no mask to "
                             "stratify by")
        counts = np.bincount(mask.ravel(), minlength=3)
        nucleus[i] = counts[2] > 0
        nucleus_px[i] = counts[2]
        if counts[1]:
            nc[i] = counts[2] / counts[1]
    if drop_without_nucleus:
        keep = np.flatnonzero(nucleus)
        ids, nc, nucleus_px = [ids[i] for i in keep], nc[keep], nucleus_px[keep]
    if len(ids) < 2:
        raise ValueError(f"`dataset` {dataset.name!r} has {len(ids)} usable item(s); "
                         "a split needs at least 2")
    if by == "nucleus_size":
        strata = np.digitize(nucleus_px, np.percentile(nucleus_px, [25, 50, 75]))
    else:
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
