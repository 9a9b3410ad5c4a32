"""Explore's downloads for other tools (app_support.exports) through AppTest: the buttons
exist, their file names say what they hold, and the bytes they give are the engine's
exports of the segmentation on screen, read back with the tools' readers."""
from __future__ import annotations

import datetime as dt
import io
import json
import zipfile

import numpy as np
import pytest

pytest.importorskip("streamlit")
import streamlit as st  # noqa: E402
from PIL import Image  # noqa: E402
from streamlit.delta_generator import DeltaGenerator  # noqa: E402

import roifile  # noqa: E402
from app_support import state  # noqa: E402
from cellseg_core import segment  # noqa: E402
from cellseg_core.export import geojson_to_labels  # noqa: E402
from cellseg_core.presets import get_preset  # noqa: E402
from tests._support.apptest import finish_run, page_app, run as _run  # noqa: E402

PAGE, TIMEOUT = "explore.py", 60
LABELS = ["Cells and nuclei (QuPath GeoJSON)", "Nucleus outlines (ImageJ ROI zip)",
          "Binary masks 0/255 (PNG zip)", "Report (HTML, printable)"]


@pytest.fixture
def downloads(monkeypatch):
    """Every download button the page draws: label -> (data, file name, disabled)."""
    found = {}
    original = DeltaGenerator.download_button

    def recording(self, label, data, file_name=None, *args, **kwargs):
        found[label] = (data, file_name, kwargs.get("disabled", False))
        return original(self, label, data, file_name, *args, **kwargs)

    monkeypatch.setattr(DeltaGenerator, "download_button", recording)
    # ``st.download_button`` was bound to the main container at import.
    main = st.download_button.__self__
    monkeypatch.setattr(st, "download_button", lambda *a, **k: recording(main, *a, **k))
    return found


def test_export_downloads_give_the_engine_exports(app_demo, downloads, tmp_path):
    at = _run(app_demo)
    at.segmented_control(key="explore.tab").set_value("Downloads")
    at = _run(at)
    shown = [b.proto.label for b in at.get("download_button")]
    assert shown[-4:] == LABELS
    source = at.session_state[state.SOURCE_CURRENT]
    preset = state.DEFAULT_PRESET
    seg = segment(source.image, get_preset(preset))
    assert seg.nuclei.max() >= 1
    today = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d")
    stem = source.image_id
    names = {label: downloads[label][1] for label in LABELS}
    assert names == {LABELS[0]: f"{stem}_{preset}_{today}_cells.geojson",
                     LABELS[1]: f"{stem}_{preset}_{today}_nucleus_rois.zip",
                     LABELS[2]: f"{stem}_{preset}_{today}_masks.zip",
                     LABELS[3]: f"{stem}_{preset}_{today}_report.html"}
    assert not any(downloads[label][2] for label in LABELS)
    data = {label: downloads[label][0]() for label in LABELS}

    collection = json.loads(data[LABELS[0]])
    _, nuclei, _ = geojson_to_labels(collection, seg.labels.shape)
    np.testing.assert_array_equal(nuclei, seg.nuclei)
    measured = {int(f["properties"]["metadata"]["cellseg_label"]):
                f["properties"]["measurements"]["nucleus_area"] for f in collection["features"]}
    assert measured == dict(zip(seg.objects["label"], seg.objects["nucleus_area"]))

    (tmp_path / "rois.zip").write_bytes(data[LABELS[1]])
    rois = roifile.roiread(tmp_path / "rois.zip")
    rois = rois if isinstance(rois, list) else [rois]
    assert [int(r.name) for r in rois] == list(range(1, int(seg.nuclei.max()) + 1))

    archive = zipfile.ZipFile(io.BytesIO(data[LABELS[2]]))
    nucleus = np.asarray(Image.open(archive.open(f"{stem}_nucleus.png")))
    np.testing.assert_array_equal(nucleus, np.where(seg.labels == 2, 255, 0))

    page = data[LABELS[3]].decode("utf-8")
    assert page.startswith("<!DOCTYPE html>") and "data:image/png;base64," in page
    assert f"<td>preset</td><td>{preset}</td>" in page
    assert f"<td>n_nuclei</td><td class=n>{int(seg.nuclei.max())}</td>" in page


def test_batch_page_offers_the_run_report(monkeypatch, downloads):
    at = _run(page_app(monkeypatch, "batch.py", timeout=TIMEOUT))
    at.number_input(key="batch.limit").set_value(2)
    at, run = finish_run(_run(at), "batch", timeout=120)
    report, name, _ = downloads["Report (HTML, printable)"]
    assert name.startswith("cellseg_batch_") and name.endswith("_report.html")
    assert report == run.result["report"]
    page = report.decode("utf-8")
    assert "<td>images segmented</td><td class=n>2</td>" in page
    assert page.count("data:image/png;base64,") == 2  # a thumbnail per image, inline
    images = run.result["images"]
    assert f"<td class=n>{int(images['n_nuclei'].sum()):,}</td>" in page
