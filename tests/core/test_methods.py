"""cellseg_core.methods: Params and learned models behind one Segmenter interface, loaded
from what a user names, with one provenance block wherever params.json is written."""
from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from cellseg_core import methods
from cellseg_core.batch import run_batch
from cellseg_core.data import Dataset
from cellseg_core.evaluation import evaluate
from cellseg_core.learn import FeatureSettings, KMeansBaseline, PixelClassifier, train_on_dataset
from cellseg_core.methods import (ModelMethod, ParamsMethod, Segmenter, Untrained, compare,
                                  load_method)
from cellseg_core.params import CleanupParams, Params
from cellseg_core.pipeline import segment
from cellseg_core.presets import get_preset

KEYS = {"cellseg_version", "method", "kind", "preset", "params", "file", "sha256", "model",
        "model_sha256"}


def _toy(n=4, seed=0):
    rng = np.random.default_rng(seed)
    images, masks = [], []
    for _ in range(n):
        img = np.full((32, 32, 3), 0.9, np.float32)
        mask = np.zeros((32, 32), np.uint8)
        r, c = rng.integers(6, 12, 2)
        img[r:r + 16, c:c + 16] = 0.6
        mask[r:r + 16, c:c + 16] = 1
        img[r + 5:r + 11, c + 5:c + 11] = 0.2
        mask[r + 5:r + 11, c + 5:c + 11] = 2
        images.append(img + rng.normal(0, 0.01, img.shape).astype(np.float32))
        masks.append(mask)
    return images, masks


@pytest.fixture(scope="module")
def toy():
    images, masks = _toy()
    return Dataset.from_arrays("toy", images, masks=masks,
                               split={"train": ["000", "001", "002"], "test": ["003"]})


@pytest.fixture(scope="module")
def model_file(tmp_path_factory, toy):
    model = PixelClassifier(FeatureSettings(scale=1, sigma_max=2), n_estimators=5,
                            cleanup=CleanupParams())
    train_on_dataset(toy, model=model, rng=0)
    path = tmp_path_factory.mktemp("m") / "toy.cellseg-model"
    model.save(path)
    return path


def test_a_preset_name_is_a_params_method_with_its_preset():
    m = load_method("lab03v2")
    assert isinstance(m, ParamsMethod) and isinstance(m, Segmenter)
    assert m.params == get_preset("lab03v2") and m.name == "lab03v2"
    block = m.describe()
    assert set(block) == KEYS
    assert (block["kind"], block["preset"], block["model"]) == ("params", "lab03v2", None)
    assert block["params"] == get_preset("lab03v2").to_dict()


def test_a_params_file_records_its_name_and_checksum(tmp_path):
    path = tmp_path / "tuned.json"
    path.write_text(get_preset("lab02").with_values({"threshold.t_nuc": 0.35}).to_json())
    m = load_method(str(path))
    assert m.params.threshold.t_nuc == 0.35
    block = m.describe()
    assert block["file"] == str(path)
    assert block["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    # A run's params.json (a provenance block) reads back as the same params.
    again = tmp_path / "params.json"
    again.write_text(json.dumps(block))
    assert load_method(params=str(again)).params == m.params


def test_a_model_file_is_a_model_method(model_file, toy):
    m = load_method(str(model_file))
    assert isinstance(m, ModelMethod) and m.params is None
    block = m.describe()
    assert set(block) == KEYS
    assert block["kind"] == "PixelClassifier" and block["model"] == str(model_file)
    assert block["model_sha256"] == hashlib.sha256(model_file.read_bytes()).hexdigest()
    seg = m.segment(toy.image("003"))
    assert seg.method == "PixelClassifier/boosting" and seg.thresholds == {}
    assert load_method(model=str(model_file)).describe() == block


def test_segmentation_records_its_method():
    image = np.array([[0.2, 0.5, 0.9]], np.float32)
    assert segment(image).method == "params"
    assert load_method("lab02").segment(image).method == "params"


def test_builtin_models_plug_in_with_one_line(monkeypatch, model_file):
    with pytest.raises(ValueError, match=r"unknown built-in model 'toy'; valid: \['builtin:nuclei'\]"):
        load_method("builtin:toy")
    monkeypatch.setitem(methods.BUILTIN_MODELS, "toy",
                        lambda: PixelClassifier.load(model_file))
    m = load_method("builtin:toy")
    assert m.name == "builtin:toy" and m.describe()["kind"] == "PixelClassifier"


@pytest.mark.parametrize("spec, match", [
    ("lab04", "not a preset"),
    ("missing.json", "no such parameters file"),
    ("{not json", "not valid JSON"),
])
def test_bad_specs_say_what_they_expected(spec, match):
    with pytest.raises(ValueError, match=match):
        load_method(spec)


def test_only_one_method_at_a_time():
    with pytest.raises(ValueError, match="only one of"):
        load_method(preset="lab02", params=Params())
    assert load_method().params == Params()
    with pytest.raises(TypeError, match="segment"):
        methods.as_segmenter("lab02")


def test_evaluate_takes_a_params_method_like_its_params(toy):
    by_params = evaluate(toy, None, get_preset("lab02"), cache={})
    by_method = evaluate(toy, None, load_method("lab02"), cache={})
    assert by_method.summary["exact_path"] and by_params.summary["exact_path"]
    np.testing.assert_array_equal(by_method.confusion, by_params.confusion)


def test_compare_fits_untrained_methods_on_the_train_split(toy):
    seen = []
    results, fitted = compare(toy, ["003"], {"lab02": load_method("lab02"),
                                             "k-means": Untrained("k-means", KMeansBaseline)},
                              cache={}, progress=lambda d, t, text: seen.append((d, t)))
    assert list(results) == ["lab02", "k-means"] and list(fitted) == ["k-means"]
    expected = train_on_dataset(toy, ["000", "001", "002"], model=KMeansBaseline(), rng=0)
    assert results["k-means"].summary["mean_dice"] == pytest.approx(
        evaluate(toy, ["003"], expected, cache={}).summary["mean_dice"], abs=1e-12)
    assert results["lab02"].summary["mean_dice"] == evaluate(
        toy, ["003"], get_preset("lab02"), cache={}).summary["mean_dice"]
    assert seen[-1] == (2, 2)


def test_batch_params_json_is_the_methods_provenance(tmp_path, model_file, toy):
    image = tmp_path / "in" / "a.npy"
    image.parent.mkdir()
    np.save(image, toy.image("000"))
    for method in (load_method("lab03v2"), load_method(str(model_file))):
        out = tmp_path / method.name
        run_batch([image], out, method)
        saved = json.loads((out / "params.json").read_text())
        # What was measured with it sits beside the method (issue 19: pixel size, cut-offs).
        assert saved.pop("measurements") == {
            "pixel_size_um": None, "ratio_flags": {"schema": 1, "atypia": 0.5, "high_grade": 0.7}}
        assert saved == method.describe()
