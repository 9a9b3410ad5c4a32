"""Training the nucleus model (issue 18 points 5-8): fine-tuning changes the weights and
writes a model the app and --model read; the DSB 2018 layout; compare_nuclei's numbers."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from skimage.io import imsave

from cellseg_core.cli import main
from cellseg_core.data import Dataset, open_dataset
from cellseg_core.data.synthetic import fluorescence_image
from cellseg_core.evaluation import compare_nuclei
from cellseg_core.learn import torch_available
from cellseg_core.learn.nuclei import NucleusModel
from cellseg_core.learn.nuclei_training import (BUILTIN_STATE, NucleusTrainingSettings,
                                                augmentation_preview, load_items,
                                                split_validation)
from cellseg_core.methods import OTSU_BASELINE, as_segmenter, load_method, nucleus_methods
from cellseg_core.metrics import average_precision, match_instances
from cellseg_core.params import Params
from cellseg_core.scale import median_diameter

REPO = Path(__file__).resolve().parents[2]
needs_torch = pytest.mark.skipif(not torch_available(),
                                 reason="PyTorch (the deep extra) is not installed")


def _toy(n=4, size=96):
    images, labels = [], []
    for seed in range(n):
        sample = fluorescence_image(seed, size=size, n_cells=4 if size >= 96 else 2)
        images.append(sample.image)
        labels.append(sample.labels.astype(np.int32))
    return images, labels


def _toy_items():
    """Two 64² fluorescence training items at model scale."""
    images, labels = _toy(2, 64)
    ds = Dataset.from_arrays("toy", images, instances=labels, kind="fluorescence")
    return load_items(ds, ds.ids, 20.0)


def _write_dsb(root: Path, images, labels, *, rgba=True) -> Path:
    """The DSB 2018 layout: <id>/images/<id>.png (RGBA, R=G=B) + one PNG per nucleus."""
    for k, (image, lab) in enumerate(zip(images, labels)):
        ident = f"{k:02x}ab"
        (root / ident / "images").mkdir(parents=True)
        (root / ident / "masks").mkdir()
        gray = (np.clip(image, 0, 1) * 255).astype(np.uint8)
        px = np.dstack([gray] * 3 + [np.full_like(gray, 255)]) if rgba else gray
        imsave(root / ident / "images" / f"{ident}.png", px, check_contrast=False)
        for obj in range(1, int(lab.max()) + 1):
            imsave(root / ident / "masks" / f"m{obj:03d}.png",
                   ((lab == obj) * 255).astype(np.uint8), check_contrast=False)
    return root


# --- the DSB 2018 layout ------------------------------------------------------------------
def test_dsb_layout_reads_images_and_paints_one_id_per_mask_file(tmp_path):
    images, labels = _toy(3, 64)
    root = _write_dsb(tmp_path / "stage1_train", images, labels)
    (root / "split.json").write_text(json.dumps({"train": ["00ab", "01ab"], "test": ["02ab"]}))
    ds = open_dataset(root)
    assert ds.ids == ["00ab", "01ab", "02ab"] and ds.kind == "fluorescence" and ds.has_masks
    assert ds.split == {"train": ["00ab", "01ab"], "test": ["02ab"]}
    for k, ident in enumerate(ds.ids):
        img, inst = ds.image(ident), ds.instances(ident)
        assert img.shape == (64, 64)  # RGBA with R = G = B is read as gray
        np.testing.assert_allclose(img, (np.clip(images[k], 0, 1) * 255).astype(np.uint8) / 255,
                                   atol=1e-6)
        # the same partition as the truth: ids may be renumbered, objects may not change
        assert inst.max() == labels[k].max()
        pairs = set(zip(inst[inst > 0].tolist(), labels[k][inst > 0].tolist()))
        assert len(pairs) == inst.max() and (inst > 0).sum() == (labels[k] > 0).sum()
        assert np.array_equal(ds.mask(ident), (labels[k] > 0).astype(np.uint8) * 2)


def test_dsb_layout_later_mask_wins_and_items_without_masks_have_no_truth(tmp_path):
    root = tmp_path / "dsb"
    img = np.zeros((8, 8), np.uint8)
    for ident, masks in (("x1", [(0, 4), (2, 6)]), ("x2", [])):
        (root / ident / "images").mkdir(parents=True)
        (root / ident / "masks").mkdir()
        imsave(root / ident / "images" / f"{ident}.png", img, check_contrast=False)
        for k, (a, b) in enumerate(masks):
            m = np.zeros((8, 8), np.uint8)
            m[a:b, a:b] = 255
            imsave(root / ident / "masks" / f"{k}.png", m, check_contrast=False)
    ds = Dataset.from_dsb(root)
    inst = ds.instances("x1")
    assert inst[0, 0] == 1 and inst[3, 3] == 2 and inst[5, 5] == 2 and inst[7, 7] == 0
    assert ds.instances("x2") is None and ds.mask("x2") is None


def test_dsb_layout_errors_name_the_folder(tmp_path):
    with pytest.raises(ValueError, match="DSB 2018 layout"):
        Dataset.from_dsb(tmp_path)
    with pytest.raises(ValueError, match="DSB 2018 layout"):
        open_dataset(tmp_path)


# --- compare on nuclei ----------------------------------------------------------------------
def test_compare_nuclei_table_equals_the_metrics_per_image():
    images, labels = _toy(3, 96)
    ds = Dataset.from_arrays("toy", images, instances=labels, kind="fluorescence")
    otsu = Params().with_values({"mode": "fluorescence", "threshold.method": "otsu"})
    high = Params().with_values({"mode": "fluorescence", "threshold.t_object": 0.9})
    out = compare_nuclei(ds, ds.ids, {"otsu": otsu, "high": high}, gallery_ids=["001"])
    assert out.summary["method"].tolist() == ["otsu", "high"]
    assert out.summary["images"].tolist() == [3, 3]
    from cellseg_core.pipeline import segment
    for name, params in (("otsu", otsu), ("high", high)):
        f1, ap, prec, rec, err = [], [], [], [], []
        for image, truth in zip(images, labels):
            pred = segment(image, params).nuclei
            m = match_instances(pred, truth)
            f1.append(m["f1"]), prec.append(m["precision"]), rec.append(m["recall"])
            ap.append(average_precision(pred, truth)), err.append(m["count_error"])
        row = out.summary.set_index("method").loc[name]
        assert row["F1@0.5"] == pytest.approx(np.mean(f1))
        assert row["DSB AP"] == pytest.approx(np.mean(ap))
        assert row["precision"] == pytest.approx(np.mean(prec))
        assert row["recall"] == pytest.approx(np.mean(rec))
        assert row["|count error|"] == pytest.approx(np.mean(np.abs(err)))
        assert row["count error"] == pytest.approx(np.mean(err))
        assert np.array_equal(out.gallery["001"][name], segment(images[1], params).nuclei)
    # the two methods really differ on this toy (the table is not one method twice)
    assert out.summary["F1@0.5"].nunique() == 2 or out.summary["DSB AP"].nunique() == 2


def test_compare_nuclei_gallery_includes_images_without_ground_truth():
    images, labels = _toy(2, 96)
    ds = Dataset.from_arrays("toy", images, instances=[labels[0], None], kind="fluorescence")
    ds._instance_ids = frozenset({"000"})  # the second image has no truth
    p = Params().with_values({"mode": "fluorescence", "threshold.method": "otsu"})
    out = compare_nuclei(ds, ds.ids, {"otsu": p}, gallery_ids=["001"])
    assert out.summary.loc[0, "images"] == 1
    assert out.gallery["001"]["otsu"].max() >= 1
    assert out.per_image.set_index("id").loc["001", "f1"] != out.per_image.loc[0, "f1"]


def test_nucleus_methods_are_the_built_in_model_the_textbook_baseline_and_the_auto_presets():
    methods = nucleus_methods()
    assert list(methods) == ["builtin:nuclei", OTSU_BASELINE, "auto-nuclei", "auto-fluorescence"]
    # The Otsu baseline is the textbook one, with the polarity read from each image:
    # it finds dark nuclei on a bright image, not only bright ones.
    image = np.ones((48, 48), np.float32)
    image[8:20, 8:20] = image[28:40, 26:38] = 0.2
    assert methods[OTSU_BASELINE].segment(image).nuclei.max() == 2
    assert methods[OTSU_BASELINE].params is None
    assert as_segmenter(methods[OTSU_BASELINE]) is methods[OTSU_BASELINE]


def test_compare_nuclei_needs_a_method():
    ds = Dataset.from_arrays("toy", [np.zeros((4, 4), np.float32)])
    with pytest.raises(ValueError, match="`methods` is empty"):
        compare_nuclei(ds, ds.ids, {})


# --- training pieces without torch ----------------------------------------------------------
def test_split_validation_holds_out_a_seeded_part_and_never_everything():
    ids = [f"{i:03d}" for i in range(20)]
    train, val = split_validation(ids, 0.15, rng=3)
    assert len(val) == 3 and sorted(train + val) == ids and not set(train) & set(val)
    assert split_validation(ids, 0.15, rng=3) == (train, val)
    assert split_validation(["a", "b"], 0.9, rng=0)[0]  # one left to train on
    with pytest.raises(ValueError, match="at least 2"):
        split_validation(["a"], 0.5)


def test_settings_refuse_bad_values_naming_them():
    with pytest.raises(ValueError, match="`epochs`"):
        NucleusTrainingSettings(epochs=0)
    with pytest.raises(ValueError, match="`val_fraction`"):
        NucleusTrainingSettings(val_fraction=1.0)
    with pytest.raises(ValueError, match="`crop` must be a multiple of 8"):
        NucleusTrainingSettings(crop=100)
    assert NucleusTrainingSettings().init_path == BUILTIN_STATE and BUILTIN_STATE.is_file()
    assert NucleusTrainingSettings(init=None).init_path is None
    with pytest.raises(ValueError, match="`lr_patience`"):
        NucleusTrainingSettings(lr_patience=0)


def test_cli_options_spell_the_training_settings():
    import argparse

    from cellseg_core.cli.train_nuclei import add_arguments, settings_from_args

    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    add_arguments(parser)
    default = settings_from_args(parser.parse_args([]))
    assert (default.lr_patience, default.patience, default.lr, default.init) == \
        (2, 5, 5e-4, "builtin")
    given = settings_from_args(parser.parse_args(["--lr-patience", "4", "--from-scratch"]))
    assert (given.lr_patience, given.lr, given.init) == (4, 2e-3, None)


def test_augmentation_preview_gives_crops_with_their_targets():
    images, labels = _toy(2, 96)
    ds = Dataset.from_arrays("toy", images, instances=labels, kind="fluorescence")
    items = load_items(ds, ds.ids, 20.0)
    assert abs(median_diameter(items[0][3]) - 20) < 2  # rescaled to the model's size
    crops = augmentation_preview(items, n=6, crop=64, rng=1)
    assert len(crops) == 6
    for x, target in crops:
        assert x.shape == (64, 64, 3) and 0 <= x.min() and x.max() <= 1
        assert set(np.unique(target)) <= {0, 1, 2}
    assert any((t == 2).any() for _, t in crops)  # nuclei (with boundaries) are seen
    again = augmentation_preview(items, n=6, crop=64, rng=1)
    assert all(np.array_equal(a[0], b[0]) for a, b in zip(crops, again))
    with pytest.raises(ValueError, match="no instance labels"):
        load_items(Dataset.from_arrays("bare", [images[0]]), ["000"])


# --- fine-tuning (torch) --------------------------------------------------------------------
@needs_torch
@pytest.mark.slow
def test_fine_tuning_a_few_steps_changes_the_weights_and_writes_a_usable_model(tmp_path):
    import torch

    from cellseg_core.learn.nuclei_training import train_nucleus_model

    images, labels = _toy(4, 96)
    ds = Dataset.from_arrays("toy", images, instances=labels, kind="fluorescence")
    settings = NucleusTrainingSettings(epochs=2, steps=2, batch=2, crop=64, val_fraction=0.25)
    events = []
    log = train_nucleus_model(ds, ds.ids, tmp_path / "toy.onnx", settings,
                              progress=events.append, checkpoint=tmp_path / "best.pt")
    kinds = [e["kind"] for e in events]
    assert kinds.count("step") == 4 and kinds.count("epoch") == 2 and kinds[-1] == "export"
    assert len(log["val_ids"]) == 1 and len(log["train_ids"]) == 3
    assert [e["epoch"] for e in log["epochs"]] == [0, 1]
    assert log["best"]["val_f1"] == max(e["val_f1"] for e in log["epochs"])
    model = NucleusModel(tmp_path / "toy.onnx")  # onnxruntime reads it, no torch
    assert model.metadata["init"] == "builtin" and model.metadata["trained_on"] == "toy"
    assert (model.decode, model.size_estimate, model.tta) == ("distance", "classical", 1)
    nuclei, _ = model.predict(images[0], diameter=median_diameter(labels[0]))
    assert nuclei.max() >= 1
    method = load_method(model=str(tmp_path / "toy.onnx"))  # what --model FILE.onnx does
    assert method.name == "toy.onnx" and method.model.path == tmp_path / "toy.onnx"
    # the best network's weights moved away from the built-in model's
    before = torch.load(BUILTIN_STATE, weights_only=True)["state_dict"]
    after = torch.load(tmp_path / "best.pt", weights_only=True)["state_dict"]
    changed = [k for k in before if before[k].dtype.is_floating_point
               and not torch.equal(before[k], after[k])]
    assert len(changed) > len(before) // 2


@needs_torch
@pytest.mark.slow
def test_stop_from_progress_keeps_the_best_network_so_far():
    from cellseg_core.learn.nuclei_training import fit_nucleus_net

    items = _toy_items()
    settings = NucleusTrainingSettings(epochs=5, steps=3, batch=1, crop=32)
    net, log = fit_nucleus_net(items[:1], items[1:], settings,
                               progress=lambda e: e["kind"] == "step" and e["step"] == 2)
    assert log["stopped"] == "stopped" and len(log["epochs"]) == 1
    assert log["best"]["epoch"] == 0 and not net.training


@needs_torch
@pytest.mark.slow
def test_another_training_target_sets_the_outputs_loss_and_validation_score():
    import torch
    from cellseg_core.learn.nuclei_training import TrainingTarget, fit_nucleus_net

    items = _toy_items()
    seen, scores = [], iter([0.2, 0.7, 0.4])

    def loss(out, classes, settings):   # foreground only, on the first of 2 outputs
        seen.append((tuple(out.shape), classes.shape))
        fg = torch.from_numpy((classes > 0).astype(np.float32))
        return torch.nn.functional.binary_cross_entropy_with_logits(out[:, 0], fg)

    def validate(net, val_items, diameter):
        return next(scores), {"toy": 0.0}

    settings = NucleusTrainingSettings(init=None, epochs=3, steps=2, batch=2, crop=32,
                                       patience=9)
    net, log = fit_nucleus_net(items[:1], items[1:], settings,
                               target=TrainingTarget(n_out=2, loss=loss, validate=validate))
    assert seen == [((2, 2, 32, 32), (2, 32, 32))] * 6
    assert [e["val_f1"] for e in log["epochs"]] == [0.2, 0.7, 0.4]
    assert log["best"] == {"epoch": 1, "val_f1": 0.7}
    with torch.no_grad():
        assert net(torch.zeros(1, 3, 32, 32)).shape == (1, 2, 32, 32)


@needs_torch
@pytest.mark.slow
def test_cli_train_unet_nuclei_on_a_dsb_folder_writes_onnx_and_scores_the_test_split(tmp_path,
                                                                                     capsys):
    images, labels = _toy(5, 96)
    root = _write_dsb(tmp_path / "dsb", images, labels)
    ids = sorted(p.name for p in root.iterdir())
    (root / "split.json").write_text(json.dumps({"train": ids[:4], "test": ids[4:]}))
    out = tmp_path / "mine.onnx"
    code = main(["train", str(root), "--method", "unet-nuclei", "--out", str(out),
                 "--epochs", "1", "--steps", "1", "--val-fraction", "0.25"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "fine-tuning the nucleus model on 4 image(s)" in captured.err
    assert "validation F1" in captured.err and out.is_file()
    lines = captured.out.strip().splitlines()
    assert lines[0].split()[:4] == ["method", "images", "F1@0.5", "DSB"]
    assert [line.split()[0] for line in lines[1:]] == [str(out), "builtin:nuclei"]
    assert all(line.split()[1] == "1" for line in lines[1:])  # one test image
    code = main(["segment", str(root / ids[4] / "images"), "--model", str(out),
                 "--out", str(tmp_path / "res")])
    assert code == 0
    assert (tmp_path / "res" / "nuclei" / f"{ids[4]}.tif").is_file()


def test_cli_unet_nuclei_refuses_an_out_file_that_is_not_onnx(tmp_path, capsys):
    images, labels = _toy(3, 64)
    root = _write_dsb(tmp_path / "dsb", images, labels)
    code = main(["train", str(root), "--method", "unet-nuclei", "--split", "all",
                 "--out", str(tmp_path / "m.cellseg-model")])
    assert code == 2 and "--out must name an .onnx file" in capsys.readouterr().err


def test_a_dsb_folder_under_cellseg_data_is_offered_as_a_dataset(tmp_path, monkeypatch):
    from cellseg_core.data import available_datasets

    images, labels = _toy(2, 64)
    _write_dsb(tmp_path / "stage1_train", images, labels)
    monkeypatch.setenv("CELLSEG_DATA", str(tmp_path))
    monkeypatch.delenv("CELLSEG_CONFIG", raising=False)
    found = available_datasets()
    assert "stage1_train" in found and found["stage1_train"].has_instances
    assert found["stage1_train"].ids == ["00ab", "01ab"]
