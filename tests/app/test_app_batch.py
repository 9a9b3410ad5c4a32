"""The Batch page through Streamlit's AppTest (no browser): dataset and upload runs whose
table and zip equal the engine's, and saved-parameter files that are refused cleanly."""
from __future__ import annotations

import io
import json
import re
import tempfile
import zipfile

import numpy as np
import pytest

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest  # noqa: E402

from app_support import runs, state, wording  # noqa: E402
from cellseg_core import segment  # noqa: E402
from cellseg_core.io import read_image, read_mask  # noqa: E402
from cellseg_core.metrics import score_labels  # noqa: E402
from cellseg_core.presets import get_preset  # noqa: E402
from tests._support.apptest import finish_run, page_harness, run as _run  # noqa: E402

tifffile = pytest.importorskip("tifffile")

PAGE, TIMEOUT = "batch.py", 60
HARNESS = page_harness(PAGE)


def _batch(at: AppTest):
    """Click Run, wait for the background run, draw the results; (at, result)."""
    at, run = finish_run(at, "batch", timeout=120)
    return at, run.result


def _zip(result) -> zipfile.ZipFile:
    return zipfile.ZipFile(io.BytesIO(result["zip"]))


def _shown_table(at):
    """The results table as shown (columns in words), with its machine names back."""
    table = next(d.value for d in at.dataframe if "Mean Dice" in d.value.columns)
    assert not [c for c in table.columns if "_" in c], "a snake_case column is shown"
    return table.rename(columns={label: key for key, (label, _) in
                                 wording.COLUMN_LABELS.items() if key != "id"})


def test_dataset_batch_equals_the_engine(app_voced, voced, tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where the run's folder goes
    at = _run(app_voced)
    assert at.session_state["batch.dataset"] == "voced"
    at.radio(key="batch.split").set_value("test")
    at = _run(at)
    at.number_input(key="batch.limit").set_value(3)
    at.radio(key="batch.method").set_value("Preset")
    at = _run(at)
    at.selectbox(key="batch.preset").set_value("lab02")
    at, result = _batch(at)

    ids = [f"{i:03d}" for i in json.loads((voced / "split.json").read_text())["test"][:3]]
    table = _shown_table(at)
    assert table["image"].tolist() == sorted(ids)
    assert (table["status"] == "ok").all() and result["failed"] == []
    archive = _zip(result)
    names = set(archive.namelist())
    assert {"params.json", "images.csv", "objects.csv"} <= names
    assert json.loads(archive.read("params.json"))["params"] == get_preset("lab02").to_dict()
    for image_id in ids:
        image = read_image(voced / "images" / f"{image_id}.png")
        seg = segment(image, get_preset("lab02"))
        scores = score_labels(seg.labels, read_mask(voced / "masks" / f"{image_id}.png"))
        row = table.set_index("image").loc[image_id]
        assert row["mean_dice"] == pytest.approx(scores["mean_dice"], abs=1e-12)
        assert row["dice_nucleus"] == pytest.approx(scores["dice_nucleus"], abs=1e-12)
        assert row["nucleus_area"] == int((seg.labels == 2).sum())
        labels = tifffile.imread(io.BytesIO(archive.read(f"labels/{image_id}.tif")))
        assert labels.dtype == np.uint8
        np.testing.assert_array_equal(labels, seg.labels)
        assert f"nuclei/{image_id}.tif" in names
    assert archive.read("images.csv").decode().count("\n") == 1 + 3
    assert list(tmp_path.iterdir()) == []  # the private folder is gone once zipped
    # The Dice shown is over the scored images.
    shown = next(m for m in at.metric if m.label == "Mean Dice").value
    assert float(shown) == pytest.approx(table["mean_dice"].mean(), abs=1e-4)


def test_uploaded_files_with_explore_params_and_a_bad_image(app_voced, voced):
    at = _run(app_voced)
    params = get_preset("lab01").with_values({"threshold.t_bg": 0.9})
    at.session_state[state.PARAMS] = params
    at.radio(key="batch.input").set_value("Upload")
    at.radio(key="batch.method").set_value("Explore (current)")
    at = _run(at)
    stems = ["000", "001", "002"]
    files = [(f"{s}.png", (voced / "images" / f"{s}.png").read_bytes(), "image/png")
             for s in stems]
    files.append(("broken.png", b"not an image at all", "image/png"))
    at.file_uploader(key="batch.files").set_value(files)
    at, result = _batch(_run(at))

    table = result["images"].set_index("image")
    assert sorted(table.index) == ["000", "001", "002", "broken"]
    assert table.loc["broken", "status"].startswith("failed")
    assert [name for name, _ in result["failed"]] == ["broken.png"]
    assert any("broken.png" in e.value for e in at.error)  # the failed-images list
    assert table.loc["000", "mean_dice"] is None or np.isnan(table.loc["000", "mean_dice"])
    archive = _zip(result)
    assert json.loads(archive.read("params.json"))["params"] == params.to_dict()
    assert "labels/broken.tif" not in archive.namelist()
    for s in stems:
        seg = segment(read_image(voced / "images" / f"{s}.png"), params)
        labels = tifffile.imread(io.BytesIO(archive.read(f"labels/{s}.tif")))
        np.testing.assert_array_equal(labels, seg.labels)
        assert table.loc[s, "n_nuclei"] == seg.summary["n_nuclei"]


@pytest.mark.parametrize("content, reason", [
    (b"{not json", "not valid JSON"),
    (json.dumps({"threshold": {"t_nuc": 0.4, "bogus": 1}}).encode(), "bogus"),
    (b"\xff\xfe", ""),
])
def test_a_bad_params_file_is_an_error_not_an_exception(app_demo, content, reason):
    at = _run(app_demo)
    at.radio(key="batch.method").set_value("Saved JSON")
    at = _run(at)
    at.file_uploader(key="batch.params_json").set_value(("p.json", content,
                                                          "application/json"))
    at = _run(at)
    assert at.error, "no error shown"
    assert "p.json is not a parameters file" in at.error[0].value
    assert reason in at.error[0].value
    assert at.button(key="batch.run_button").disabled


def test_a_saved_params_json_runs_on_demo_data(app_demo):
    at = _run(app_demo)
    assert at.session_state["batch.dataset"] == "demo-cytology"
    at.number_input(key="batch.limit").set_value(2)
    at.radio(key="batch.method").set_value("Saved JSON")
    at = _run(at)
    params = get_preset("lab03v2")
    at.file_uploader(key="batch.params_json").set_value(
        ("mine.json", params.to_json().encode(), "application/json"))
    at, result = _batch(_run(at))
    table = result["images"]
    assert table["image"].tolist() == ["000", "001"]
    assert ((table["mean_dice"] > 0.3) & (table["mean_dice"] <= 1.0)).all()
    assert json.loads(_zip(result).read("params.json"))["params"] == params.to_dict()
    assert not at.error


class _Model:
    """A stand-in learned model: anything with ``.segment(image)``."""

    def segment(self, image):
        return segment(image, get_preset("lab02"))


def test_a_learned_model_of_the_session_is_a_method(app_demo):
    at = _run(app_demo)
    at.session_state[runs.LEARNED_MODELS] = {"stub": _Model()}
    at.number_input(key="batch.limit").set_value(2)
    at = _run(at)
    at.radio(key="batch.method").set_value("Learned model")
    at, result = _batch(_run(at))
    from cellseg_core.data import demo_datasets

    ds = demo_datasets()["demo-cytology"]
    labels = tifffile.imread(io.BytesIO(_zip(result).read("labels/001.tif")))
    np.testing.assert_array_equal(labels, segment(ds.image("001"), get_preset("lab02")).labels)
    assert json.loads(_zip(result).read("params.json"))["model"] == "_Model"


def test_same_name_uploads_are_renamed_not_refused(app_voced, voced):
    """Two files called 000 (.png and .tif) and the same file twice: each is segmented,
    the later ones under -2, -3, and the page says so in words, with no CLI advice."""
    at = _run(app_voced)
    at.radio(key="batch.input").set_value("Upload")
    at.radio(key="batch.method").set_value("Preset")
    at = _run(at)
    png = (voced / "images" / "000.png").read_bytes()
    buf = io.BytesIO()
    from PIL import Image
    tifffile.imwrite(buf, np.asarray(Image.open(voced / "images" / "001.png")))  # same pixels
    at.file_uploader(key="batch.files").set_value([
        ("000.png", png, "image/png"), ("000.tif", buf.getvalue(), "image/tiff"),
        ("000.png", png, "image/png")])
    at = _run(at)
    note = re.sub(r"\\(.)", r"\1", " ".join(i.value for i in at.info))  # unescaped
    assert "same name" in note and "000.tif → 000-2.tif" in note and "000.png → 000-3.png" in note
    at, result = _batch(at)
    assert result["failed"] == [] and not at.error
    table = _shown_table(at)
    assert table["image"].tolist() == ["000", "000-2", "000-3"]
    archive = _zip(result)
    assert {"labels/000.tif", "labels/000-2.tif", "labels/000-3.tif"} <= set(archive.namelist())
    shown = [e.value for e in [*at.error, *at.warning, *at.info]]
    assert not any("--out" in text or "Error" in text for text in shown), shown
    preset = at.session_state["batch.preset"]
    seg = segment(read_image(voced / "images" / "001.png"), get_preset(preset))
    np.testing.assert_array_equal(
        tifffile.imread(io.BytesIO(archive.read("labels/000-2.tif"))), seg.labels)
