"""cellseg_core: segmentation of microscopy images of cells, as pure functions.

The pipeline ``image → channel → blur → threshold → clean-up → instances`` is
:func:`segment`; its settings are one :class:`Params` object.
"""
from ._version import __version__
from .io import read_image, read_mask
from .metrics import dice, mean_dice, nc_ratio, nucleus_cell_ratio, score_labels
from .params import Params
from .pipeline import Segmentation, segment

__all__ = ["Params", "Segmentation", "segment", "read_image", "read_mask", "dice",
           "mean_dice", "nc_ratio", "nucleus_cell_ratio", "score_labels", "__version__"]
