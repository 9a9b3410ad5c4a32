"""Ensembles: the weighted mean of several models' class probabilities, saved as one file
(``cellseg train --method ensemble``, the Train page's "Combine")."""
from __future__ import annotations

import time

import numpy as np

from ..params import CleanupParams, Params
from ..pipeline import Segmentation
from .base import DEFAULT_CLEANUP, _learned_segmentation
from .modelfile import ModelFile, _checked_payload, _container
from .unet import MissingDeepExtra

__all__ = ["ProbabilityEnsemble"]


class ProbabilityEnsemble(ModelFile):
    """Weighted average of the full-scale class probabilities of several models, then
    argmax and the engine's clean-up (e.g. a U-Net and a pixel classifier).

    :meth:`fit` fits every member on the same images; :meth:`save` writes one model
    file (kind ``ProbabilityEnsemble``) that holds each member's own file, so
    :func:`cellseg_core.learn.load_model` checks each member as it would alone: a
    member U-Net without PyTorch is refused with the install hint, a pixel classifier
    from another scikit-learn version with the version message.

    Parameters
    ----------
    models : sequence
        Models with ``predict_proba(image) -> (M, N, 3)`` (fitted, or fitted by
        :meth:`fit`): :class:`~cellseg_core.learn.PixelClassifier`, :class:`UNetModel`.
    weights : sequence of float, optional
        Default: equal weights.
    cleanup : CleanupParams, optional
    """

    kind = "ProbabilityEnsemble"

    def __init__(self, models, weights=None, cleanup: CleanupParams | None = None):
        self.models = list(models)
        if not self.models:
            raise ValueError("`models` is empty")
        w = np.ones(len(self.models)) if weights is None else np.asarray(weights, float)
        if w.shape != (len(self.models),) or np.any(w < 0) or w.sum() <= 0:
            raise ValueError(f"`weights` must be {len(self.models)} non-negative numbers")
        self.weights = w / w.sum()
        self.cleanup = DEFAULT_CLEANUP if cleanup is None else cleanup
        self.fit_seconds_ = None

    def __repr__(self) -> str:
        parts = ", ".join(f"{w:.2f} x {m!r}" for w, m in zip(self.weights, self.models))
        return f"ProbabilityEnsemble({parts})"

    def fit(self, images, masks, *, rng=None, progress=None) -> "ProbabilityEnsemble":
        """Fit every member on `images` / `masks`, one after the other.

        ``progress(fraction, message)`` gets each member's progress, in equal parts.
        """
        start = time.perf_counter()
        images, masks = list(images), list(masks)
        gen = np.random.default_rng(rng)
        n = len(self.models)
        for k, model in enumerate(self.models):
            sub = None
            if progress is not None:
                def sub(fraction, message, k=k, model=model):
                    progress((k + min(fraction, 1.0)) / n,
                             f"{type(model).__name__} ({k + 1}/{n}): {message}")
            model.fit(images, masks, rng=int(gen.integers(2**31 - 1)), progress=sub)
        self.fit_seconds_ = time.perf_counter() - start
        return self

    def predict_proba(self, image):
        """Weighted mean of the members' (M, N, 3) probabilities."""
        return sum(w * m.predict_proba(image) for w, m in zip(self.weights, self.models))

    def segment(self, image) -> Segmentation:
        proba = self.predict_proba(image)
        return _learned_segmentation(proba, proba.argmax(-1).astype(np.uint8), self.cleanup,
                                     self.kind)

    # --- files ---------------------------------------------------------------------------
    def to_bytes(self) -> bytes:
        """One model file: learn's container; the payload is the members' own files."""
        members = []
        for k, model in enumerate(self.models):
            if not hasattr(model, "to_bytes") or isinstance(model, ProbabilityEnsemble):
                raise ValueError(f"`models[{k}]` ({type(model).__name__}) cannot be saved in "
                                 "an ensemble file")
            members.append(model.to_bytes())
        return _container(self.kind, b"".join(members), {
            "members": [{"kind": m.kind, "bytes": len(b)}
                        for m, b in zip(self.models, members)],
            "weights": self.weights.tolist(),
            "cleanup": Params(cleanup=self.cleanup).to_dict()["cleanup"],
            "fit_seconds": self.fit_seconds_})


def _load_ensemble(header: dict, payload: bytes, name: str, *, load_member,
                   trust_pickle: bool = False) -> ProbabilityEnsemble:
    """Build a :class:`ProbabilityEnsemble` from a file's header and payload (called by
    :func:`cellseg_core.learn.load_model`); each member goes through `load_member`
    (``load_model``, with the same `trust_pickle`: an old pickled member needs it as a
    file alone would)."""
    payload = _checked_payload(header, payload, name)
    try:
        members = header["members"]
        sizes = [int(m["bytes"]) for m in members]
        kinds = [m["kind"] for m in members]
        cleanup = Params.from_dict({"cleanup": header["cleanup"]}).cleanup
        weights = header["weights"]
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(f"{name}: corrupted model file (ensemble header: {err})") from None
    if sum(sizes) != len(payload) or not sizes or any(k == ProbabilityEnsemble.kind for k in kinds):
        raise ValueError(f"{name}: corrupted model file (ensemble members do not add up)")
    models, offset = [], 0
    for k, (size, kind) in enumerate(zip(sizes, kinds)):
        part = payload[offset:offset + size]
        offset += size
        try:
            models.append(load_member(part, trust_pickle=trust_pickle))
        except MissingDeepExtra as err:
            raise MissingDeepExtra(f"{name}: member {k + 1} ({kind}): {err}") from None
        except ValueError as err:
            raise ValueError(f"{name}: member {k + 1} ({kind}): {err}") from None
    ensemble = ProbabilityEnsemble(models, weights, cleanup)
    ensemble.fit_seconds_ = header.get("fit_seconds")
    return ensemble
