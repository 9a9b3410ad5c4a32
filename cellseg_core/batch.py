"""Batch processing: one method (params or a learned model) over many images.

The command line (``cellseg segment``) and the app's Batch page both call
:func:`run_batch`; one image's work is :func:`process_image`. An output folder holds::

    labels/<stem>.tif     uint8 classes (0 background, 1 cytoplasm, 2 nucleus)
    nuclei/<stem>.tif     uint16 (uint32 above 65535 objects) nucleus instances
    images.csv            one row per image, sorted by image name
    objects.csv           one row per nucleus / cell, sorted by image then label
    params.json           exactly what ran, with the cellseg version (and, under
                          ``measurements``, the pixel size given and the ratio cut-offs)
    .parts/<stem>.json    per-image rows, the marker that an image is done (``--resume``)

Every file is written through a temporary file and a rename, so an interrupted run
never leaves a half-written TIFF or CSV. Work runs in this process (``jobs=1``), in a
local process pool (``jobs > 1``) or on a Dask distributed cluster; the outputs are the
same bytes whichever runs them, because the workers only compute and this process
writes every file.
"""
from __future__ import annotations

import dataclasses
import hashlib
import io as _io
import json
import multiprocessing as mp
import sys
import time
import zipfile
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .flags import FLAG_COLUMNS, RatioFlags, flag_cells
from .io import (IMAGE_SUFFIXES, read_image, read_mask, read_run_table, tiff_bytes,
                 write_bytes_atomic)
from .learn.objects import CLASS_COLUMNS, ObjectClassifier
from .nuclear import CELL_COLUMNS
from .methods import ModelMethod, ParamsMethod, Segmenter, as_segmenter
from .measure import max_objects as default_max_objects
from .metrics import score_labels
from .params import Params
from .units import (check_pixel_size, dataset_pixel_size, read_pixel_size, resolve_pixel_size,
                    with_units)

__all__ = [
    "IMAGE_COLUMNS",
    "OBJECTS_COLUMNS",
    "CELL_CSV_COLUMNS",
    "cell_rows",
    "BatchItem",
    "BatchResult",
    "find_inputs",
    "process_image",
    "run_batch",
    "zip_outputs",
]

_SCORE_COLUMNS = ["mean_dice", "dice_cytoplasm", "dice_nucleus", "iou_cytoplasm",
                  "iou_nucleus", "mean_iou", "pixel_accuracy", "nc_true", "nc_error",
                  "nucleus_cell_ratio_true", "nucleus_cell_ratio_error"]

#: Columns of ``images.csv``, in order; the score columns are empty without a mask;
#: ``warnings`` holds the segmentation's messages (e.g. the object ceiling), "; "-joined.
#: ``pixel_size_um`` (µm per pixel) and where it came from (``pixel_size_source``:
#: user, dataset.json, image file, unknown); the ``_um2`` areas are empty without it.
#: ``nc_ratio`` = nucleus / cytoplasm, ``nucleus_cell_ratio`` = nucleus / (nucleus +
#: cytoplasm); ``n_flag_*``: cells at or above each cut-off (:mod:`cellseg_core.flags`).
IMAGE_COLUMNS = ["image", "file", "status", "height", "width", "pixel_size_um",
                 "pixel_size_source", "background_area", "background_area_um2",
                 "cytoplasm_area", "cytoplasm_area_um2", "nucleus_area", "nucleus_area_um2",
                 "nc_ratio", "nucleus_cell_ratio", "n_nuclei", "n_cells", "n_flag_atypia",
                 "n_flag_high_grade", "t_nuc", "t_bg", "t_object", "has_mask",
                 *_SCORE_COLUMNS, "warnings"]

#: Columns of the per-cell table in ``objects.csv`` (after ``image``): the cell table
#: (:data:`cellseg_core.nuclear.CELL_COLUMNS`) with ``_um2`` / ``_um`` twins of its
#: areas and lengths (:func:`cellseg_core.units.with_units`), then the flags.
CELL_CSV_COLUMNS = [*with_units(pd.DataFrame(columns=CELL_COLUMNS), None).columns,
                    *FLAG_COLUMNS]

#: Columns of ``objects.csv``, in order.
OBJECTS_COLUMNS = ["image", *CELL_CSV_COLUMNS]

_PARTS = ".parts"
_INT_COLUMNS = ["height", "width", "background_area", "cytoplasm_area", "nucleus_area",
                "n_nuclei", "n_cells", "label", "cell_area", "n_flag_atypia",
                "n_flag_high_grade"]


# --- inputs --------------------------------------------------------------------------
@dataclass(frozen=True)
class BatchItem:
    """One image to process: its output stem, image source and optional mask source.

    `image` and `mask` are paths, or bytes (uploads, or data sent to a remote worker).
    """

    stem: str
    image: object
    mask: object = None
    name: str = ""
    pixel_size: float | None = None  # µm/px from the dataset's dataset.json

    @property
    def label(self) -> str:
        return self.name or self.stem

    @property
    def file(self) -> str:
        """The image's file name (without folders), for the ``file`` column."""
        if self.name:
            return Path(self.name).name
        return Path(self.image).name if isinstance(self.image, (str, Path)) else ""


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir()
                  if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."))


def _mask_for(image: Path) -> Path | None:
    """The mask with the same stem in a sibling ``masks/`` folder, if any."""
    masks = image.parent.parent / "masks"
    if image.parent.name != "images" or not masks.is_dir():
        return None
    for suffix in (image.suffix, *IMAGE_SUFFIXES):
        candidate = masks / (image.stem + suffix)
        if candidate.is_file():
            return candidate
    return None


def find_inputs(inputs, *, masks: bool = True) -> list[BatchItem]:
    """Expand image files and folders into a sorted list of :class:`BatchItem`.

    Parameters
    ----------
    inputs : iterable of str, Path or (name, bytes)
        Image files; folders (their images, or those of their ``images/`` subfolder
        when it exists, as in a dataset folder); or ``(file name, bytes)`` pairs.
    masks : bool
        Look for a mask with the same stem in a sibling ``masks/`` folder.

    Returns
    -------
    list of BatchItem, sorted by stem; an image of a dataset folder carries the
    ``pixel_size_um`` of its ``dataset.json`` (:func:`cellseg_core.units.dataset_pixel_size`).

    Raises
    ------
    ValueError
        When an input does not exist, a folder holds no image, nothing is given, two
        inputs share a stem (their outputs would overwrite each other), or a
        ``dataset.json`` is unreadable.
    """
    items = []
    for source in inputs:
        if isinstance(source, tuple):
            name, data = source
            items.append(BatchItem(Path(name).stem, bytes(data), None, Path(name).name))
            continue
        path = Path(source)
        if path.is_dir():
            folder = path / "images" if (path / "images").is_dir() else path
            found = _images_in(folder)
            if not found:
                raise ValueError(f"{path}: no image files ({', '.join(IMAGE_SUFFIXES)}) in this folder")
        elif path.is_file():
            found = [path]
        else:
            raise ValueError(f"{path}: no such file or folder")
        root = found[0].parent.parent if found[0].parent.name == "images" else found[0].parent
        size = dataset_pixel_size(root)
        for image in found:
            items.append(BatchItem(image.stem, image, _mask_for(image) if masks else None,
                                   str(image), size))
    if not items:
        raise ValueError("no input images given")
    items.sort(key=lambda item: item.stem)
    stems = [item.stem for item in items]
    dupes = sorted({s for s, n in zip(stems, stems[1:]) if s == n})
    if dupes:
        raise ValueError(f"several inputs share the name(s) {dupes[:5]}: their outputs would "
                         "overwrite each other; process them into separate --out folders")
    return items


# --- method ----------------------------------------------------------------------------
def _segmenter(method, preset: str | None, model_path) -> Segmenter:
    """`method` as a Segmenter; `preset` / `model_path` say what plain Params or a model
    object came from (recorded in ``params.json``)."""
    method = as_segmenter(Params() if method is None else method)
    if preset is not None and method.params is not None:
        return ParamsMethod(method.params, name=preset, preset=preset)
    if model_path is not None and method.params is None:
        path = Path(model_path)
        sha = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None
        return ModelMethod(getattr(method, "model", method), file=str(model_path), sha256=sha)
    return method


# --- one image -------------------------------------------------------------------------
def _plain(value):
    """numpy scalars to Python numbers, NaN kept (JSON writes it as NaN)."""
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        return float(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


def cell_rows(objects: pd.DataFrame, pixel_size: float | None = None,
              flags: RatioFlags | None = None) -> pd.DataFrame:
    """A segmentation's per-cell table as ``objects.csv`` holds it (:data:`CELL_CSV_COLUMNS`).

    Areas and lengths get their µm² / µm twins (NaN without `pixel_size`), and every
    cell its ratio flags (:func:`cellseg_core.flags.flag_cells`).

    Examples
    --------
    >>> import numpy as np
    >>> from cellseg_core.nuclear import cell_table
    >>> t = cell_table(np.array([[1, 1, 0]]), np.array([[1, 1, 1]]),
    ...                np.array([[2, 2, 1]], np.uint8), np.array([[0.2, 0.2, 0.8]]))
    >>> rows = cell_rows(t, 0.5)
    >>> rows[["cell_area", "cell_area_um2", "nucleus_cell_ratio", "flag_atypia",
    ...       "flag_high_grade"]].values.tolist()
    [[3.0, 0.75, 0.6666666666666666, True, False]]
    """
    return flag_cells(with_units(objects, pixel_size), flags)[CELL_CSV_COLUMNS]


def process_image(image, method=None, *, mask=None, name: str | None = None,
                  max_objects: int | None = None, pixel_size: float | None = None,
                  dataset_pixel_size: float | None = None, flags: RatioFlags | None = None,
                  object_classifier=None):
    """Segment one image and measure it: everything a batch writes for it.

    Parameters
    ----------
    image : path, bytes or (M, N[, 3]) ndarray
    method : Segmenter, Params or a fitted model, optional
        Defaults to ``Params()``.
    mask : path, bytes or (M, N) ndarray, optional
        Class mask (0/1/2); when given the Dice / IoU / N/C error columns are filled.
    name : str, optional
        The image's name in the tables (default: the file stem, or ``"image"``).
    max_objects : int, optional
        Object ceiling (default ``CELLSEG_MAX_OBJECTS`` or 20,000). Above it the
        image still gets its labels, instances and row (``n_cells`` empty, the reason
        in ``warnings``), but no object rows.
    pixel_size : float, optional
        The user's µm per pixel: wins over `dataset_pixel_size` (a dataset.json's),
        which wins over what the image file records (:mod:`cellseg_core.units`).
    flags : RatioFlags, optional
        Cut-offs of the per-cell ratio flags (default 0.5 and 0.7).
    object_classifier : ObjectClassifier, optional
        Adds :data:`~cellseg_core.learn.objects.CLASS_COLUMNS` (``class``,
        ``class_probability``) to every object row.

    Returns
    -------
    labels : (M, N) ndarray of uint8
    nuclei : (M, N) ndarray of int32
    image_row : dict with :data:`IMAGE_COLUMNS`
    object_rows : list of dict with :data:`OBJECTS_COLUMNS`

    Raises
    ------
    ValueError
        When the image or mask cannot be read or do not fit together.
    """
    if name is None:
        name = Path(image).stem if isinstance(image, (str, Path)) else "image"
    file = Path(image).name if isinstance(image, (str, Path)) else ""
    array = image if isinstance(image, np.ndarray) else read_image(image)
    seg = as_segmenter(Params() if method is None else method).segment(array)
    if max_objects is not None:
        seg = dataclasses.replace(seg, max_objects=max_objects)
    labels, nuclei = seg.labels, seg.nuclei
    truth = None
    if mask is not None:
        try:
            truth = mask if isinstance(mask, np.ndarray) else read_mask(mask, shape=labels.shape)
        except ValueError as err:  # say it is the mask: it often has the image's file name
            where = (f"{Path(mask).parent.name}/{Path(mask).name}"
                     if isinstance(mask, (str, Path)) else "")
            raise ValueError(f"mask {where}: {err}" if where else f"mask: {err}") from None
        if truth.shape != labels.shape:
            raise ValueError(f"mask shape {truth.shape} does not match the image shape {labels.shape}")
    summary = seg.summary
    from_file = None if isinstance(image, np.ndarray) else read_pixel_size(image)
    size, origin = resolve_pixel_size(pixel_size, dataset_pixel_size, from_file)
    objects = cell_rows(seg.objects, size, flags)
    n_cells = None if seg.too_many_objects else int((objects["cytoplasm_area"] > 0).sum())
    n_flags = ({} if seg.too_many_objects else
               {f"n_{c}": int(objects[c].sum()) for c in FLAG_COLUMNS})
    row = {column: None for column in IMAGE_COLUMNS}
    row.update(image=name, file=file, status="ok", height=labels.shape[0], width=labels.shape[1],
               n_cells=n_cells, has_mask=truth is not None, **summary, **n_flags,
               pixel_size_um=size, pixel_size_source=origin,
               warnings="; ".join(seg.warnings) or None)
    for column in ("background_area", "cytoplasm_area", "nucleus_area"):
        row[f"{column}_um2"] = summary[column] * size ** 2 if size else None
    for key in ("t_nuc", "t_bg", "t_object"):
        row[key] = seg.thresholds.get(key)
    if truth is not None:
        scores = score_labels(labels, truth)
        row.update({k: scores[k] for k in _SCORE_COLUMNS})
    row = {k: _plain(row[k]) for k in IMAGE_COLUMNS}
    # Column lists -> rows: .tolist() gives Python numbers, far cheaper than to_dict.
    columns = [objects[c].tolist() for c in CELL_CSV_COLUMNS]
    object_rows = [{"image": name, **dict(zip(CELL_CSV_COLUMNS, values))}
                   for values in zip(*columns)]
    if object_classifier is not None:
        _add_classes(object_rows, object_classifier, array, seg, size)
    return labels, nuclei, row, object_rows


def _add_classes(object_rows: list, classifier, image, seg, pixel_size=None) -> None:
    """Each object row's ``class`` and ``class_probability`` (rows sorted by label, as
    the classifier's table is), measured in µm where the image's pixel size is known."""
    if not object_rows:
        return
    cells = seg.cells if (seg.labels == 1).any() else None
    table = classifier.classify(image, seg.nuclei, seg.labels, cells=cells,
                                pixel_size=pixel_size)
    if table["label"].tolist() != [r["label"] for r in object_rows]:
        raise ValueError("the object classifier measured other nuclei than the table holds")
    for r, cls, p in zip(object_rows, table["class"].tolist(),
                         table["class_probability"].tolist()):
        r.update({"class": cls, "class_probability": p})


def _failed_row(item: BatchItem, message: str) -> dict:
    row = {column: None for column in IMAGE_COLUMNS}
    row.update(image=item.stem, file=item.file, status=f"failed: {message}",
               has_mask=item.mask is not None)
    return row


def _write_outputs(out_dir: Path, stem: str, labels_tif: bytes, nuclei_tif: bytes,
                   row: dict, objects: list) -> None:
    """One image's files, each atomic; the resume marker last."""
    write_bytes_atomic(out_dir / "labels" / f"{stem}.tif", labels_tif)
    write_bytes_atomic(out_dir / "nuclei" / f"{stem}.tif", nuclei_tif)
    write_bytes_atomic(out_dir / _PARTS / f"{stem}.json",
                       json.dumps({"image": row, "objects": objects}).encode())


def _work(chunk, method, out_dir=None, max_objects=None, object_classifier=None,
          measure=None):
    """Worker: process a list of items (never raises for a bad image).

    With `out_dir` (a local worker) it writes each image's files itself and returns
    only the rows; without (a remote Dask worker) it returns the encoded TIFFs too,
    for the client to write. Either way the bytes are those of :func:`tiff_bytes`.
    """
    out = []
    measure = measure or {}
    for item in chunk:
        try:
            labels, nuclei, row, objects = process_image(
                item.image, method, mask=item.mask, name=item.stem, max_objects=max_objects,
                pixel_size=measure.get("pixel_size"), dataset_pixel_size=item.pixel_size,
                flags=measure.get("flags"), object_classifier=object_classifier)
            row["file"] = item.file  # the same whether the worker got a path or bytes
            size = row["pixel_size_um"]  # recorded in the TIFFs, so they carry it along
            labels_tif = tiff_bytes(labels, pixel_size=size)
            nuclei_tif = tiff_bytes(nuclei, pixel_size=size)
            if out_dir is not None:
                _write_outputs(out_dir, item.stem, labels_tif, nuclei_tif, row, objects)
                labels_tif = nuclei_tif = None
            out.append((item.stem, labels_tif, nuclei_tif, row, objects, None))
        except (ValueError, TypeError, OSError, MemoryError) as err:
            out.append((item.stem, None, None, None, None, str(err)))
    return out


# --- the run ---------------------------------------------------------------------------
@dataclass
class BatchResult:
    """What :func:`run_batch` did.

    Attributes
    ----------
    images, objects : pandas.DataFrame
        The contents of ``images.csv`` and ``objects.csv``.
    failed : list of (name, message)
    n_done, n_skipped : int
        Images processed now, and images skipped by ``resume`` (outputs existed).
    seconds : float
    out_dir : Path
    """

    images: pd.DataFrame
    objects: pd.DataFrame
    failed: list = field(default_factory=list)
    n_done: int = 0
    n_skipped: int = 0
    seconds: float = 0.0
    out_dir: Path | None = None

    @property
    def ok(self) -> bool:
        return not self.failed


def _typed(frame: pd.DataFrame) -> pd.DataFrame:
    """Whole-number columns as nullable integers, so a failed image's empty cells
    never turn ``256`` into ``256.0``."""
    for column in _INT_COLUMNS:
        if column in frame:
            frame[column] = frame[column].astype("Int64")
    return frame


def _csv_bytes(frame: pd.DataFrame) -> bytes:
    return frame.to_csv(index=False, lineterminator="\n").encode("utf-8")


def _text(value):
    """A file name that is not UTF-8 (``os.fsdecode`` gives it surrogates) as printable
    text, e.g. ``caf\\xe9``: pandas' string columns and UTF-8 CSVs refuse surrogates."""
    if isinstance(value, str):
        return value.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return value


def _done(out_dir: Path, stem: str) -> dict | None:
    part = out_dir / _PARTS / f"{stem}.json"
    if not (part.is_file() and (out_dir / "labels" / f"{stem}.tif").is_file()
            and (out_dir / "nuclei" / f"{stem}.tif").is_file()):
        return None
    try:
        return json.loads(part.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None


def _remove_stale_temp(out_dir: Path) -> None:
    """Temporary files of a run killed outright (kill -9) while writing."""
    for folder in (out_dir, out_dir / "labels", out_dir / "nuclei", out_dir / _PARTS):
        if folder.is_dir():
            for tmp in folder.glob(".*.part"):
                tmp.unlink(missing_ok=True)


def _previous_outputs(out_dir: Path) -> list[str]:
    """What an earlier run left in `out_dir` (empty list: the folder is free to use)."""
    found = [name for name in ("params.json", "images.csv", "objects.csv")
             if (out_dir / name).is_file()]
    for folder, what in (("labels", "label"), ("nuclei", "instance")):
        n = sum(1 for _ in (out_dir / folder).glob("*.tif")) if (out_dir / folder).is_dir() else 0
        if n:
            found.append(f"{n} {what} image{'s' if n != 1 else ''} in {folder}/")
    if (out_dir / _PARTS).is_dir() and any((out_dir / _PARTS).glob("*.json")):
        found.append(f"{_PARTS}/")
    return found


def _clear_outputs(out_dir: Path) -> None:
    """Remove what a run writes (and only that: other files in `out_dir` stay)."""
    for name in ("params.json", "images.csv", "objects.csv"):
        (out_dir / name).unlink(missing_ok=True)
    for folder, pattern in (("labels", "*.tif"), ("nuclei", "*.tif"), (_PARTS, "*.json")):
        if (out_dir / folder).is_dir():
            for path in (out_dir / folder).glob(pattern):
                path.unlink()


def _finished(out_dir: Path) -> dict:
    """stem -> saved rows of every image an earlier run finished in `out_dir`."""
    parts = out_dir / _PARTS
    if not parts.is_dir():
        return {}
    found = {}
    for part in sorted(parts.glob("*.json")):
        saved = _done(out_dir, part.stem)
        if saved is not None:
            found[part.stem] = saved
    return found


def _earlier_failures(out_dir: Path) -> dict:
    """stem -> the ``images.csv`` row of each image that failed in an earlier run."""
    table = read_run_table(out_dir / "images.csv")
    if table is None or "status" not in table or "image" not in table:
        return {}
    failed = table[table["status"].fillna("").str.startswith("failed")]
    rows = {}
    for record in failed.to_dict("records"):
        row = {column: None for column in IMAGE_COLUMNS}
        row.update({k: (None if isinstance(v, float) and np.isnan(v) else _plain(v))
                    for k, v in record.items() if k in row})
        rows[str(record["image"])] = row
    return rows


def _chunks(items, n_workers):
    # Small chunks: cheap to send, and the last one leaves little tail on one worker.
    size = max(1, min(4, len(items) // (4 * max(n_workers, 1))))
    return [items[i:i + size] for i in range(0, len(items), size)]


def _results_local(chunks, method, jobs, out_dir, max_objects, object_classifier=None,
                   measure=None):
    if jobs <= 1:
        for chunk in chunks:
            yield from _work(chunk, method, out_dir, max_objects, object_classifier, measure)
        return
    # fork: workers inherit the imported modules, so they start in milliseconds.
    methods = mp.get_all_start_methods()
    context = mp.get_context("fork" if "fork" in methods and sys.platform != "darwin" else None)
    with ProcessPoolExecutor(max_workers=jobs, mp_context=context) as pool:
        futures = [pool.submit(_work, chunk, method, out_dir, max_objects, object_classifier,
                               measure) for chunk in chunks]
        try:
            for future in as_completed(futures):
                yield from future.result()
        except BaseException:
            for future in futures:
                future.cancel()
            raise


def _results_dask(chunks, method, address, max_objects, object_classifier=None, measure=None):
    try:
        import distributed
    except ImportError:
        raise ValueError("--dask needs the `distributed` package: "
                         "pip install 'dask[distributed]'") from None
    own = not hasattr(address, "submit")
    try:
        client = distributed.Client(address, timeout="10s") if own else address
    except (OSError, TimeoutError, ValueError) as err:
        raise ValueError(f"cannot reach the Dask scheduler at {address!r}: {err}") from None
    # Remote workers may not see this machine's files: send the bytes.
    remote = []
    for chunk in chunks:
        remote.append([BatchItem(it.stem, _as_bytes(it.image), _as_bytes(it.mask), it.name,
                                 it.pixel_size) for it in chunk])
    try:
        [method_future] = client.scatter([method], broadcast=True)
        futures = [client.submit(_work, chunk, method_future, None, max_objects,
                                 object_classifier, measure, pure=False) for chunk in remote]
        try:
            for future in distributed.as_completed(futures):
                yield from future.result()
        except BaseException:
            client.cancel(futures)
            raise
    finally:
        if own:
            client.close()


def _as_bytes(source):
    if source is None or isinstance(source, (bytes, np.ndarray)):
        return source
    try:
        return Path(source).read_bytes()
    except OSError:
        return source  # let the worker report it by name


def run_batch(inputs, out_dir, method=None, *, jobs: int = 1, dask_address=None,
              resume: bool = False, overwrite: bool = False, progress=None,
              preset: str | None = None, model_path=None,
              max_objects: int | None = None, object_classifier=None,
              pixel_size: float | None = None, flags: RatioFlags | None = None) -> BatchResult:
    """Segment many images and write labels, instances, tables and params to `out_dir`.

    Parameters
    ----------
    inputs : list of path, (name, bytes) or BatchItem
        See :func:`find_inputs`.
    out_dir : path
        Created if needed.
    method : Segmenter, Params or a fitted model, optional
        Defaults to ``Params()``. Its ``describe()`` goes into ``params.json``.
    jobs : int
        Worker processes on this machine (1: in this process).
    dask_address : str or distributed.Client, optional
        Run on an existing Dask cluster instead (``jobs`` is then ignored).
    resume : bool
        Continue an earlier run with the same method in `out_dir`: skip images whose
        outputs exist, process the others, and keep every earlier image in
        ``images.csv`` and ``objects.csv`` (the tables are rebuilt from every finished
        image's saved rows, plus the earlier failures not retried now).
    overwrite : bool
        Remove an earlier run's outputs from `out_dir` first (only the files a run
        writes). Without `resume` or `overwrite`, a folder holding outputs is refused.
    progress : callable(done, total, name), optional
        Called after each image (the app's progress bar, the CLI's tqdm).
    preset, model_path : optional
        The preset plain Params came from, the file a model object was read from
        (recorded in ``params.json``).
    max_objects : int, optional
        Per-image object ceiling, see :func:`process_image`.
    object_classifier : path or ObjectClassifier, optional
        Adds ``class`` and ``class_probability`` to ``objects.csv`` (after its other
        columns); ``params.json`` records it under ``object_classifier`` (its file and
        SHA-256 when a path is given).
    pixel_size : float, optional
        µm per pixel for every image (else each image's dataset.json or file
        metadata, else none), written into the TIFFs and the ``_um2`` columns.
    flags : RatioFlags, optional
        Cut-offs of the ``flag_atypia`` / ``flag_high_grade`` columns (0.5, 0.7).

    Returns
    -------
    BatchResult

    Raises
    ------
    ValueError
        For bad inputs, ``jobs < 1``, an unreachable cluster, ``resume`` into a
        folder that holds results of other parameters, ``resume`` with ``overwrite``,
        or (without either) a folder that already holds outputs. A failing image does not
        raise: it is recorded in ``images.csv`` (status ``failed: ...``) and in
        ``BatchResult.failed``.
    """
    start = time.perf_counter()
    if not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"`jobs` must be a positive integer, got {jobs!r}")
    method = _segmenter(method, preset, model_path)
    # Resolved here, so that workers (Dask ones too) use this process's setting.
    limit = max_objects if max_objects is not None else default_max_objects()
    items = [x for x in inputs if isinstance(x, BatchItem)]
    others = [x for x in inputs if not isinstance(x, BatchItem)]
    if others:
        items = sorted(items + find_inputs(others), key=lambda it: it.stem)
    if not items:
        raise ValueError("no input images given")
    out_dir = Path(out_dir)
    if resume and overwrite:
        raise ValueError("give either --resume (continue the run in the folder) or "
                         "--overwrite (replace it), not both")
    flags = RatioFlags() if flags is None else flags
    pixel_size = check_pixel_size(pixel_size)
    measure = {"pixel_size": pixel_size, "flags": flags}
    description = {**method.describe(),
                   "measurements": {"pixel_size_um": pixel_size, "ratio_flags": flags.to_dict()}}
    object_classifier, classifier_block = _object_classifier(object_classifier)
    if classifier_block is not None:
        description["object_classifier"] = classifier_block
    params_file = out_dir / "params.json"
    earlier = _previous_outputs(out_dir) if out_dir.is_dir() else []
    if earlier and not (resume or overwrite):
        raise ValueError(f"{out_dir} already holds the outputs of a run ({', '.join(earlier)}); "
                         "add --resume to continue it (new images are added to its tables) "
                         "or --overwrite to replace it, or choose another --out folder")
    if resume and params_file.is_file():
        try:
            before = json.loads(params_file.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            before = None
        keys = ("params", "model", "model_sha256", "object_classifier")
        if before is None or any(before.get(k) != description.get(k) for k in keys) or (
                before.get("measurements", description["measurements"])
                != description["measurements"]):
            raise ValueError(f"{out_dir} holds results of other parameters, pixel size or "
                             "ratio cut-offs (see its params.json); "
                             "use another --out folder or run without --resume")
    out_dir.mkdir(parents=True, exist_ok=True)
    _remove_stale_temp(out_dir)
    rows, object_rows, failed = {}, {}, []
    if resume:  # every image finished before stays in the tables, in these inputs or not
        rows.update(_earlier_failures(out_dir))
        for stem, saved in _finished(out_dir).items():
            rows[stem], object_rows[stem] = saved["image"], saved["objects"]
    else:
        _clear_outputs(out_dir)  # nothing, unless `overwrite`
    write_bytes_atomic(params_file, (json.dumps(description, indent=2) + "\n").encode())

    todo = [item for item in items if item.stem not in object_rows]
    n_skipped, total, done = len(items) - len(todo), len(items), len(items) - len(todo)
    if progress is not None and n_skipped:
        progress(done, total, None)

    if todo:
        if dask_address is not None:
            n_workers = 1
            if hasattr(dask_address, "nthreads"):
                n_workers = max(1, sum(dask_address.nthreads().values()))
            results = _results_dask(_chunks(todo, max(n_workers, 2)), method, dask_address,
                                    limit, object_classifier, measure)
        else:
            results = _results_local(_chunks(todo, jobs), method, jobs, out_dir, limit,
                                     object_classifier, measure)
        by_stem = {item.stem: item for item in todo}
        for stem, labels_tif, nuclei_tif, row, objects, error in results:
            if error is None:
                if labels_tif is not None:  # from a remote worker: written here
                    _write_outputs(out_dir, stem, labels_tif, nuclei_tif, row, objects)
                rows[stem], object_rows[stem] = row, objects
            else:
                rows[stem], object_rows[stem] = _failed_row(by_stem[stem], error), []
                failed.append((by_stem[stem].label, error))
            done += 1
            if progress is not None:
                progress(done, total, stem)

    stems = sorted(rows)
    names = ("image", "file")
    images = _typed(pd.DataFrame([{k: _text(v) if k in names else v for k, v in rows[s].items()}
                                  for s in stems], columns=IMAGE_COLUMNS))
    objects = _typed(pd.DataFrame([{**r, "image": _text(r["image"])}
                                   for s in stems for r in object_rows.get(s, ())],
                                  columns=OBJECTS_COLUMNS + (
                                      CLASS_COLUMNS if object_classifier is not None else [])))
    write_bytes_atomic(out_dir / "images.csv", _csv_bytes(images))
    write_bytes_atomic(out_dir / "objects.csv", _csv_bytes(objects))
    failed.sort()
    return BatchResult(images=images, objects=objects, failed=failed,
                       n_done=len(todo), n_skipped=n_skipped,
                       seconds=time.perf_counter() - start, out_dir=out_dir)


def _object_classifier(source):
    """(classifier, its ``params.json`` block) of ``run_batch(object_classifier=...)``."""
    if source is None:
        return None, None
    if isinstance(source, ObjectClassifier):
        return source, {"file": None, "sha256": None, "classes": list(source.class_names)}
    path = Path(source)
    if not path.is_file():
        raise ValueError(f"{path}: no such object classifier file")
    data = path.read_bytes()
    classifier = ObjectClassifier.load(path)
    return classifier, {"file": str(path), "sha256": hashlib.sha256(data).hexdigest(),
                        "classes": list(classifier.class_names)}


def zip_outputs(out_dir) -> bytes:
    """The outputs of a run as one zip (in memory): TIFFs, both CSVs and params.json.

    For the app's download button; the hidden ``.parts`` folder is left out.
    """
    out_dir = Path(out_dir)
    if not (out_dir / "params.json").is_file():
        raise ValueError(f"{out_dir}: not a batch output folder (no params.json)")
    buf = _io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name in ("params.json", "images.csv", "objects.csv"):
            if (out_dir / name).is_file():
                archive.write(out_dir / name, name)
        for folder in ("labels", "nuclei"):
            for path in sorted((out_dir / folder).glob("*.tif")):
                # TIFFs are already compressed.
                archive.write(path, f"{folder}/{path.name}", compress_type=zipfile.ZIP_STORED)
    return buf.getvalue()
