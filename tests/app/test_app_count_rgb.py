"""Count with an RGB fluorescence upload (issue 22 point 5): an RGB DAPI export is
counted in its brightest channel, or the channel the user picks."""
from __future__ import annotations

import io

import numpy as np
import pytest

pytest.importorskip("streamlit")
from PIL import Image  # noqa: E402

from app_support import sources, state  # noqa: E402
from cellseg_core import segment  # noqa: E402
from cellseg_core.data import synthetic  # noqa: E402
from tests._support.apptest import metric as _metric  # noqa: E402
from tests._support.apptest import page_app, run  # noqa: E402

PAGE, TIMEOUT = "count.py", 180


def _rgb_dapi() -> np.ndarray:
    """The seed's nuclei in the blue channel of an 8-bit RGB image, an even haze in red."""
    nuclei = (np.clip(synthetic.fluorescence_image().image, 0, 1) * 255 + 0.5).astype(np.uint8)
    rgb = np.zeros((*nuclei.shape, 3), np.uint8)
    rgb[..., 2] = nuclei
    rgb[..., 0] = 40
    return rgb


def _png(rgb: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(rgb).save(out, format="PNG")
    return out.getvalue()


def _engine_count(at, image, channel: str) -> int:
    names = set(synthetic.seed_params().flat()) - {"channel"}
    values = {n: at.session_state[f"count.{n}"] for n in names if f"count.{n}" in at.session_state}
    params = synthetic.seed_params().with_values({**values, "channel": channel})
    return int(segment(image, params).nuclei.max())


def test_upload_kind_reads_an_rgb_export_as_fluorescence():
    rgb = _rgb_dapi().astype(np.float32) / 255
    assert sources.upload_kind(rgb) == "fluorescence"
    assert sources.upload_kind(rgb[..., 2]) == "fluorescence"
    assert sources.upload_kind(1 - rgb) == "cytology"  # bright background


@pytest.mark.slow
def test_count_counts_an_rgb_fluorescence_upload_in_its_bright_channel(monkeypatch):
    at = page_app(monkeypatch, PAGE, timeout=TIMEOUT)
    at.session_state[state.SOURCE_KIND] = "Upload"
    at = run(at)
    at.file_uploader(key=sources.K_UPLOAD).set_value(("dapi_rgb.png", _png(_rgb_dapi()),
                                                      "image/png"))
    at = run(at)
    source = at.session_state[state.SOURCE_CURRENT]
    assert source.kind == "fluorescence" and source.image.ndim == 3
    # The sidebar's image is offered first, counted in the brightest (blue) channel.
    assert at.radio(key="count.source").value == "image from the sidebar"
    assert at.selectbox(key="count.rgb_channel").value == "brightest"
    counted = int(_metric(at, "Nuclei counted"))
    assert counted == _engine_count(at, source.image, "blue") == synthetic.N_CELLS
    # Gray would dilute the nuclei (blue weighs 0.114): the channel is what counts.
    assert _engine_count(at, source.image, "gray") != synthetic.N_CELLS
    assert any("blue channel" in c.value for c in at.caption)
    # A channel picked by hand: the engine's count in that channel.
    at = run(at.selectbox(key="count.rgb_channel").set_value("red"))
    assert int(_metric(at, "Nuclei counted")) == _engine_count(at, source.image, "red")
    assert int(_metric(at, "Nuclei counted")) != synthetic.N_CELLS


def test_count_figures_are_drawn_at_display_size_on_full_resolution_axes():
    import base64

    from app_support import count_figures

    sample = synthetic.fluorescence_image(size=256)
    seg = segment(sample.image, synthetic.seed_params())
    fig = count_figures.instance_figure(sample.image, seg.nuclei, seg.objects, max_side=128)
    image = fig.data[0]
    decoded = Image.open(io.BytesIO(base64.b64decode(image.source.split(",", 1)[1])))
    assert decoded.size == (128, 128) and (image.dx, image.dy) == (2, 2)
    numbers = fig.data[1]  # object numbers at full-resolution centroids
    np.testing.assert_allclose(numbers.x, seg.objects["centroid_col"])
    full = count_figures.instance_figure(sample.image, seg.nuclei, seg.objects)
    assert Image.open(io.BytesIO(base64.b64decode(
        full.data[0].source.split(",", 1)[1]))).size == (256, 256)
    steps = count_figures.steps_figure(seg, max_side=64)
    assert all(t.dx == 4 for t in steps.data if t.type == "image")


def test_label_centroids_are_the_object_tables():
    from app_support import count_figures

    seg = segment(synthetic.fluorescence_image().image, synthetic.seed_params())
    fast, table = count_figures.label_centroids(seg.nuclei), seg.objects
    assert fast["label"].tolist() == table["label"].tolist()
    assert fast["nucleus_area"].tolist() == table["nucleus_area"].tolist()
    np.testing.assert_allclose(fast[["centroid_row", "centroid_col"]],
                               table[["centroid_row", "centroid_col"]])


def test_the_size_histogram_is_in_square_micrometres_with_a_pixel_size():
    """Issue 19 point 1: with a pixel size every area is in µm², plots included."""
    import pandas as pd

    from app_support import count_figures

    objects = pd.DataFrame({"nucleus_area": [100, 400]})
    in_um = count_figures.size_histogram(objects, pixel_size=0.5)
    assert list(in_um.data[0].x) == [25.0, 100.0]
    assert in_um.layout.xaxis.title.text == "area (µm²)"
    in_px = count_figures.size_histogram(objects)
    assert list(in_px.data[0].x) == [100.0, 400.0]
    assert "no pixel size" in in_px.layout.xaxis.title.text
