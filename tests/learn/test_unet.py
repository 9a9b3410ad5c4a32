"""Tests of cellseg_core.learn.unet (the small U-Net, the `deep` extra): skipped without PyTorch."""
from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.slow  # trains models / starts interpreters: run by CI, not the quick loop

torch = pytest.importorskip("torch")

from cellseg_core import Segmentation  # noqa: E402
from cellseg_core.learn import PixelClassifier, FeatureSettings, load_model  # noqa: E402
from cellseg_core.params import CleanupParams  # noqa: E402
from cellseg_core.learn import ProbabilityEnsemble, UNetModel  # noqa: E402
from tests._support.toys import toy_set  # noqa: E402


def _toy(n=6, size=48, seed=0):
    """The toy set of tests/_support/toys.py, six gray images with larger nuclei."""
    return toy_set(n, size, seed, nucleus_div=9, tint=(1.0, 1.0, 1.0))


@pytest.fixture(scope="module")
def toy_unet():
    images, masks = _toy()
    model = UNetModel(scale=0.5, epochs=25, batch_size=3, learning_rate=5e-3,
                      cleanup=CleanupParams())
    return model.fit(images, masks, rng=1), images, masks


def test_unet_learns_toy_and_returns_segmentation(toy_unet):
    model, images, masks = toy_unet
    assert model.epochs_run_ == 25 and model.fit_seconds_ > 0
    small = model.predict_small(images[0])
    assert small.shape == (24, 24, 3) and small.dtype == np.float32
    np.testing.assert_allclose(small.sum(-1), 1, atol=1e-4)
    seg = model.segment(images[0])
    assert isinstance(seg, Segmentation)
    assert seg.labels.shape == (48, 48) and seg.labels.dtype == np.uint8
    accuracy = np.mean([(model.segment(im).labels == m).mean() for im, m in zip(images, masks)])
    assert accuracy > 0.85, accuracy
    assert seg.nuclei.max() >= 1  # the dark nucleus is found as an instance


def test_odd_sizes_and_gray_images(toy_unet):
    model = toy_unet[0]
    image = np.random.default_rng(0).random((37, 51)).astype(np.float32)
    assert model.segment(image).labels.shape == (37, 51)
    assert model.predict_proba(image).shape == (37, 51, 3)


def test_save_load_identical_prediction(toy_unet, tmp_path):
    model, images, _ = toy_unet
    path = model.save(tmp_path / "toy.unet")
    loaded = load_model(path)
    assert isinstance(loaded, UNetModel) and loaded.config == model.config
    np.testing.assert_array_equal(loaded.predict_proba(images[1]), model.predict_proba(images[1]))
    np.testing.assert_array_equal(loaded.segment(images[1]).labels,
                                  model.segment(images[1]).labels)
    assert isinstance(UNetModel.load(path), UNetModel)
    assert isinstance(load_model(path.read_bytes()), UNetModel)  # the app's upload path


def test_corrupted_and_foreign_files_refused(toy_unet, tmp_path):
    model = toy_unet[0]
    data = model.to_bytes()
    bad = tmp_path / "bad.unet"
    bad.write_bytes(data[:-100])
    with pytest.raises(ValueError, match="corrupted"):
        load_model(bad)
    flipped = bytearray(data)
    flipped[-50] ^= 0xFF
    with pytest.raises(ValueError, match="checksum"):
        load_model(bytes(flipped))
    raw = tmp_path / "raw.pt"
    torch.save(model.net_.state_dict(), raw)  # a bare torch file is not a cellseg model
    with pytest.raises(ValueError, match="not a cellseg model"):
        load_model(raw)
    pc = PixelClassifier(FeatureSettings(scale=1, sigma_max=2), n_estimators=5)
    images, masks = _toy(n=2)
    pc_path = pc.fit(images, masks, rng=0).save(tmp_path / "pc.model")
    with pytest.raises(ValueError, match="not a UNetModel"):
        UNetModel.load(pc_path)


def test_unet_refuses_bad_input():
    with pytest.raises(ValueError, match="scale"):
        UNetModel(scale=0)
    with pytest.raises(ValueError, match="epochs"):
        UNetModel(epochs=0)
    with pytest.raises(ValueError, match="not fitted"):
        UNetModel().segment(np.zeros((16, 16, 3)))
    images, masks = _toy(n=2)
    masks[0] = masks[0].copy()
    masks[0][0, 0] = 255
    with pytest.raises(ValueError, match="classes 0, 1, 2"):
        UNetModel(epochs=1).fit(images, masks)


def test_ensemble_averages_probabilities(toy_unet):
    model, images, masks = toy_unet
    ens = ProbabilityEnsemble([model, model], weights=[1, 3], cleanup=CleanupParams())
    np.testing.assert_allclose(ens.predict_proba(images[0]), model.predict_proba(images[0]),
                               atol=1e-6)
    np.testing.assert_array_equal(ens.segment(images[0]).labels, model.segment(images[0]).labels)
    with pytest.raises(ValueError, match="weights"):
        ProbabilityEnsemble([model], weights=[1, 2])


def test_cli_train_method_unet_then_evaluate(voced, tmp_path, capsys):
    from cellseg_core.cli import main

    out = tmp_path / "voced.unet"
    assert main(["train", str(voced), "--out", str(out), "--method", "unet", "--limit", "4",
                 "--epochs", "2", "--seed", "3"]) == 0
    captured = capsys.readouterr()
    assert "UNetModel" in captured.err and "mean_dice" in captured.out
    assert isinstance(load_model(out), UNetModel)
    assert main(["evaluate", str(voced), "--split", "test", "--model", str(out), "--json"]) == 0
    assert '"n_images": 40' in capsys.readouterr().out


# --- the ensemble as one model file --------------------------------------------------------

@pytest.fixture(scope="module")
def toy_ensemble(toy_unet):
    unet, images, masks = toy_unet
    pc = PixelClassifier(FeatureSettings(scale=1, sigma_max=4), n_estimators=10,
                         auto_context=True, context_sigma_max=4, cleanup=CleanupParams())
    pc.fit(images, masks, rng=0)
    return ProbabilityEnsemble([pc, unet], weights=[0.5, 0.5], cleanup=CleanupParams())


def test_ensemble_file_round_trip(toy_ensemble, toy_unet, tmp_path):
    ens = toy_ensemble
    images = toy_unet[1]
    path = ens.save(tmp_path / "ens.model")
    loaded = load_model(path)
    assert isinstance(loaded, ProbabilityEnsemble)
    assert [type(m) for m in loaded.models] == [PixelClassifier, UNetModel]
    assert loaded.models[0].auto_context and loaded.cleanup == ens.cleanup
    np.testing.assert_allclose(loaded.weights, ens.weights)
    np.testing.assert_array_equal(loaded.predict_proba(images[0]), ens.predict_proba(images[0]))
    np.testing.assert_array_equal(load_model(path.read_bytes()).segment(images[1]).labels,
                                  ens.segment(images[1]).labels)


def test_ensemble_file_refusals(toy_ensemble, tmp_path, monkeypatch):
    from cellseg_core.learn import modelfile

    data = toy_ensemble.to_bytes()
    with pytest.raises(ValueError, match="corrupted model file"):
        load_model(data[:-10])
    flipped = bytearray(data)
    flipped[-5000] ^= 0xFF
    with pytest.raises(ValueError, match="checksum"):
        load_model(bytes(flipped))
    # A member from another scikit-learn version is refused as it would be alone.
    monkeypatch.setattr(modelfile, "_sklearn_version", lambda: "0.0.1")
    with pytest.raises(ValueError, match=r"member 1 \(PixelClassifier\).*scikit-learn"):
        load_model(data)
    monkeypatch.undo()
    with pytest.raises(ValueError, match="cannot be saved"):
        ProbabilityEnsemble([toy_ensemble]).to_bytes()


def test_ensemble_fit_fits_every_member():
    images, masks = _toy(n=4)
    ens = ProbabilityEnsemble([
        PixelClassifier(FeatureSettings(scale=1, sigma_max=2), n_estimators=5),
        UNetModel(scale=0.5, epochs=2, batch_size=2)])
    seen = []
    ens.fit(images, masks, rng=0, progress=lambda f, m: seen.append((f, m)))
    assert all(m.fit_seconds_ is not None for m in ens.models) and ens.fit_seconds_ > 0
    assert seen[-1][0] == 1.0 and [f for f, _ in seen] == sorted(f for f, _ in seen)
    assert any("UNetModel (2/2)" in m for _, m in seen)
    assert ens.segment(images[0]).labels.shape == masks[0].shape


def test_cli_train_method_ensemble_one_file(voced, tmp_path, capsys):
    from cellseg_core.cli import main

    out = tmp_path / "voced.ensemble"
    assert main(["train", str(voced), "--out", str(out), "--method", "ensemble",
                 "--auto-context", "--limit", "4", "--epochs", "1", "--n-estimators", "5",
                 "--seed", "3"]) == 0
    captured = capsys.readouterr()
    assert "ProbabilityEnsemble" in captured.err and "mean_dice" in captured.out
    model = load_model(out)
    assert isinstance(model, ProbabilityEnsemble)
    assert [type(m) for m in model.models] == [PixelClassifier, UNetModel]
    assert model.models[0].auto_context


def test_cli_train_ensemble_with_two_unets_seeds_each_apart(voced, tmp_path, capsys):
    from cellseg_core.cli import main

    out = tmp_path / "two.ensemble"
    assert main(["train", str(voced), "--out", str(out), "--method", "ensemble",
                 "--unets", "2", "--limit", "4", "--epochs", "1", "--n-estimators", "5"]) == 0
    model = load_model(out)
    assert [type(m) for m in model.models] == [PixelClassifier, UNetModel, UNetModel]
    np.testing.assert_allclose(model.weights, [1 / 3] * 3)
    first, second = (dict(m.net_.state_dict()) for m in model.models[1:])
    assert not np.allclose(first["enc1.0.weight"].numpy(), second["enc1.0.weight"].numpy())
    capsys.readouterr()
    assert main(["train", str(voced), "--out", str(out), "--method", "ensemble",
                 "--unets", "0"]) == 2
    assert "--unets must be 1 to 8" in capsys.readouterr().err
