"""What a person reads (issue 22 point 7): every column the pages show has words, the
README's column dictionary is the one the pages use, download names say what they hold."""
from __future__ import annotations

import datetime
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from app_support import wording
from cellseg_core import segment
from cellseg_core.batch import IMAGE_COLUMNS, OBJECTS_COLUMNS, BatchItem, run_batch
from cellseg_core.data import demo_datasets
from cellseg_core.evaluation import evaluate
from cellseg_core.presets import get_preset

README = Path(__file__).resolve().parents[2] / "README.md"


@pytest.fixture(scope="module")
def tables(tmp_path_factory):
    """The tables the pages and the CLI write, on one demo image."""
    ds = demo_datasets()["demo-cytology"]
    image_id = ds.ids[0]
    seg = segment(ds.image(image_id), get_preset("lab02"))
    result = run_batch([BatchItem(image_id, ds.image(image_id), ds.mask(image_id), image_id)],
                       tmp_path_factory.mktemp("batch"), get_preset("lab02"))
    ev = evaluate(ds, [image_id], get_preset("lab02"), cache={})
    return {"cells": seg.objects, "images.csv": result.images,
            "objects.csv": result.objects, "per image": ev.per_image}


def test_every_column_shown_has_words(tables):
    for name, table in tables.items():
        shown = wording.readable(table).columns
        machine = [c for c in shown if re.fullmatch(r"[a-z0-9_]+", c) and "_" in c]
        assert machine == [], f"{name}: shown as machine names: {machine}"
        assert list(table.columns) == list(tables[name].columns)  # input untouched


def test_readme_holds_the_column_dictionary_the_pages_use(tables):
    text = README.read_text(encoding="utf-8")
    assert wording.column_dictionary_markdown() in text
    csv_columns = set().union(*(t.columns for t in tables.values()), IMAGE_COLUMNS,
                              OBJECTS_COLUMNS)
    unknown = {c for c in csv_columns if wording.column_label(c) == c}
    assert unknown == set(), f"columns the dictionary does not explain: {unknown}"


def test_download_name_says_image_method_content_date():
    day = datetime.date(2026, 3, 4)
    assert wording.download_name("labels", "tif", image="voced-007", method="lab03v2",
                                 when=day) == "voced-007_lab03v2_2026-03-04_labels.tif"
    # odd characters in an uploaded file's name become underscores, nothing is empty
    assert wording.download_name("cells", "csv", image="my cell (1)", method="",
                                 when=day) == "my_cell_1_2026-03-04_cells.csv"
    today = datetime.datetime.now(datetime.timezone.utc).date()
    assert wording.download_name("x", "csv") == f"{today}_x.csv"


@pytest.mark.parametrize("names, expected", [
    (["a.png", "b.png"], ["a.png", "b.png"]),
    (["a.png", "a.png", "a.png"], ["a.png", "a-2.png", "a-3.png"]),
    (["a.png", "a-2.png", "a.tif"], ["a.png", "a-2.png", "a-3.tif"]),
])
def test_unique_upload_names(names, expected):
    out, renamed = wording.unique_upload_names(names)
    assert out == expected
    assert len({Path(n).stem for n in out}) == len(out)
    assert renamed == [(a, b) for a, b in zip(names, out) if a != b]


def test_params_label():
    preset = get_preset("lab02")
    assert wording.params_label("lab02", preset, preset) == "lab02"
    edited = preset.with_values({"threshold.t_nuc": 0.3})
    assert wording.params_label("lab02", edited, preset) == "lab02-edited"
