"""`cellseg segment` never stalls on a bomb and never loses or hides a result (issue 21):
the object ceiling in the CLI, --resume keeps every earlier row, a used --out is refused
without --resume / --overwrite, and output files honour the umask."""
from __future__ import annotations

import io
import os
import shutil
import stat
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile
from PIL import Image

from cellseg_core.batch import run_batch, zip_outputs
from cellseg_core.cli import main
from cellseg_core.io import write_bytes_atomic
from cellseg_core.batch import CELL_CSV_COLUMNS
from cellseg_core.presets import get_preset

from tests.cli.test_cli import STEMS, _tree, dataset  # noqa: F401  (dataset: a fixture)

REPO = Path(__file__).resolve().parents[2]

FIRST, SECOND = STEMS[:3], STEMS[3:]


def _noise(n, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, n, 3), dtype=np.uint8)


# --- the CLI on a bomb ----------------------------------------------------------------------
def test_cli_writes_labels_and_row_with_the_warning(tmp_path, monkeypatch, capsys):
    path = tmp_path / "noise.png"
    Image.fromarray(_noise(400)).save(path)
    monkeypatch.setenv("CELLSEG_MAX_OBJECTS", "1000")
    start = time.perf_counter()
    assert main(["segment", str(path), "--preset", "lab02", "--out", str(tmp_path / "out")]) == 0
    assert time.perf_counter() - start < 30
    out = tmp_path / "out"
    labels = tifffile.imread(out / "labels" / "noise.tif")
    nuclei = tifffile.imread(out / "nuclei" / "noise.tif")
    assert labels.shape == nuclei.shape == (400, 400)
    row = pd.read_csv(out / "images.csv").iloc[0]
    n = int(nuclei.max())
    assert row["status"] == "ok" and row["n_nuclei"] == n > 1000 and pd.isna(row["n_cells"])
    assert row["warnings"] == (f"this segmentation has {n:,} objects — probably noise or the "
                               "wrong preset; per-object measurements are off (limit 1,000, "
                               "set CELLSEG_MAX_OBJECTS to change it)")
    objects = pd.read_csv(out / "objects.csv")
    assert len(objects) == 0 and list(objects.columns)[1:] == CELL_CSV_COLUMNS
    err = capsys.readouterr().err
    assert f"{n} nuclei (0 measured)" in err
    assert f"WARNING noise: this segmentation has {n:,} objects" in err


def test_normal_images_have_an_empty_warnings_column(dataset, tmp_path):
    assert main(["segment", str(dataset), "--preset", "lab03v2", "--out", str(tmp_path)]) == 0
    images = pd.read_csv(tmp_path / "images.csv")
    assert images["warnings"].isna().all() and images["n_cells"].notna().all()


@pytest.mark.slow
def test_cli_on_a_2000_noise_image_within_60_s(tmp_path):
    path = tmp_path / "noise.png"
    Image.fromarray(_noise(2000)).save(path, compress_level=1)
    env = {k: v for k, v in os.environ.items() if k != "CELLSEG_MAX_OBJECTS"}
    env["PYTHONPATH"] = str(REPO)
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "cellseg_core", "segment", str(path),
                           "--preset", "lab02", "--out", str(tmp_path / "out")],
                          capture_output=True, text=True, env=env, timeout=300)
    seconds = time.perf_counter() - start
    assert proc.returncode == 0, proc.stderr
    assert seconds < 60, seconds  # regionprops: many minutes
    assert "per-object measurements are off" in proc.stderr
    row = pd.read_csv(tmp_path / "out" / "images.csv").iloc[0]
    assert row["n_nuclei"] > 100_000
    assert tifffile.imread(tmp_path / "out" / "nuclei" / "noise.tif").max() == row["n_nuclei"]


# --- resume keeps every earlier row -------------------------------------------------------
def _inputs(dataset, stems):
    return [str(dataset / "images" / f"{s}.png") for s in stems]


def _segment(inputs, out, *flags, preset="lab03v2"):
    return main(["segment", *inputs, "--preset", preset, "--out", str(out), *flags])


def _tables(out):
    return (pd.read_csv(out / "images.csv", dtype={"image": str}),
            pd.read_csv(out / "objects.csv", dtype={"image": str}))


@pytest.fixture(scope="module")
def all_at_once(dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("all") / "out"
    assert _segment(_inputs(dataset, STEMS), out) == 0
    return out


def test_resume_with_new_inputs_keeps_every_earlier_row(dataset, all_at_once, tmp_path):
    out = tmp_path / "out"
    assert _segment(_inputs(dataset, FIRST), out) == 0
    assert _segment(_inputs(dataset, SECOND), out, "--resume") == 0  # the README's example
    images, objects = _tables(out)
    assert images["image"].tolist() == STEMS
    assert sorted(objects["image"].unique()) == [s for s in STEMS if s in set(objects["image"])]
    for name in ("images.csv", "objects.csv"):  # as if all had run at once
        pd.testing.assert_frame_equal(pd.read_csv(out / name, dtype={"image": str}),
                                      pd.read_csv(all_at_once / name, dtype={"image": str}))
    # Resuming with one old image only: nothing dropped, nothing redone.
    before = _tree(out)
    assert _segment(_inputs(dataset, FIRST[:1]), out, "--resume") == 0
    assert _tree(out) == before


def test_resume_keeps_an_earlier_failure(dataset, tmp_path, capsys):
    out, inputs = tmp_path / "out", tmp_path / "in"
    inputs.mkdir()
    (inputs / "broken.png").write_bytes(b"not a png")
    shutil.copy(dataset / "images" / "000.png", inputs / "000.png")
    assert _segment([str(inputs / "broken.png"), str(inputs / "000.png")], out) == 1
    assert _segment(_inputs(dataset, ["001"]), out, "--resume") == 0
    images, _ = _tables(out)
    assert images["image"].tolist() == ["000", "001", "broken"]
    assert images.set_index("image").loc["broken", "status"].startswith("failed: ")


# --- a used --out is refused; --overwrite clears it ------------------------------------------
def test_used_out_folder_is_refused_without_resume_or_overwrite(dataset, tmp_path, capsys):
    out = tmp_path / "out"
    assert _segment(_inputs(dataset, FIRST), out) == 0
    before = _tree(out)
    capsys.readouterr()
    assert _segment(_inputs(dataset, SECOND), out, preset="lab02") == 2
    err = capsys.readouterr().err
    assert f"cellseg segment: error: {out} already holds the outputs of a run" in err
    assert "3 label images in labels/" in err and "--resume" in err and "--overwrite" in err
    assert "Traceback" not in err
    assert _tree(out) == before  # untouched


def test_overwrite_replaces_only_the_run_outputs(dataset, tmp_path):
    out = tmp_path / "out"
    assert _segment(_inputs(dataset, FIRST), out) == 0
    (out / "notes.txt").write_text("mine")
    assert _segment(_inputs(dataset, SECOND), out, "--overwrite", preset="lab02") == 0
    images, objects = _tables(out)
    assert images["image"].tolist() == SECOND and set(objects["image"]) <= set(SECOND)
    assert sorted(p.stem for p in (out / "labels").glob("*.tif")) == SECOND
    assert sorted(p.stem for p in (out / "nuclei").glob("*.tif")) == SECOND
    assert sorted(p.stem for p in (out / ".parts").glob("*.json")) == SECOND
    assert '"preset": "lab02"' in (out / "params.json").read_text()
    assert (out / "notes.txt").read_text() == "mine"  # not ours: kept


def test_free_folders_need_no_flag_and_flags_exclude_each_other(dataset, tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert _segment(_inputs(dataset, FIRST[:1]), empty) == 0
    other = tmp_path / "other"  # a folder with unrelated files is not a used --out
    other.mkdir()
    (other / "readme.txt").write_text("x")
    assert _segment(_inputs(dataset, FIRST[:1]), other) == 0
    capsys.readouterr()
    assert _segment(_inputs(dataset, FIRST[:1]), other, "--resume", "--overwrite") == 2
    assert "not both" in capsys.readouterr().err


def test_run_batch_refuses_a_used_folder_too(dataset, tmp_path):
    run_batch(_inputs(dataset, FIRST[:1]), tmp_path, get_preset("lab02"))
    with pytest.raises(ValueError, match="already holds the outputs of a run"):
        run_batch(_inputs(dataset, FIRST[:1]), tmp_path, get_preset("lab02"))


# --- permissions follow the umask ---------------------------------------------------------------
@pytest.fixture
def umask():
    """Set the process umask for a test, and restore it."""
    previous = os.umask(0o022)
    os.umask(previous)
    yield lambda mask: os.umask(mask)
    os.umask(previous)


def _modes(folder: Path) -> dict:
    return {str(p.relative_to(folder)): stat.S_IMODE(p.stat().st_mode)
            for p in sorted(folder.rglob("*"))}


@pytest.mark.skipif(os.name != "posix", reason="Unix permissions")
def test_outputs_readable_under_umask_022(dataset, tmp_path, umask):
    umask(0o022)
    out = tmp_path / "out"
    assert _segment(_inputs(dataset, FIRST[:2]), out) == 0
    modes = _modes(out)
    files = {k: v for k, v in modes.items() if (out / k).is_file()}
    assert set(files) >= {"images.csv", "objects.csv", "params.json", "labels/000.tif",
                          "nuclei/001.tif"}
    assert set(files.values()) == {0o644}, files
    assert {v for k, v in modes.items() if (out / k).is_dir()} == {0o755}
    with zipfile.ZipFile(io.BytesIO(zip_outputs(out))) as archive:  # the Batch page's zip
        assert {info.external_attr >> 16 & 0o777 for info in archive.infolist()} == {0o644}


@pytest.mark.skipif(os.name != "posix", reason="Unix permissions")
@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o027, 0o640), (0o077, 0o600),
                                        (0o002, 0o664)])
def test_write_bytes_atomic_honours_the_umask(tmp_path, umask, mask, mode):
    umask(mask)
    path = write_bytes_atomic(tmp_path / "f.bin", b"x")
    assert stat.S_IMODE(path.stat().st_mode) == mode
    path = write_bytes_atomic(path, b"y")  # replacing a file: the same rule
    assert stat.S_IMODE(path.stat().st_mode) == mode and path.read_bytes() == b"y"
    assert [p.name for p in tmp_path.iterdir()] == ["f.bin"]  # no temporary file left
