"""The small U-Net behind the built-in nucleus model (PyTorch; training only).

Kept for old imports: the network now lives in the package
(:func:`cellseg_core.learn.nuclei_training.network_class`).
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cellseg_core.learn.nuclei_training import network_class  # noqa: E402

__all__ = ["NucleusUNet"]

NucleusUNet = network_class()
