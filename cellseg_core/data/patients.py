"""Patients named in item ids, and train / test splits that keep each patient's images
on one side (the ECSE 415 study split its TCGA data by patient)."""
from __future__ import annotations

import re

import numpy as np

__all__ = ["patient_of", "patients_of", "patient_split"]

#: A TCGA barcode: project, tissue source site, participant (``TCGA-A1-A0SP``), and the
#: slide suffix the study's file names carry (``-DX1``).
_TCGA = re.compile(r"(TCGA-[A-Za-z0-9]{2}-[A-Za-z0-9]{4})(-[A-Za-z0-9]+)?")


def patient_of(name: str) -> str | None:
    """The patient a file name or id names: its TCGA participant barcode, or None.

    The study calls ``TCGA-A1-A0SP-DX1`` the patient's code; the participant is the
    first three fields (``DX1`` is the slide), so two slides of one patient are one
    patient here.

    Examples
    --------
    >>> patient_of("TCGA-A1-A0SP-DX1_id-5ea4_left-7053_top-53967")
    'TCGA-A1-A0SP'
    >>> patient_of("007") is None
    True
    """
    match = _TCGA.search(str(name))
    return match.group(1).upper() if match else None


def patients_of(ids) -> dict | None:
    """id -> patient when every id names one (:func:`patient_of`), else None."""
    out = {id: patient_of(id) for id in ids}
    return out if out and all(out.values()) else None


def patient_split(ids, patients, test_fraction: float = 0.2, seed: int = 42) -> dict:
    """Split `ids` so that no patient has images on both sides.

    The patients are shuffled (``numpy.random.default_rng(seed)``) and taken into the
    test part until it holds at least ``test_fraction`` of the images; at least one
    patient stays on each side.

    Parameters
    ----------
    ids : sequence of str
    patients : mapping or sequence
        The patient of each id (a dict id -> patient, or one per id in order).
    test_fraction : float
        In (0, 1).
    seed : int

    Returns
    -------
    dict
        ``{"train": [ids], "test": [ids]}`` in the order of `ids`.

    Raises
    ------
    ValueError
        For fewer than two patients, or a bad `test_fraction`.

    Examples
    --------
    >>> ids = ["a1", "a2", "b1", "c1", "c2"]
    >>> split = patient_split(ids, ["A", "A", "B", "C", "C"], 0.2, seed=0)
    >>> sorted(split["train"] + split["test"]) == sorted(ids)
    True
    """
    ids = list(ids)
    if not 0 < test_fraction < 1:
        raise ValueError(f"`test_fraction` must be in (0, 1), got {test_fraction!r}")
    owner = ([patients[i] for i in ids] if isinstance(patients, dict) else list(patients))
    if len(owner) != len(ids):
        raise ValueError(f"`patients` has {len(owner)} entries, `ids` has {len(ids)}")
    unique = list(dict.fromkeys(owner))
    if len(unique) < 2:
        raise ValueError(f"a patient-wise split needs at least 2 patients, got {len(unique)}")
    order = np.random.default_rng(seed).permutation(len(unique))
    counts = {p: 0 for p in unique}
    for p in owner:
        counts[p] += 1
    test, n_test = set(), 0
    for i in order[:-1]:  # keep at least one patient for training
        if n_test >= test_fraction * len(ids):
            break
        test.add(unique[i])
        n_test += counts[unique[i]]
    return {"train": [i for i, p in zip(ids, owner) if p not in test],
            "test": [i for i, p in zip(ids, owner) if p in test]}
