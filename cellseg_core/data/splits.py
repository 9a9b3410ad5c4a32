"""Train / test splits of a :class:`~cellseg_core.data.Dataset`: the split a command asks
for, the course's stratified split, a random split."""
from __future__ import annotations

import numpy as np
import pandas as pd

from .datasets import Dataset

__all__ = ["split_ids", "stratified_split", "nc_ratios"]


def split_ids(dataset: Dataset, split: str, *, note=None) -> list[str]:
    """The ids of `split` (``train``, ``test``, any part of ``split.json``, or ``all``).

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
    if not table:
        if split == "test":
            if note is not None:
                note(f"note: {dataset.name} has no split.json; evaluating all "
                     f"{len(dataset.ids)} images")
            return list(dataset.ids)
        raise ValueError(f"{dataset.name} has no split.json, so no {split!r} split; "
                         "use --split all")
    if split not in table:
        raise ValueError(f"--split must be one of {sorted(table) + ['all']}, got {split!r}")
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
