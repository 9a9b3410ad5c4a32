"""One-page HTML reports (cellseg_core.report): self-contained, escaped, with the numbers,
their definitions, the flagged cells and the provenance."""
from __future__ import annotations

import base64
import hashlib
import io
import json
import re
from html.parser import HTMLParser

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from cellseg_core import __version__
from cellseg_core.io import tiff_bytes, write_bytes_atomic
from cellseg_core.report import (CLASS_COLORS, DEFINITIONS, flag_columns, image_report,
                                 overlay_thumbnail, run_report)

EVIL = '<script>alert("x")</script>&'


class _Tags(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.images = [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        if tag == "img":
            self.images.append(dict(attrs)["src"])


def _parse(page: str) -> _Tags:
    parser = _Tags()
    parser.feed(page)
    return parser


def toy():
    labels = np.zeros((20, 30), np.uint8)
    nuclei = np.zeros(labels.shape, np.int32)
    labels[2:10, 2:12] = 1
    labels[4:7, 4:8] = 2
    nuclei[4:7, 4:8] = 1
    labels[10:18, 15:28] = 1
    labels[12:16, 18:22] = 2
    nuclei[12:16, 18:22] = 2
    objects = pd.DataFrame({"label": [1, 2], "nucleus_area": [12.0, 16.0],
                            "nc_ratio": [0.2, np.nan], "flag_high_grade": [False, True],
                            "class": ["tumour", EVIL]})
    return labels, nuclei, objects


def test_image_report_numbers_definitions_flags_provenance():
    labels, nuclei, objects = toy()
    method = {"method": "my preset", "kind": "PixelClassifier", "model": "m.skops",
              "model_sha256": "ab" * 32, "cellseg_version": "0.0.9", "params": None}
    page = image_report(np.full(labels.shape, 0.5), labels, nuclei, objects, name="slide 1",
                        summary={"n_nuclei": 2, "nc_ratio": 0.25}, method=method,
                        pixel_size=0.25, warnings=["watch out"], date="2026-12-02")
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert DEFINITIONS["nc_ratio"] in page.replace("&#x27;", "'")
    assert "<td>nc_ratio</td><td class=n>0.25</td>" in page
    assert "pixel size 0.25 µm" in page and "watch out" in page
    # Flags: one cell of two, and the flagged cell painted red in the picture.
    assert "<td>flag_high_grade</td><td class=n>1 of 2</td><td class=n>50.0%</td>" in page
    # Per-cell medians: NaN left out of the N/C (n = 1).
    assert re.search(r"<td>nc_ratio</td><td class=n>1</td><td class=n>0.2</td>", page)
    assert "abababab" in page and "m.skops" in page and "0.0.9" in page and __version__ in page
    assert "2026-12-02" in page and "Measurements for review, not a diagnosis." in page
    # Self-contained: the one picture is inline, no script, no external resource.
    parsed = _parse(page)
    assert "script" not in parsed.tags and len(parsed.images) == 1
    assert parsed.images[0].startswith("data:image/png;base64,")
    assert not re.search(r"(src|href)=['\"]?https?:", page)
    picture = np.asarray(Image.open(io.BytesIO(base64.b64decode(parsed.images[0].split(",")[1]))))
    assert picture.shape == (20, 30, 3)
    # Gray 0.5 everywhere: the flagged nucleus 2 is tinted red, nucleus 1 not; outlines
    # in the class colours.
    assert tuple(picture[13, 19]) == (191, 84, 84) and tuple(picture[5, 5]) == (128, 128, 128)
    assert tuple(picture[4, 4]) == CLASS_COLORS[2] and tuple(picture[2, 2]) == CLASS_COLORS[1]


def test_every_user_string_is_escaped():
    labels, nuclei, objects = toy()
    method = {"method": EVIL, "kind": "params", "preset": EVIL,
              "params": {"note": EVIL}, "file": EVIL, "sha256": EVIL}
    page = image_report(None, labels, nuclei, objects, name=EVIL, method=method,
                        summary={EVIL: 1}, warnings=[EVIL], date=EVIL)
    assert "<script>" not in page and "script" not in _parse(page).tags
    assert page.count("&lt;script&gt;") >= 7


def test_flag_columns():
    table = pd.DataFrame({"label": [1], "flag_a": [1], "b_flag": [0], "c": [True], "d": [2.0]})
    assert flag_columns(table) == ["flag_a", "b_flag", "c"]


def test_overlay_thumbnail_bounded_and_input_untouched():
    labels = np.zeros((1200, 300), np.uint8)
    labels[100:300, 50:150] = 2
    image = np.random.default_rng(0).random((1200, 300, 3)).astype(np.float32)
    before = image.copy()
    small = overlay_thumbnail(image, labels, max_side=400)
    assert small.shape == (400, 100, 3) and small.dtype == np.uint8
    np.testing.assert_array_equal(image, before)


def test_run_report_from_an_output_folder(tmp_path):
    labels, nuclei, objects = toy()
    write_bytes_atomic(tmp_path / "labels" / "007.tif", tiff_bytes(labels))
    write_bytes_atomic(tmp_path / "nuclei" / "007.tif", tiff_bytes(nuclei))
    (tmp_path / "params.json").write_text(json.dumps(
        {"method": "lab02", "kind": "params", "preset": "lab02", "params": {"mode": "cytology"},
         "cellseg_version": "0.1.0"}))
    pd.DataFrame({"image": ["007", "bad"], "status": ["ok", "failed: unreadable"],
                  "n_nuclei": [2, None], "nc_ratio": [0.5, None]}).to_csv(
        tmp_path / "images.csv", index=False)
    objects.insert(0, "image", "007")
    objects.to_csv(tmp_path / "objects.csv", index=False)
    page = run_report(tmp_path, date="2026-12-02")
    assert "<td>images failed</td><td class=n>1</td>" in page
    assert "failed: unreadable" in page and "lab02" in page
    assert len(_parse(page).images) == 1  # the stem "007" is read as text, not the number 7
    assert "1 of 2" in page
    with pytest.raises(ValueError, match="no params.json"):
        run_report(tmp_path / "labels")
