"""`cellseg train`, then `cellseg segment --model` and `cellseg evaluate --model` end to end
on a few VocEd training images (small settings: seconds, not minutes)."""
from __future__ import annotations

import json

import numpy as np
import pytest

pytestmark = pytest.mark.slow  # trains models / starts interpreters: run by CI, not the quick loop
import tifffile

from cellseg_core.cli import main
from cellseg_core.data import open_dataset
from cellseg_core.learn import PixelClassifier, load_model
from cellseg_core.evaluation import evaluate

SMALL = ["--limit", "6", "--n-estimators", "15", "--scale", "0.25", "--seed", "3"]


@pytest.fixture(scope="module")
def trained(voced, tmp_path_factory):
    """(model path, stdout, stderr, exit code) of one small `cellseg train` run."""
    out = tmp_path_factory.mktemp("model") / "voced.model"
    import contextlib
    import io

    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = main(["train", str(voced), "--out", str(out), *SMALL])
    return out, stdout.getvalue(), stderr.getvalue(), code


def test_train_saves_a_model_and_prints_test_scores(trained, voced):
    path, stdout, stderr, code = trained
    assert code == 0, stderr
    model = load_model(path)
    assert isinstance(model, PixelClassifier)
    assert model.n_estimators == 15 and model.settings.channels == ("rgb", "lab")
    assert "on 6 image(s)" in stderr and "100%" in stderr  # progress on stderr
    printed = dict(line.split(None, 1) for line in stdout.strip().splitlines())
    assert int(printed["test_images"]) == 40
    # The printed test score is evaluate()'s on the test split, and it is a real model.
    ds = open_dataset(voced)
    expected = evaluate(ds, ds.split["test"], model).summary["mean_dice"]
    assert float(printed["mean_dice"]) == pytest.approx(expected, abs=1e-4)
    assert expected > 0.75


def test_segment_with_model_writes_the_models_labels(trained, voced, tmp_path, capsys):
    path = trained[0]
    out = tmp_path / "out"
    images = [voced / "images" / "000.png", voced / "images" / "001.png"]
    assert main(["segment", *map(str, images), "--model", str(path), "--out", str(out)]) == 0
    model = load_model(path)
    ds = open_dataset(voced)
    for ident in ("000", "001"):
        labels = tifffile.imread(out / "labels" / f"{ident}.tif")
        np.testing.assert_array_equal(labels, model.segment(ds.image(ident)).labels)
    params = json.loads((out / "params.json").read_text())
    assert params["model"] == str(path) and len(params["model_sha256"]) == 64


def test_evaluate_with_model_equals_evaluate(trained, voced, capsys):
    path = trained[0]
    capsys.readouterr()
    assert main(["evaluate", str(voced), "--split", "test", "--model", str(path),
                 "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)["summary"]
    ds = open_dataset(voced)
    expected = evaluate(ds, ds.split["test"], load_model(path)).summary
    assert summary["n_images"] == 40 and summary["method"] == str(path)
    assert summary["mean_dice"] == pytest.approx(expected["mean_dice"], abs=1e-9)


@pytest.mark.parametrize("argv, message", [
    (["--features", "rgb,hsv"], "unknown"),
    (["--limit", "0"], "--limit"),
    (["--split", "nope"], "--split"),
])
def test_train_usage_errors_exit_2(voced, tmp_path, capsys, argv, message):
    assert main(["train", str(voced), "--out", str(tmp_path / "m"), *argv]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "m").exists()


def test_a_foreign_model_file_is_a_usage_error(voced, tmp_path, capsys):
    bad = tmp_path / "bad.model"
    bad.write_bytes(b"not a model")
    assert main(["evaluate", str(voced), "--model", str(bad)]) == 2
    assert "not a cellseg model file" in capsys.readouterr().err


def test_train_auto_context_then_segment(voced, tmp_path, capsys):
    out = tmp_path / "ac.model"
    assert main(["train", str(voced), "--out", str(out), "--auto-context", "--limit", "4",
                 "--n-estimators", "10", "--seed", "1"]) == 0
    captured = capsys.readouterr()
    assert "auto-context" in captured.err and "mean_dice" in captured.out
    model = load_model(out)
    assert isinstance(model, PixelClassifier) and model.auto_context
    assert len(model.stage1_) == 2  # 4 images, two folds
    seg_out = tmp_path / "seg"
    image = voced / "images" / "000.png"
    assert main(["segment", str(image), "--model", str(out), "--out", str(seg_out)]) == 0
    labels = tifffile.imread(seg_out / "labels" / "000.tif")
    np.testing.assert_array_equal(labels, model.segment(open_dataset(voced).image("000")).labels)
