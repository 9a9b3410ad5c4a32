"""The `cellseg` command and the batch runner, end to end on a few VocEd images."""
from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile

from cellseg_core import batch
from cellseg_core.batch import IMAGE_COLUMNS, OBJECTS_COLUMNS, process_image, run_batch
from cellseg_core.cli import main, parse_space
from cellseg_core.io import read_image, read_mask
from cellseg_core.metrics import score_labels
from cellseg_core.pipeline import segment
from cellseg_core.presets import PRESETS, get_preset

REPO = Path(__file__).resolve().parents[2]
STEMS = ["000", "001", "002", "005", "010", "121"]  # 121: mask without nucleus


def _tree(folder: Path) -> dict:
    """Every file under `folder` (hidden resume markers included) -> bytes."""
    return {str(p.relative_to(folder)): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _leftovers(folder: Path) -> list:
    return sorted(str(p) for p in folder.rglob("*.part"))


@pytest.fixture(scope="module")
def dataset(voced, tmp_path_factory) -> Path:
    """A temp dataset folder with a few VocEd images and their masks."""
    root = tmp_path_factory.mktemp("data")
    for sub in ("images", "masks"):
        (root / sub).mkdir()
        for stem in STEMS:
            shutil.copy(voced / sub / f"{stem}.png", root / sub / f"{stem}.png")
    return root


@pytest.fixture(scope="module")
def reference(dataset, tmp_path_factory) -> Path:
    """One clean in-process run with lab03v2 (jobs 1)."""
    out = tmp_path_factory.mktemp("ref") / "out"
    assert main(["segment", str(dataset), "--preset", "lab03v2", "--out", str(out)]) == 0
    return out


# --- outputs -------------------------------------------------------------------------------
def test_segment_writes_every_file(reference):
    assert sorted(p.name for p in (reference / "labels").iterdir()) == [f"{s}.tif" for s in STEMS]
    assert sorted(p.name for p in (reference / "nuclei").iterdir()) == [f"{s}.tif" for s in STEMS]
    for name in ("images.csv", "objects.csv", "params.json"):
        assert (reference / name).is_file()
    assert _leftovers(reference) == []


def test_tiffs_equal_segment(reference, dataset):
    params = get_preset("lab03v2")
    for stem in STEMS:
        seg = segment(read_image(dataset / "images" / f"{stem}.png"), params)
        with tifffile.TiffFile(reference / "labels" / f"{stem}.tif") as tif:
            page = tif.pages[0]
            labels = page.asarray()
            assert page.photometric == tifffile.PHOTOMETRIC.MINISBLACK
            assert page.colormap is None
        nuclei = tifffile.imread(reference / "nuclei" / f"{stem}.tif")
        assert labels.dtype == np.uint8 and set(np.unique(labels)) <= {0, 1, 2}
        np.testing.assert_array_equal(labels, seg.labels)
        assert nuclei.dtype == np.uint16
        np.testing.assert_array_equal(nuclei, seg.nuclei)


def test_images_csv_columns_rows_and_dice(reference, dataset):
    table = pd.read_csv(reference / "images.csv", dtype={"image": str})
    assert list(table.columns) == IMAGE_COLUMNS
    assert table["image"].tolist() == STEMS  # sorted by name
    assert (table["status"] == "ok").all() and table["has_mask"].all()
    params = get_preset("lab03v2")
    for row in table.itertuples():
        seg = segment(read_image(dataset / "images" / f"{row.image}.png"), params)
        truth = read_mask(dataset / "masks" / f"{row.image}.png")
        expected = score_labels(seg.labels, truth)
        for key in ("mean_dice", "dice_cytoplasm", "dice_nucleus", "mean_iou", "nc_error"):
            assert getattr(row, key) == expected[key], (row.image, key)
        assert row.n_nuclei == seg.summary["n_nuclei"] == int(seg.nuclei.max())
        assert row.nucleus_area == int((seg.labels == 2).sum())
    # Image 121's mask has no nucleus: nucleus Dice 0 (every method predicts some).
    assert table.set_index("image").loc["121", "dice_nucleus"] == 0.0


def test_objects_csv(reference):
    images = pd.read_csv(reference / "images.csv", dtype={"image": str})
    objects = pd.read_csv(reference / "objects.csv", dtype={"image": str})
    assert list(objects.columns) == OBJECTS_COLUMNS
    assert len(objects) == images["n_nuclei"].sum() > 0
    counts = objects.groupby("image").size()
    for row in images.itertuples():
        assert counts.get(row.image, 0) == row.n_nuclei
    # Sorted by image, then label 1..n within each image.
    assert list(objects["image"]) == sorted(objects["image"])
    for _, group in objects.groupby("image"):
        assert group["label"].tolist() == list(range(1, len(group) + 1))
    assert (objects["cell_area"] == objects["nucleus_area"] + objects["cytoplasm_area"]).all()


def test_params_json_is_what_ran(reference, dataset, tmp_path):
    saved = json.loads((reference / "params.json").read_text())
    from cellseg_core import __version__
    assert saved["cellseg_version"] == __version__
    assert saved["preset"] == "lab03v2"
    assert saved["params"] == get_preset("lab03v2").to_dict()
    # A run's params.json can be fed back with --params and gives the same outputs.
    out = tmp_path / "again"
    assert main(["segment", str(dataset), "--params", str(reference / "params.json"),
                 "--out", str(out)]) == 0
    for name in ("images.csv", "objects.csv", "labels/000.tif", "nuclei/005.tif"):
        assert (out / name).read_bytes() == (reference / name).read_bytes()


def test_process_image_matches_batch(dataset, reference):
    labels, nuclei, row, objects = process_image(
        dataset / "images" / "002.png", get_preset("lab03v2"), mask=dataset / "masks" / "002.png")
    np.testing.assert_array_equal(labels, tifffile.imread(reference / "labels" / "002.tif"))
    assert row["image"] == "002" and list(row) == IMAGE_COLUMNS
    assert len(objects) == row["n_nuclei"] and all(o["image"] == "002" for o in objects)


# --- failures, exit codes ------------------------------------------------------------------
def test_bad_image_is_skipped_with_exit_1(dataset, tmp_path, capsys):
    inputs = tmp_path / "in"
    inputs.mkdir()
    for stem in ("000", "001"):
        shutil.copy(dataset / "images" / f"{stem}.png", inputs)
    (inputs / "0005_broken.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not an image")
    out = tmp_path / "out"
    code = main(["segment", str(inputs), "--preset", "lab01", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 1
    assert "FAILED" in err and "0005_broken.png" in err and "Traceback" not in err
    table = pd.read_csv(out / "images.csv", dtype={"image": str})
    assert table["image"].tolist() == ["000", "0005_broken", "001"]  # sorted by name
    assert table["status"][[0, 2]].tolist() == ["ok", "ok"]
    assert table["status"][1].startswith("failed:")
    assert table["height"][[0, 2]].tolist() == [256, 256]  # ints stay ints next to an empty row
    assert not (out / "labels" / "0005_broken.tif").exists()
    assert (out / "labels" / "001.tif").is_file()


@pytest.mark.parametrize("argv, message", [
    (["segment", "/no/such/folder", "--out", "x"], "no such file or folder"),
    (["segment", "IMG", "--out", "x", "--preset", "lab9"], "unknown preset 'lab9'"),
    (["segment", "IMG", "--out", "x", "--preset", "lab01", "--params", "p.json"], "only one of"),
    (["segment", "IMG", "--out", "x", "--jobs", "0"], "--jobs must be at least 1"),
    (["segment", "IMG", "--out", "x", "--params", "missing.json"], "no such parameters file"),
    (["optimize", "DATA", "--params-space", "threshold.t_nux=0:1"], "unknown parameter"),
    (["segment", "IMG"], "--out"),
])
def test_usage_errors_exit_2_without_traceback(argv, message, dataset, tmp_path, capsys):
    argv = [str(dataset / "images" / "000.png") if a == "IMG" else
            str(dataset) if a == "DATA" else str(tmp_path / a) if a in ("x", "missing.json") else a
            for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_bad_params_file_named(dataset, tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text('{"threshold": {"t_nuc": 0.9, "t_bg": 0.5}}')
    assert main(["segment", str(dataset), "--params", str(bad), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "bad.json" in err and "threshold.t_nuc" in err


# --- interrupt and resume ------------------------------------------------------------------
def test_interrupt_then_resume(dataset, reference, tmp_path, monkeypatch):
    """An exception in the middle of writing image 3 leaves only complete files."""
    out = tmp_path / "out"
    real = batch.write_bytes_atomic
    calls = {"n": 0}

    def failing(path, data):
        calls["n"] += 1
        if calls["n"] == 1 + 3 * 2 + 2:  # params.json, 2 images x 3 files, then image 3's nuclei
            raise KeyboardInterrupt
        return real(path, data)

    monkeypatch.setattr(batch, "write_bytes_atomic", failing)
    assert main(["segment", str(dataset), "--preset", "lab03v2", "--out", str(out)]) == 130
    monkeypatch.setattr(batch, "write_bytes_atomic", real)
    assert _leftovers(out) == []
    assert not (out / "images.csv").exists() and not (out / "objects.csv").exists()
    assert sorted(p.name for p in (out / "labels").iterdir()) == ["000.tif", "001.tif", "002.tif"]
    assert sorted(p.name for p in (out / "nuclei").iterdir()) == ["000.tif", "001.tif"]
    for tif in (out / "labels").iterdir():  # complete and readable
        assert tifffile.imread(tif).shape == (256, 256)

    seen = []
    result = run_batch([dataset], out, get_preset("lab03v2"), resume=True, preset="lab03v2",
                       progress=lambda done, total, name: seen.append(name))
    assert (result.n_skipped, result.n_done) == (2, 4)  # 002 had no marker: redone
    assert seen[0] is None and sorted(seen[1:]) == ["002", "005", "010", "121"]
    assert _tree(out) == _tree(reference)


def test_resume_refuses_other_params(reference, dataset, tmp_path, capsys):
    out = tmp_path / "out"
    shutil.copytree(reference, out)
    assert main(["segment", str(dataset), "--preset", "lab01", "--out", str(out), "--resume"]) == 2
    assert "other parameters" in capsys.readouterr().err
    # Same params: everything skipped, outputs unchanged.
    assert main(["segment", str(dataset), "--preset", "lab03v2", "--out", str(out), "--resume"]) == 0
    assert _tree(out) == _tree(reference)


@pytest.mark.slow
def test_killed_subprocess_leaves_no_partial_file(voced, tmp_path):
    """kill -9 in the middle of a run: no half-written file under a final name; --resume
    finishes the job."""
    out = tmp_path / "out"
    command = [sys.executable, "-m", "cellseg_core", "segment", str(voced), "--preset",
               "lab03v2", "--out", str(out)]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            cwd=REPO)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            if (out / "labels").is_dir() and len(list((out / "labels").iterdir())) >= 5:
                break
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    if proc.returncode == 0:
        pytest.skip("the run finished before it could be killed")
    assert not (out / "images.csv").exists()
    done = [p for p in (out / "labels").glob("*.tif")]
    assert 0 < len(done) < 200
    for tif in done + list((out / "nuclei").glob("*.tif")):
        assert tifffile.imread(tif).shape == (256, 256)
    result = run_batch([voced / "images" / f"{p.stem}.png" for p in done[:3]], out,
                       get_preset("lab03v2"), resume=True, preset="lab03v2")
    assert result.n_skipped + result.n_done == 3 and result.n_skipped >= 2
    assert _leftovers(out) == []  # a killed run's temp files are swept away


# --- parallel runs are identical -----------------------------------------------------------
def test_jobs_2_equals_jobs_1(reference, dataset, tmp_path):
    out = tmp_path / "out"
    assert main(["segment", str(dataset), "--preset", "lab03v2", "--out", str(out),
                 "--jobs", "2"]) == 0
    assert _tree(out) == _tree(reference)


@pytest.mark.slow
def test_dask_local_cluster_equals_local(reference, dataset, tmp_path):
    distributed = pytest.importorskip("distributed")
    out = tmp_path / "out"
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        assert main(["segment", str(dataset), "--preset", "lab03v2", "--out", str(out),
                     "--dask", cluster.scheduler_address]) == 0
    assert _tree(out) == _tree(reference)


@pytest.mark.slow
def test_dask_unreachable_is_usage_error(dataset, tmp_path, capsys):
    pytest.importorskip("distributed")
    assert main(["segment", str(dataset), "--out", str(tmp_path / "o"),
                 "--dask", "tcp://127.0.0.1:9"]) == 2
    assert "Dask scheduler" in capsys.readouterr().err


# --- zip for the app, inputs -----------------------------------------------------------------
def test_zip_outputs(reference):
    import io
    import zipfile

    with zipfile.ZipFile(io.BytesIO(batch.zip_outputs(reference))) as archive:
        names = archive.namelist()
        assert archive.read("images.csv") == (reference / "images.csv").read_bytes()
    assert names[:3] == ["params.json", "images.csv", "objects.csv"]
    assert sorted(n for n in names if n.startswith("labels/")) == [f"labels/{s}.tif" for s in STEMS]
    assert not any(".parts" in n for n in names)


def test_uploaded_bytes_and_duplicate_stems(dataset, tmp_path):
    data = (dataset / "images" / "000.png").read_bytes()
    result = run_batch([("upload.png", data)], tmp_path / "o", get_preset("lab03v2"))
    assert result.images["image"].tolist() == ["upload"] and result.ok
    with pytest.raises(ValueError, match="share the name"):
        batch.find_inputs([dataset / "images" / "000.png", ("000.jpg", data)])


# --- other commands --------------------------------------------------------------------------
def test_presets_lists_all_seven(capsys):
    assert main(["presets"]) == 0
    out = capsys.readouterr().out
    for name in ("lab01", "lab02", "lab03v2", "lab03v2-plus", "auto-cytology",
                 "auto-fluorescence", "auto-nuclei"):
        assert name in out
    # seven since issue 20: lab03v2-plus keeps the nested clean-up lab03v2 had before
    assert len(out.strip().splitlines()) == len(PRESETS) == 7
    assert main(["presets", "--json"]) == 0
    assert set(json.loads(capsys.readouterr().out)) == set(PRESETS)


@pytest.mark.parametrize("command", ["segment", "evaluate", "optimize", "presets", "train"])
def test_help_with_examples(command, capsys):
    assert main([command, "--help"]) == 0
    out = capsys.readouterr().out
    assert "examples:" in out and f"cellseg {command}" in out


def test_parse_space():
    space = parse_space("threshold.t_nuc=0.1:0.7, cleanup.min_nucleus_size=0:400,"
                        "cleanup.fill_holes=true|false, threshold.method=otsu|li")
    assert space == {"threshold.t_nuc": (0.1, 0.7), "cleanup.min_nucleus_size": (0, 400),
                     "cleanup.fill_holes": [True, False], "threshold.method": ["otsu", "li"]}
    assert isinstance(parse_space("threshold.t_bg=0:1")["threshold.t_bg"][0], float)
    for bad in ("threshold.t_nuc=0.7:0.1", "threshold.t_nuc", "threshold.t_nuc=a:b",
                "cleanup.fill_holes=true|"):
        with pytest.raises(Exception, match="params-space"):
            parse_space(bad)


def test_evaluate_prints_compare_table(dataset, capsys):
    assert main(["evaluate", str(dataset), "--split", "all", "--preset", "lab02", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["summary"]["n_images"] == len(STEMS)
    per_image = {r["id"]: r for r in result["per_image"]}
    seg = segment(read_image(dataset / "images" / "001.png"), get_preset("lab02"))
    expected = score_labels(seg.labels, read_mask(dataset / "masks" / "001.png"))
    assert per_image["001"]["mean_dice"] == pytest.approx(expected["mean_dice"], abs=1e-9)
    assert main(["evaluate", str(dataset), "--split", "all", "--preset", "lab02"]) == 0
    out = capsys.readouterr().out
    assert "mean_dice" in out and "nc_mae" in out


def test_optimize_writes_best_params(dataset, tmp_path):
    best = tmp_path / "best.json"
    assert main(["optimize", str(dataset), "--calls", "6", "--seed", "0", "--out", str(best),
                 "--params-space", "threshold.t_nuc=0.2:0.6,threshold.t_bg=0.8:0.99"]) == 0
    from cellseg_core.params import Params
    params = Params.from_json(best.read_text())
    assert 0.2 <= params.threshold.t_nuc <= 0.6 and 0.8 <= params.threshold.t_bg <= 0.99


@pytest.mark.slow
def test_python_m_subprocess(dataset, reference, tmp_path):
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "cellseg_core", "segment", str(dataset),
                           "--preset", "lab03v2", "--out", str(out)],
                          capture_output=True, text=True, cwd=REPO, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "6 of 6 images segmented" in proc.stderr and "mean Dice" in proc.stderr
    assert _tree(out) == _tree(reference)
    proc = subprocess.run([sys.executable, "-m", "cellseg_core", "segment", "--bogus"],
                          capture_output=True, text=True, cwd=REPO, timeout=60)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr


def test_evaluate_instance_scores_on_demo_fluorescence(capsys):
    from cellseg_core import data as datasets
    from cellseg_core.metrics import average_precision, match_instances

    assert main(["evaluate", "demo-fluorescence", "--split", "all", "--preset",
                 "auto-fluorescence", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)["summary"]
    ds = datasets.demo_datasets()["demo-fluorescence"]
    params = get_preset("auto-fluorescence")
    f1, ap = [], []
    for ident in ds.ids:
        nuclei = segment(ds.image(ident), params).nuclei
        f1.append(match_instances(nuclei, ds.instances(ident), 0.5)["f1"])
        ap.append(average_precision(nuclei, ds.instances(ident)))
    assert summary["n_instance_images"] == len(ds.ids)
    assert summary["instance_f1_0.5"] == pytest.approx(np.mean(f1), abs=1e-12)
    assert summary["instance_ap"] == pytest.approx(np.mean(ap), abs=1e-12)
