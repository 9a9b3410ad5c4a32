"""Explore's downloads for other tools: QuPath GeoJSON, ImageJ ROI zip, 0/255 masks, the
one-page report. The bytes are made by ``cellseg_core.export`` / ``cellseg_core.report``
only when a button is clicked (a deferred download), so the page pays nothing for them
on a slider move.
"""
from __future__ import annotations

import datetime as _dt
import re

import streamlit as st

from app_support import methods, wording
from cellseg_core.export import (binary_masks_zip, geojson_bytes, to_geojson,
                                 to_imagej_rois)
from cellseg_core.report import image_report, run_report

__all__ = ["download_name", "export_files", "render_export_downloads", "run_report_bytes",
           "render_run_report_download"]


def _safe(text: str) -> str:
    """A file-name part: letters, digits, ``.``, ``-`` and ``_`` only."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", str(text)).strip("._") or "image"


def download_name(source, method: dict, what: str, ext: str, *, date=None) -> str:
    """``<image>_<method>_<date>_<what>.<ext>``: what the file holds, from what, when.

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> src = SimpleNamespace(image_id="007", name="voced / 007")
    >>> download_name(src, {"preset": "lab02"}, "cells", "geojson", date="2026-12-02")
    '007_lab02_2026-12-02_cells.geojson'
    >>> download_name(SimpleNamespace(image_id=None, name="my slide.png"), {}, "report", "html",
    ...               date="2026-12-02")
    'my_slide.png_custom-params_2026-12-02_report.html'
    """
    return wording.download_name(what, ext, image=_safe(source.image_id or source.name),
                                 method=method.get("preset") or "custom-params", when=date)


def export_files(seg, source, method: dict, *, pixel_size: float | None = None,
                 objects=None) -> dict:
    """label -> (file name, mime type, callable returning the bytes) of each download.

    `objects`: a callable returning the per-cell table to export (e.g. with the µm²
    columns and ratio flags of :func:`app_support.pathology.cell_table`); default
    ``seg.objects``. Called only when a file is made.
    """
    name = source.image_id or source.name
    cells = objects if callable(objects) else (lambda: seg.objects)
    return {
        "Cells and nuclei (QuPath GeoJSON)": (
            download_name(source, method, "cells", "geojson"), "application/geo+json",
            lambda: geojson_bytes(to_geojson(seg.labels, seg.nuclei, cells(),
                                             pixel_size=pixel_size, name=str(name)))),
        "Nucleus outlines (ImageJ ROI zip)": (
            download_name(source, method, "nucleus_rois", "zip"), "application/zip",
            lambda: to_imagej_rois(seg.nuclei)),
        "Binary masks 0/255 (PNG zip)": (
            download_name(source, method, "masks", "zip"), "application/zip",
            lambda: binary_masks_zip(seg.labels, _safe(name))),
        "Report (HTML, printable)": (
            download_name(source, method, "report", "html"), "text/html",
            lambda: image_report(source.image, seg.labels, seg.nuclei,
                                 None if seg.too_many_objects else cells(),
                                 name=source.name, summary=seg.summary, method=method,
                                 pixel_size=pixel_size, warnings=seg.warnings).encode("utf-8")),
    }


def render_export_downloads(page: str, seg, source, *, pixel_size: float | None = None,
                            method: dict | None = None, objects=None) -> None:
    """Download buttons for the exports of the current segmentation (Explore).

    Above the object ceiling the outlines (GeoJSON, ROIs) are off, with the reason;
    the masks and the report stay. `method`: the provenance block of what made `seg`
    (a learned model's ``describe()``); default the parameters in force.
    """
    if pixel_size is None:
        pixel_size = getattr(source, "pixel_size", None)
    if method is None:
        method = methods.current_method().describe()
    files = export_files(seg, source, method, pixel_size=pixel_size, objects=objects)
    too_many = seg.too_many_objects
    st.markdown("**For other tools**")
    row = st.columns(len(files))
    for k, (col, (label, (file_name, mime, data))) in enumerate(zip(row, files.items())):
        outlines = k < 2
        col.download_button(label, data, file_name=file_name, mime=mime,
                            key=f"{page}.dl_export_{k}", on_click="ignore",
                            disabled=bool(too_many and outlines))
    st.caption("GeoJSON opens in QuPath (File › Import objects) with each cell's numbers as "
               "measurements; the ROI zip in Fiji's ROI Manager; outlines follow the pixel "
               "edges, in pixels." + (f" Outlines are off: {too_many}." if too_many else ""))


def run_report_bytes(out_dir, items=()) -> bytes:
    """The one-page report of a batch run in `out_dir` (thumbnails from `items`, the
    run's :class:`~cellseg_core.batch.BatchItem` list)."""
    return run_report(out_dir, images={item.stem: item.image for item in items}).encode("utf-8")


def render_run_report_download(page: str, report: bytes | None, name: str) -> None:
    """The Batch page's button for the run's report (nothing for a run without one)."""
    if not report:
        return
    date = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d")
    st.download_button("Report (HTML, printable)", report,
                       file_name=f"cellseg_batch_{_safe(name)}_{date}_report.html",
                       mime="text/html", key=f"{page}.dl_report", on_click="ignore",
                       help="One page: the numbers with their definitions, flagged cells, "
                            "the method and its provenance")
