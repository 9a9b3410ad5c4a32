"""Per-object class labels of a dataset: ``classes/<stem>.csv`` beside ``images/``.

Layout (one file per image that has class labels; images without one are skipped
when an object classifier is trained)::

    DATASET/
      images/<stem>.png
      masks/<stem>.png         0 background, 1 cytoplasm, 2 nucleus
      labels/<stem>.tif        optional nucleus instances
      classes/<stem>.csv       label,class

``label`` is a nucleus id: the value of the nucleus in ``labels/<stem>.tif`` when
that file exists, else the number of the connected nucleus region of the mask
(:func:`cellseg_core.instances.label_objects` of ``mask == 2``: regions numbered 1..n
in row-major order of their first pixel, as ``scipy.ndimage.label`` numbers them).
``class`` is any text (e.g. ``tumour``, ``lymphocyte``); nuclei not listed are not
used for training.
"""
from __future__ import annotations

import io as _io
from pathlib import Path

import pandas as pd

__all__ = ["CLASSES_FOLDER", "read_classes", "classes_file", "classes_reader"]

#: Folder of a dataset (beside ``images/``) that holds ``<stem>.csv`` class files.
CLASSES_FOLDER = "classes"
#: At most this many rows per class file (a label image has far fewer nuclei).
_MAX_ROWS = 1_000_000


def read_classes(source) -> pd.DataFrame:
    """The ``label,class`` table of one class file (a path or CSV text).

    Parameters
    ----------
    source : path or str
        A ``.csv`` file, or its text.

    Returns
    -------
    pandas.DataFrame with columns ``label`` (int64, > 0, unique) and ``class`` (str).

    Raises
    ------
    ValueError
        When a column is missing, a label is not a positive integer or is repeated,
        or a class is empty.

    Examples
    --------
    >>> read_classes("label,class\\n1,tumour\\n3,lymphocyte\\n").to_dict("list")
    {'label': [1, 3], 'class': ['tumour', 'lymphocyte']}
    """
    where = ""
    if isinstance(source, Path) or (isinstance(source, str) and "\n" not in source
                                    and source.lower().endswith(".csv")):
        where = f"{source}: "
        source = Path(source).read_text(encoding="utf-8")
    try:
        table = pd.read_csv(_io.StringIO(source), dtype={"class": str}, nrows=_MAX_ROWS + 1)
    except (ValueError, pd.errors.ParserError) as err:
        raise ValueError(f"{where}not a label,class table ({err})") from None
    table.columns = [str(c).strip().lower() for c in table.columns]
    missing = [c for c in ("label", "class") if c not in table]
    if missing:
        raise ValueError(f"{where}class files need the columns label,class; missing "
                         f"{missing} (found {list(table.columns)})")
    if len(table) > _MAX_ROWS:
        raise ValueError(f"{where}more than {_MAX_ROWS:,} rows")
    labels = pd.to_numeric(table["label"], errors="coerce")
    bad = table.index[labels.isna() | (labels <= 0) | (labels % 1 != 0)]
    if len(bad):
        raise ValueError(f"{where}`label` must hold positive integers (nucleus ids), got "
                         f"{table['label'].iloc[bad[0]]!r} on row {bad[0] + 2}")
    names = table["class"].fillna("").astype(str).str.strip()
    if (names == "").any():
        raise ValueError(f"{where}`class` is empty on row {int((names == '').idxmax()) + 2}")
    out = pd.DataFrame({"label": labels.astype("int64"), "class": names})
    repeated = out["label"][out["label"].duplicated()]
    if len(repeated):
        raise ValueError(f"{where}label {int(repeated.iloc[0])} is listed twice")
    return out


def classes_file(dataset, id) -> Path | None:
    """The class file of item `id` of a folder dataset, or None when it has none."""
    root = Path(getattr(dataset, "source", "") or "")
    if not str(root) or not root.is_dir():
        return None
    path = root / CLASSES_FOLDER / f"{id}.csv"
    return path if path.is_file() else None


def classes_reader(dataset):
    """``classes_of(id)``: the ``label,class`` table of item `id` of `dataset`, or None
    when it has no class file (what :func:`~cellseg_core.learn.objects.train_object_classifier`
    takes)."""
    def classes_of(id):
        path = classes_file(dataset, id)
        return None if path is None else read_classes(path)
    return classes_of
