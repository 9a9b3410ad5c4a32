"""Fitting a model on a dataset's items."""
from __future__ import annotations

from .features import FeatureSettings
from .pixel import PixelClassifier

__all__ = ["train_on_dataset"]


def train_on_dataset(dataset, ids=None, settings: FeatureSettings | None = None, *,
                     model=None, rng=0, progress=None, **kwargs):
    """Fit a model on the items `ids` of a :class:`~cellseg_core.data.Dataset`.

    Parameters
    ----------
    dataset : Dataset
        Anything with ``.image(id)`` and ``.mask(id)`` (and ``.split`` when `ids` is None).
    ids : list of str, optional
        Default: the dataset's ``split['train']``.
    settings : FeatureSettings, optional
    model : PixelClassifier or KMeansBaseline, optional
        An unfitted model; default ``PixelClassifier(settings, **kwargs)``.
    rng, progress
        Passed to ``fit``.

    Returns
    -------
    The fitted model.
    """
    if ids is None:
        split = getattr(dataset, "split", None)
        if not split or not split.get("train"):
            raise ValueError("`ids` not given and the dataset has no training split")
        ids = split["train"]
    ids = list(ids)
    masks = [dataset.mask(i) for i in ids]
    missing = [i for i, m in zip(ids, masks) if m is None]
    if missing:
        raise ValueError(f"`ids`: no ground-truth mask for {missing[:5]}")
    images = [dataset.image(i) for i in ids]
    if model is None:
        model = PixelClassifier(settings, **kwargs)
    elif settings is not None or kwargs:
        raise ValueError("give either `model` or `settings`/keyword arguments, not both")
    return model.fit(images, masks, rng=rng, progress=progress)
