"""Reading any model file: :func:`load_model` checks the container (:mod:`.modelfile`) and
hands the payload to the reader of its kind."""
from __future__ import annotations

from functools import partial

from .ensemble import _load_ensemble
from .modelfile import read_model_file
from .pixel import PixelClassifier
from .unet import _load_unet

__all__ = ["load_model"]


def load_model(source, *, trust_pickle: bool = False):
    """Read a model file (a path or bytes) written by ``save``.

    Parameters
    ----------
    source : path or bytes
    trust_pickle : bool
        Read a file of the old pickled formats (1, 2), which can run code: only for a
        file whose source you trust, and only when the admin allows it
        (:func:`~.modelfile.pickle_models_allowed`). Files of the current format never
        need it.

    Raises
    ------
    ValueError
        When the file is not a cellseg model (a text file, a foreign pickle), is
        truncated or corrupted (checksum), was written by a newer format, or by a
        different scikit-learn version (trees do not survive version changes); when
        it names object types a cellseg model never holds; when it is an old pickled
        file and `trust_pickle` is false or the admin turned trusted pickles off.

    Notes
    -----
    Format 3 files hold no code: the estimator is a ``skops.io`` archive (JSON and
    arrays) from which only an explicit list of types is built (see
    :mod:`.modelfile`). Old pickled files are unpickled, when trusted, with an exact
    (module, name) allow-list; that narrows the risk of a pickle, it does not remove
    it. Convert them: load once with trust, then ``save``.

    Examples
    --------
    >>> load_model(b"not a model")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: model data: not a cellseg model file (no 'CELLSEG-MODEL' header); ...
    """
    header, payload, name = read_model_file(source)
    kind = header.get("kind")
    reader = READERS.get(kind)
    if reader is None:
        raise ValueError(f"{name}: unknown model kind {kind!r}; valid: {sorted(READERS)}")
    return reader(header, payload, name, trust_pickle=trust_pickle)


def _object_classifier(header, payload, name, **_):
    """Object classifiers label cells, they do not segment: read by their own loader."""
    raise ValueError(f"{name}: this is an object classifier (cell classes), not a "
                     "segmentation model; use it with `cellseg segment --object-classifier` "
                     "or Explore's 'Classify cells' (ObjectClassifier.load)")


#: Model kind -> reader ``(header, payload, name, *, trust_pickle)`` of its files. The
#: U-Net's imports PyTorch only when a file is read; an ensemble's members are model
#: files, each read (and checked) by :func:`load_model` as it would be alone.
READERS = {
    "PixelClassifier": PixelClassifier._read,
    "UNetModel": _load_unet,
    "ProbabilityEnsemble": partial(_load_ensemble, load_member=load_model),
    "ObjectClassifier": _object_classifier,
}
