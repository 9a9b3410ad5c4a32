"""The built-in demo datasets, generated in memory by :mod:`cellseg_core.data.synthetic`."""
from __future__ import annotations

import functools

from . import synthetic
from .datasets import Dataset
from .splits import _random_split, stratified_split

__all__ = ["demo_datasets", "DEMO_SPLIT_SEED", "DEMO_NAMES"]

#: Seed of the demo datasets' train/test split.
DEMO_SPLIT_SEED = 42
#: Names of the demo datasets.
DEMO_NAMES = ("demo-cytology", "demo-fluorescence")


def demo_datasets() -> dict[str, Dataset]:
    """The built-in demo datasets, generated in memory from :mod:`cellseg_core.data.synthetic`.

    ``demo-cytology`` (24 RGB cells, masks 0/1/2) and ``demo-fluorescence`` (12 images
    of nuclei with instance labels), each with a deterministic train/test split
    (stratified by N/C quartile for cytology, seed :data:`DEMO_SPLIT_SEED`, a quarter
    for test). The images are generated on first access to an image, a mask or the
    split, once per process.
    """
    return dict(_demo())


@functools.lru_cache(maxsize=1)
def _demo() -> dict[str, Dataset]:
    cyto = _Lazy(lambda: synthetic.cytology_set(n=24, rng=synthetic.SEED))
    fluo = _Lazy(lambda: synthetic.fluorescence_set(n=12, rng=synthetic.SEED))
    ids_c = [f"{i:03d}" for i in range(24)]
    ids_f = [f"{i:03d}" for i in range(12)]
    cytology = Dataset(
        "demo-cytology", ids_c, "cytology", source="demo:cytology",
        image=lambda id: cyto()[int(id)].image, mask=lambda id: cyto()[int(id)].mask,
        mask_ids=ids_c,
        split_factory=lambda ds: stratified_split(ds, 0.25, DEMO_SPLIT_SEED, by="nc"))
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

