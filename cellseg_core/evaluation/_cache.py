"""What evaluations keep between calls: each image's mask, preprocessed channel and
per-class sorted values, in a bounded least-recently-used cache.

The channel is keyed on :func:`~cellseg_core.pipeline.preprocess_key` (channel and
blur), so params that differ only in thresholds or clean-up share it.
"""
from __future__ import annotations

from collections import OrderedDict

import numpy as np

from ..data import Dataset, resolve_id
from ..pipeline import preprocess, preprocess_key

__all__ = ["ChannelCache", "default_cache"]


def _nbytes(value) -> int:
    if isinstance(value, np.ndarray):
        return value.nbytes
    if isinstance(value, (tuple, list)):
        seen, total = set(), 0
        for item in value:
            if isinstance(item, np.ndarray) and id(item) in seen:
                continue
            seen.add(id(item))
            total += _nbytes(item)
        return total
    return 64


class ChannelCache:
    """A least-recently-used mapping bounded by total array bytes.

    Used by :func:`evaluate` to keep each image's preprocessed channel, its mask and
    its per-class sorted values between calls. Any ``dict`` works in its place
    (unbounded); this one forgets the oldest entries beyond `max_bytes`.

    Examples
    --------
    >>> c = ChannelCache(max_bytes=100)
    >>> c["a"] = np.zeros(10)          # 80 bytes
    >>> c["b"] = np.zeros(10)          # evicts "a"
    >>> list(c)
    ['b']
    """

    def __init__(self, max_bytes: int = 512 * 2**20):
        if max_bytes <= 0:
            raise ValueError(f"`max_bytes` must be > 0, got {max_bytes}")
        self.max_bytes = int(max_bytes)
        self.nbytes = 0
        self._data: OrderedDict = OrderedDict()

    def __contains__(self, key) -> bool:
        return key in self._data

    def __getitem__(self, key):
        value, _ = self._data[key]
        self._data.move_to_end(key)
        return value

    def __setitem__(self, key, value):
        if key in self._data:
            self.nbytes -= self._data.pop(key)[1]
        size = _nbytes(value)
        self._data[key] = (value, size)
        self.nbytes += size
        while self.nbytes > self.max_bytes and len(self._data) > 1:
            self.nbytes -= self._data.popitem(last=False)[1][1]

    def __len__(self) -> int:
        return len(self._data)

    def __iter__(self):
        return iter(self._data)

    def clear(self):
        self._data.clear()
        self.nbytes = 0


_DEFAULT_CACHE = ChannelCache()  # the one module-level cache: bounded, 512 MiB


def default_cache() -> ChannelCache:
    """The module-level cache :func:`evaluate` uses when given none (512 MiB)."""
    return _DEFAULT_CACHE


def _cached(cache, key, make):
    try:
        return cache[key]
    except KeyError:
        value = make()
        cache[key] = value
        return value


def _mask(dataset, id, cache):
    def make():
        mask = dataset.mask(id)
        if mask is None:
            raise ValueError(f"`ids`: item {id!r} of dataset {dataset.name!r} has no mask")
        return mask
    return _cached(cache, ("mask", dataset.key, id), make)


def _truth3(dataset, id, cache):
    """3 × mask as uint8: ``truth3 + labels`` indexes the 3 × 3 confusion matrix."""
    return _cached(cache, ("truth3", dataset.key, id),
                   lambda: _mask(dataset, id, cache) * np.uint8(3))

def _channel(dataset, id, params, cache):
    return _cached(cache, ("channel", dataset.key, id, preprocess_key(params)),
                   lambda: preprocess(dataset.image(id), params))


def _sorted_by_class(dataset, id, params, cache):
    """The blurred channel's values of each true class (0, 1, 2), each sorted."""
    def make():
        blurred = _channel(dataset, id, params, cache)[1]
        mask = _mask(dataset, id, cache)
        if mask.shape != blurred.shape:
            raise ValueError(f"item {id!r}: mask shape {mask.shape} does not match the "
                             f"image shape {blurred.shape}")
        values, truth = blurred.ravel(), mask.ravel()
        return tuple(np.sort(values[truth == c]) for c in range(3))
    return _cached(cache, ("sorted", dataset.key, id, preprocess_key(params)), make)


def _ids(dataset: Dataset, ids) -> list[str]:
    ids = dataset.ids if ids is None else list(ids)
    if not ids:
        raise ValueError("`ids` is empty: nothing to evaluate")
    return [resolve_id(dataset, i) for i in ids]


