"""The built-in nucleus model as a method: ``builtin:nuclei`` in the library, the CLI and
the app, with its provenance (file name and SHA-256 of the shipped ONNX file)."""
from __future__ import annotations

import hashlib
import json

import numpy as np
import tifffile

from app_support import methods as app_methods
from app_support.safe_text import md
from cellseg_core.cli import main
from cellseg_core.data.synthetic import fluorescence_set
from cellseg_core.io import write_bytes_atomic, tiff_bytes
from cellseg_core.learn import BUILTIN_MODEL
from cellseg_core.methods import load_method
from cellseg_core.metrics import match_instances
from tests._support.apptest import numbers_shown, page_app, run

SHA = hashlib.sha256(BUILTIN_MODEL.read_bytes()).hexdigest()


def test_builtin_nuclei_is_a_method_with_provenance():
    method = load_method("builtin:nuclei")
    block = method.describe()
    assert (block["method"], block["kind"], block["file"]) == ("builtin:nuclei", "NucleusModel",
                                                               "nuclei.onnx")
    assert block["sha256"] == SHA
    assert load_method(model="builtin:nuclei").describe() == block


def test_builtin_nuclei_finds_the_synthetic_nuclei():
    sample = fluorescence_set(1)[0]
    seg = load_method("builtin:nuclei").segment(sample.image)
    assert seg.method.startswith("NucleusModel/")
    assert set(np.unique(seg.labels)) <= {0, 2}
    assert match_instances(seg.nuclei, sample.labels)["f1"] >= 0.6  # measured 0.71


def test_cli_segment_with_the_builtin_model(tmp_path):
    sample = fluorescence_set(1)[0]
    image = tmp_path / "in" / "cells.tif"
    image.parent.mkdir()
    write_bytes_atomic(image, tiff_bytes((np.clip(sample.image, 0, 1) * 255).astype(np.uint8)))
    out = tmp_path / "out"
    assert main(["segment", str(image), "--model", "builtin:nuclei", "--out", str(out)]) == 0
    nuclei = tifffile.imread(out / "nuclei" / "cells.tif")
    assert nuclei.max() >= 5
    record = json.loads((out / "params.json").read_text())
    assert record["method"] == "builtin:nuclei" and record["sha256"] == SHA


def test_builtin_model_is_offered_by_every_page_catalogue():
    assert "nuclei (built-in model)" in app_methods.BUILTIN


def test_explore_runs_the_builtin_model_on_the_demo_image(monkeypatch):
    at = run(page_app(monkeypatch, "explore.py"))
    at = run(at.selectbox(key="explore.model").set_value("nuclei (built-in model)"))
    shown = [m.value for m in at.markdown]
    assert any(f"learned model **{md('nuclei (built-in model)')}**" in text for text in shown), shown
    numbers = numbers_shown(at)  # a model's numbers are a preset's: the same tables
    nuclei = next((v for k, v in numbers.items() if k.startswith("Nuclei")), None)
    assert nuclei is not None and int(nuclei.replace(",", "")) > 0, numbers
