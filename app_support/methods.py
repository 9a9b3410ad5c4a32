"""The methods a page offers, from one list: the presets, the Explore parameters,
uploaded parameter files, the learned models of the session and, on Compare, the
unsupervised baselines. Each is a :class:`cellseg_core.methods.Segmenter` (or an
:class:`~cellseg_core.methods.Untrained` baseline), so pages never branch on its kind.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

from cellseg_core.methods import BASELINES, ModelMethod, ParamsMethod, load_params, preset_methods
from cellseg_core.presets import PRESETS

from . import runs, state

__all__ = ["EXPLORE", "current_method", "learned_methods", "uploaded_params", "catalogue"]

#: The name of the parameters now set on Explore.
EXPLORE = "explore (current)"


def current_method() -> ParamsMethod:
    """The parameters in force (Explore's), with their preset when unchanged from it."""
    params, preset = state.current_params(), state.current_preset()
    return ParamsMethod(params, name="explore",
                        preset=preset if PRESETS.get(preset) == params else None)


def learned_methods() -> dict:
    """``model:<name>`` -> the learned models registered in this session."""
    return {f"model:{name}": ModelMethod(model, name=f"model:{name}")
            for name, model in runs.learned_models().items()}


def uploaded_params(name: str, data: bytes) -> ParamsMethod:
    """A parameters file uploaded as `name` (a params JSON or a run's params.json).

    Raises
    ------
    ValueError
        When it is not a parameters file.
    """
    return ParamsMethod(load_params(data), name=Path(name).stem, file=Path(name).name,
                        sha256=hashlib.sha256(data).hexdigest())


def catalogue(*, uploads: dict | None = None, baselines: bool = False) -> dict:
    """Every method a page may offer: name -> method, presets first.

    Parameters
    ----------
    uploads : dict, optional
        Name -> method of the page's uploaded files.
    baselines : bool
        Add the unsupervised baselines (fitted when they are run).
    """
    out = dict(preset_methods())
    out[EXPLORE] = current_method()
    out.update(uploads or {})
    out.update(learned_methods())
    if baselines:
        out.update(BASELINES)
    return out
