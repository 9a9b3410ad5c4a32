"""Scoring methods against ground truth, exact Dice surfaces, Bayesian optimisation.

Three tools over a :class:`~cellseg_core.data.Dataset`:

:func:`evaluate` (``scoring``)
    Mean and per-class Dice, IoU, N/C errors of any params or segmenter (an object
    with ``.segment(image)``) over any ids, with each image's preprocessed channel
    kept in a bounded cache across calls (``_cache``).
:func:`dice_surface` (``surface``)
    For a pipeline that is only the two-threshold rule on one channel, the mean Dice
    of *every* ``(t_nuc, t_bg)`` pair of a grid, exactly, from per-class cumulative
    histograms instead of re-segmenting.
:func:`compare_nuclei` (``nuclei``)
    Nucleus methods against instance ground truth: F1@0.5, DSB AP, precision, recall,
    count error per method, and a gallery of their nuclei.
:func:`optimize` (``search``)
    scikit-optimize's ``gp_minimize`` over any dotted parameters of a :class:`Params`.
"""
from ._cache import ChannelCache, default_cache
from .nuclei import NucleusComparison, compare_nuclei, nucleus_scores
from .scoring import (Evaluation, evaluate, instance_scores, is_two_threshold,
                      scores_from_confusion)
from .search import DEFAULT_SPACE, LAB03V2_SPACE, OptimizeResult, optimize
from .surface import DiceSurface, dice_surface

__all__ = ["ChannelCache", "DiceSurface", "Evaluation", "OptimizeResult", "DEFAULT_SPACE",
           "LAB03V2_SPACE", "instance_scores", "is_two_threshold", "dice_surface", "evaluate", "optimize",
           "scores_from_confusion", "default_cache", "NucleusComparison", "compare_nuclei",
           "nucleus_scores"]
