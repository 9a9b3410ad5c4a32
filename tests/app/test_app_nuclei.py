"""Issue 18 in the app: the Train page's nucleus section (preview, live curves, the trained
model registered), the built-in model on Count, instance ground truth uploaded as a
uint16 TIFF (F1 shown), Compare on nuclei."""
from __future__ import annotations

import io

import numpy as np
import pytest

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest  # noqa: E402

from app_support import nuclei_train, runs  # noqa: E402
from cellseg_core.data import demo_datasets  # noqa: E402
from cellseg_core.data.synthetic import fluorescence_image  # noqa: E402
from cellseg_core.evaluation import compare_nuclei  # noqa: E402
from cellseg_core.io import tiff_bytes  # noqa: E402
from cellseg_core.learn import NucleusModel, torch_available  # noqa: E402
from cellseg_core.metrics import average_precision, match_instances  # noqa: E402
from tests._support.apptest import REPO, page_harness, run as _run  # noqa: E402


@pytest.fixture
def demo_env(monkeypatch):
    monkeypatch.delenv("CELLSEG_DATA", raising=False)
    monkeypatch.delenv("CELLSEG_CONFIG", raising=False)


# --- figures ----------------------------------------------------------------------------------
def test_curves_figure_draws_loss_and_validation_f1_and_marks_the_best_epoch():
    epochs = [{"epoch": 0, "loss": 0.5, "val_f1": 0.6}, {"epoch": 1, "loss": 0.4, "val_f1": 0.8},
              {"epoch": 2, "loss": 0.35, "val_f1": 0.7}]
    fig = nuclei_train.curves_figure(epochs)
    loss, f1, best = fig.data
    assert list(loss.x) == [1, 2, 3] and list(loss.y) == [0.5, 0.4, 0.35]
    assert list(f1.y) == [0.6, 0.8, 0.7] and f1.yaxis == "y2"
    assert list(best.x) == [2] and list(best.y) == [0.8]
    assert len(nuclei_train.curves_figure([]).data) == 2  # nothing yet: empty curves


def test_preview_tiles_paint_the_boundary_class_green():
    x = np.full((4, 4, 3), 0.5, np.float32)
    target = np.zeros((4, 4), np.uint8)
    target[1, 1], target[2, 2] = 2, 1
    tile = nuclei_train.preview_tiles([(x, target)])[0]
    assert tile.dtype == np.uint8 and tile.shape == (4, 4, 3)
    assert tuple(tile[1, 1]) == (40, 220, 60) and tuple(tile[2, 2]) == (127, 127, 127)


def test_settings_from_the_widgets():
    state = dict(nuclei_train.DEFAULTS)
    s = nuclei_train.settings_from_state(state)
    assert s.init == "builtin" and s.epochs == 30 and s.class_weights == (1.0, 1.0, 3.0)
    state[nuclei_train.K_INIT] = nuclei_train.SCRATCH
    assert nuclei_train.settings_from_state(state).init is None


# --- the Train page's section ----------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.skipif(not torch_available(), reason="PyTorch (the deep extra) is not installed")
def test_train_page_fine_tunes_shows_curves_and_registers_the_model(demo_env):
    at = AppTest.from_string(page_harness("train.py"), default_timeout=120)
    at = _run(at)
    P = nuclei_train.PAGE
    assert at.session_state[f"{P}.dataset"] == "demo-fluorescence"  # the set with instances
    at.number_input(key=f"{P}.limit").set_value(3)
    at.number_input(key=f"{P}.epochs").set_value(2)
    at.number_input(key=f"{P}.steps").set_value(1)
    at.number_input(key=f"{P}.test_images").set_value(2)
    at = _run(at.button(key=f"{P}.preview_button").click())
    assert sum(len(block.proto.imgs) for block in at.get("image")) == nuclei_train.PREVIEW_CROPS
    at = _run(at.button(key=f"{P}.run_button").click())
    job = at.session_state[f"{P}.run"]
    assert job.join(timeout=300) and job.status == "done", job.error
    at = _run(at)
    model = job.result["model"]
    assert isinstance(model, NucleusModel)
    assert at.session_state[runs.LEARNED_MODELS]["nuclei (fine-tuned)"] is model
    assert [e["epoch"] for e in job.events] == list(range(len(job.result["log"]["epochs"])))
    ds = demo_datasets()["demo-fluorescence"]
    expected = compare_nuclei(ds, ds.split["test"][:2], {"mine": model}).summary.iloc[0]
    shown = [d.value for d in at.dataframe if "F1@0.5" in d.value.columns][0]
    assert shown["method"].tolist() == ["nuclei (fine-tuned)", "nuclei (built-in model)"]
    assert shown.iloc[0]["F1@0.5"] == pytest.approx(expected["F1@0.5"])
    assert shown.iloc[0]["DSB AP"] == pytest.approx(expected["DSB AP"])
    assert NucleusModel(_write(job.result["bytes"])).metadata["trained_on"] == ds.name


def _write(data: bytes):
    import tempfile
    from pathlib import Path

    path = Path(tempfile.mkdtemp()) / "m.onnx"
    path.write_bytes(data)
    return path


# --- Count with the built-in model; uint16 ground truth uploaded ------------------------------
_UPLOAD = """
import io, runpy
import streamlit as st
from app_support import sources, state

class _Upload(io.BytesIO):
    def __init__(self, data, name):
        super().__init__(data)
        self.name = name

_files = {sources.K_UPLOAD: st.session_state.get("test.upload"),
          sources.K_UPLOAD_MASK: st.session_state.get("test.upload_mask")}

def _fake_uploader(label, *args, key=None, **kwargs):
    value = _files.get(key)
    return None if value is None else _Upload(value[1], value[0])

_real = st.file_uploader
st.file_uploader = _fake_uploader
try:
    st.session_state[state.SOURCE_KIND] = "Upload"
    sources.shared_sidebar()
finally:
    st.file_uploader = _real
runpy.run_path(st.session_state["test.page"], run_name="__main__")
"""


def _sample():
    s = fluorescence_image(3, size=128, n_cells=6)
    image = (np.clip(s.image / s.image.max(), 0, 1) * 255).astype(np.uint8)
    return image, s.labels.astype(np.uint16)


def _png(image) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    return buf.getvalue()


@pytest.mark.slow
@pytest.mark.parametrize("page", ["count.py", "explore.py"])
def test_uint16_instances_uploaded_as_truth_give_the_f1_of_the_built_in_model(page, demo_env):
    image, truth = _sample()
    at = AppTest.from_string(_UPLOAD, default_timeout=180)
    at.session_state["test.page"] = str(REPO / "pages" / page)
    at.session_state["test.upload"] = ("cells.png", _png(image))
    at.session_state["test.upload_mask"] = ("truth.tif", tiff_bytes(truth))
    key = "count.method" if page == "count.py" else "explore.model"
    at.session_state[key] = "nuclei (built-in model)"
    at = _run(at)
    assert not at.error, [e.value for e in at.error]
    pred = NucleusModel().segment(image / 255).nuclei
    m = match_instances(pred, truth)
    metrics = {x.label: x.value for x in at.metric}
    if page == "count.py":
        assert metrics["Nuclei counted"] == str(int(pred.max()))
        assert metrics["True nuclei"] == str(int(truth.max()))
        assert metrics["F1 · mean AP (DSB)"] == (f"{m['f1']:.3f} · "
                                                 f"{average_precision(pred, truth):.3f}")
    else:  # Explore's agreement table, for a model as for parameters
        from tests._support.apptest import numbers_shown

        shown = {k: v for k, v in numbers_shown(at).items()}
        assert shown["Instance F1 (IoU ≥ 0.5)"] == f"{m['f1']:.4f}"[:len(
            shown["Instance F1 (IoU ≥ 0.5)"])]


# --- Compare on nuclei ---------------------------------------------------------------------
@pytest.mark.slow
def test_compare_on_nuclei_table_equals_compare_nuclei_and_shows_a_gallery(demo_env):
    from app_support import nuclei_compare
    from cellseg_core.methods import nucleus_methods

    at = _run(AppTest.from_string(page_harness("compare.py"), default_timeout=120))
    P = nuclei_compare.PAGE
    assert at.session_state[f"{P}.dataset"] == "demo-fluorescence"
    assert at.session_state[f"{P}.split"] == "test"
    assert at.session_state[f"{P}.methods"] == ["nuclei (built-in model)", "otsu baseline",
                                                 "auto-nuclei", "auto-fluorescence"]
    at.number_input(key=f"{P}.gallery").set_value(2)
    at = _run(at.button(key=f"{P}.run_button").click())
    job = at.session_state[f"{P}.run"]
    assert job.join(timeout=300) and job.status == "done", job.error
    at = _run(at)
    ds = demo_datasets()["demo-fluorescence"]
    core = nucleus_methods()
    core["nuclei (built-in model)"] = core.pop("builtin:nuclei")
    expected = compare_nuclei(ds, ds.split["test"], core).summary.set_index("method")
    shown = [d.value for d in at.dataframe if "F1@0.5" in d.value.columns][0].set_index("method")
    for name in expected.index:
        for col in ("F1@0.5", "DSB AP", "precision", "recall", "|count error|"):
            assert shown.loc[name, col] == pytest.approx(expected.loc[name, col]), (name, col)
    # the baseline and the model really differ here (not one method shown four times)
    assert shown["F1@0.5"].nunique() > 1
    tiles = [img for block in at.get("image") for img in block.proto.imgs]
    assert len(tiles) == 2 * 4


# --- an .onnx nucleus model uploaded in Explore ---------------------------------------------
@pytest.mark.parametrize("content, good", [pytest.param("builtin", True, marks=pytest.mark.slow),
                                           (b"not onnx at all", False)])
def test_an_onnx_file_uploads_as_a_nucleus_model_in_explore(demo_env, content, good):
    import re

    from cellseg_core.learn import BUILTIN_MODEL

    data = BUILTIN_MODEL.read_bytes() if content == "builtin" else content
    at = _run(AppTest.from_string(page_harness("explore.py"), default_timeout=120))
    at.file_uploader(key="explore.model_file").set_value(("mine.onnx", data,
                                                          "application/octet-stream"))
    at = _run(at)
    models = at.session_state[runs.LEARNED_MODELS] if runs.LEARNED_MODELS in at.session_state \
        else {}
    if good:
        assert not at.error, [e.value for e in at.error]
        assert at.session_state["explore.model"] == "file:mine"
        assert isinstance(models["file:mine"], NucleusModel)
        from tests._support.apptest import numbers_shown

        assert "Nuclei" in {m.label for m in at.metric} | set(numbers_shown(at))
    else:
        shown = re.sub(r"\\(.)", r"\1", at.error[0].value)
        assert "mine.onnx is not a usable model file" in shown and "not a readable ONNX" in shown
        assert not models
