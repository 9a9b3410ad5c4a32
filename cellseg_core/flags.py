"""Per-cell flags on the nucleus/cell ratio, with cut-offs a user can change.

Measurements for review, not a diagnosis. The defaults are the nucleus/cell area
ratios The Paris System for urine cytology uses: 0.5 (atypia) and 0.7 (high grade).
A cell is flagged when its ``nucleus_cell_ratio`` is at or above a cut-off, so
``flag_high_grade`` implies ``flag_atypia``. An image where no cytoplasm was
segmented at all (fluorescence, or nuclei only) gets no flags: every ratio would be
1.0 by convention, which says nothing about the cells.

The cut-offs are their own small serialisable object (:class:`RatioFlags`), apart
from the segmentation :class:`~cellseg_core.params.Params`: changing them changes no
segmentation, so it must not invalidate a cached one.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

__all__ = ["RatioFlags", "FLAG_COLUMNS", "flag_cells", "flag_summary"]

#: Columns :func:`flag_cells` adds: booleans, one per cut-off.
FLAG_COLUMNS = ["flag_atypia", "flag_high_grade"]

_SCHEMA = 1


@dataclass(frozen=True)
class RatioFlags:
    """Cut-offs on the per-cell nucleus/cell ratio (0 < atypia <= high_grade <= 1).

    Examples
    --------
    >>> RatioFlags()
    RatioFlags(atypia=0.5, high_grade=0.7)
    >>> RatioFlags.from_json(RatioFlags(0.4, 0.6).to_json())
    RatioFlags(atypia=0.4, high_grade=0.6)
    >>> RatioFlags.parse("0.55,0.75")
    RatioFlags(atypia=0.55, high_grade=0.75)
    """

    atypia: float = 0.5
    high_grade: float = 0.7

    def __post_init__(self):
        for name in ("atypia", "high_grade"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise TypeError(f"`{name}` must be a number, got {type(value).__name__}")
            if not (math.isfinite(value) and 0 < value <= 1):
                raise ValueError(f"`{name}` must be in (0, 1], got {value!r}")
            object.__setattr__(self, name, float(value))
        if self.atypia > self.high_grade:
            raise ValueError(f"`atypia` ({self.atypia}) must not exceed `high_grade` "
                             f"({self.high_grade})")

    def to_dict(self) -> dict:
        return {"schema": _SCHEMA, **asdict(self)}

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_json(cls, text) -> "RatioFlags":
        """From :meth:`to_json`'s text or a dict (``schema`` optional; unknown keys refused)."""
        data = json.loads(text) if isinstance(text, (str, bytes)) else dict(text)
        if not isinstance(data, dict):
            raise ValueError(f"ratio flags must be a JSON object, got {type(data).__name__}")
        data.pop("schema", None)
        unknown = sorted(set(data) - {"atypia", "high_grade"})
        if unknown:
            raise ValueError(f"unknown ratio flag keys {unknown}; expected atypia, high_grade")
        return cls(**data)

    @classmethod
    def parse(cls, text: str) -> "RatioFlags":
        """From ``"ATYPIA,HIGH_GRADE"``, e.g. ``"0.5,0.7"`` (the command line's form)."""
        parts = [p.strip() for p in str(text).split(",")]
        if len(parts) != 2:
            raise ValueError(f"expected two cut-offs 'ATYPIA,HIGH_GRADE' such as 0.5,0.7, "
                             f"got {text!r}")
        try:
            values = [float(p) for p in parts]
        except ValueError:
            raise ValueError(f"cut-offs must be numbers, got {text!r}") from None
        return cls(*values)


def _assessable(table: pd.DataFrame) -> bool:
    """Whether any cytoplasm was segmented (else the ratios say nothing)."""
    return bool(len(table)) and float(np.nansum(table["cytoplasm_area"].to_numpy(float))) > 0


def flag_cells(table: pd.DataFrame, flags: RatioFlags | None = None) -> pd.DataFrame:
    """A copy of a per-cell table with :data:`FLAG_COLUMNS` added.

    Parameters
    ----------
    table : pandas.DataFrame
        With ``nucleus_cell_ratio`` and ``cytoplasm_area`` (an object table).
    flags : RatioFlags, optional
        The cut-offs (default 0.5 and 0.7).

    Examples
    --------
    >>> import pandas as pd
    >>> t = pd.DataFrame({"nucleus_cell_ratio": [0.2, 0.5, 0.69, 1.0],
    ...                   "cytoplasm_area": [8, 5, 3, 0]})
    >>> flag_cells(t)[FLAG_COLUMNS].values.tolist()
    [[False, False], [True, False], [True, False], [True, True]]
    """
    flags = RatioFlags() if flags is None else flags
    out = table.copy()
    ratio = table["nucleus_cell_ratio"].to_numpy(float)
    ok = _assessable(table)
    with np.errstate(invalid="ignore"):
        out["flag_atypia"] = (ratio >= flags.atypia) & ok
        out["flag_high_grade"] = (ratio >= flags.high_grade) & ok
    return out


def flag_summary(table: pd.DataFrame, flags: RatioFlags | None = None) -> dict:
    """How many cells are at or beyond each cut-off, and their share of the cells.

    Returns
    -------
    dict with ``n_cells`` (cells with a ratio), ``n_atypia``, ``n_high_grade``,
    ``share_atypia``, ``share_high_grade`` (NaN without cells) and ``assessable``
    (False when no cytoplasm was segmented: then nothing is flagged).

    Examples
    --------
    >>> import pandas as pd
    >>> t = pd.DataFrame({"nucleus_cell_ratio": [0.2, 0.5, 0.69, 1.0],
    ...                   "cytoplasm_area": [8, 5, 3, 0]})
    >>> s = flag_summary(t)
    >>> s["n_cells"], s["n_atypia"], s["n_high_grade"], s["share_atypia"]
    (4, 3, 1, 0.75)
    """
    flags = RatioFlags() if flags is None else flags
    flagged = flag_cells(table, flags)
    n = int(np.isfinite(table["nucleus_cell_ratio"].to_numpy(float)).sum())
    n_atypia = int(flagged["flag_atypia"].sum())
    n_high = int(flagged["flag_high_grade"].sum())
    return {"n_cells": n, "n_atypia": n_atypia, "n_high_grade": n_high,
            "share_atypia": n_atypia / n if n else math.nan,
            "share_high_grade": n_high / n if n else math.nan,
            "assessable": _assessable(table), "atypia": flags.atypia,
            "high_grade": flags.high_grade}
