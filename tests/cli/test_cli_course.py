"""Issue 20 on the command line: the course's Lab 02 split by name and the labelling
connectivity as an option."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from cellseg_core.cli import main
from cellseg_core.presets import get_preset


def test_evaluate_on_the_lab02_split(voced, capsys):
    assert main(["evaluate", str(voced), "--split", "lab02-test", "--preset", "lab02",
                 "--json"]) == 0
    out = json.loads(capsys.readouterr().out)["summary"]
    assert out["n_images"] == 39 and out["split"] == "lab02-test"
    assert out["mean_dice"] == pytest.approx(0.8105, abs=0.0005)   # the course's "0.81"


def test_unknown_split_names_the_course_ones(voced, capsys):
    assert main(["evaluate", str(voced), "--split", "lab09-test", "--preset", "lab02"]) == 2
    assert "lab02-test" in capsys.readouterr().err


@pytest.fixture
def few(voced, tmp_path):
    root = tmp_path / "data"
    for sub in ("images", "masks"):
        (root / sub).mkdir(parents=True)
        for stem in ("001", "014", "057"):
            shutil.copy(voced / sub / f"{stem}.png", root / sub / f"{stem}.png")
    return root


def test_connectivity_option_reaches_the_params_and_the_counts(few, tmp_path):
    import pandas as pd

    counts = {}
    for conn in (4, 8):
        out = tmp_path / f"out{conn}"
        assert main(["segment", str(few), "--preset", "lab02", "--connectivity", str(conn),
                     "--out", str(out)]) == 0
        saved = json.loads((out / "params.json").read_text())
        assert saved["params"] == get_preset("lab02").with_values(
            {"cleanup.connectivity": conn}).to_dict()
        counts[conn] = pd.read_csv(out / "images.csv")["n_nuclei"].to_numpy()
    # Diagonal neighbours join: never more nuclei with 8 than with 4, fewer somewhere.
    assert np.all(counts[8] <= counts[4]) and np.any(counts[8] < counts[4])


def test_connectivity_refuses_other_values_and_models(few, tmp_path, capsys):
    assert main(["segment", str(few), "--connectivity", "6", "--out", str(tmp_path / "o")]) == 2
    assert "invalid choice: 6" in capsys.readouterr().err
    model = Path(__file__).resolve().parents[1] / "data" / "model_v3.cellseg-model"
    assert main(["segment", str(few), "--model", str(model), "--connectivity", "8",
                 "--out", str(tmp_path / "m")]) == 2
    assert "--connectivity applies to --preset / --params" in capsys.readouterr().err


def test_optimize_searches_lab02_train_and_checks_lab02_test(voced, tmp_path, capsys):
    out = tmp_path / "best.json"
    assert main(["optimize", str(voced), "--split", "lab02", "--calls", "2", "--preset",
                 "lab02", "--params-space", "threshold.t_nuc=0.3:0.45", "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "test split (39 images)" in err
    best = json.loads(out.read_text())
    assert 0.3 <= best["threshold"]["t_nuc"] <= 0.45 and best["threshold"]["t_bg"] == 0.99
