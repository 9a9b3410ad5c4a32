"""``cellseg evaluate --method kmeans|meanshift``: the study's per-image clustering."""
from __future__ import annotations

import json
import shutil

import pytest

from cellseg_core.cli import main
from cellseg_core.data import open_dataset
from cellseg_core.learn.clusters import cluster_sweep
from tests._support.data import shared_set


@pytest.fixture(scope="module")
def small_voced(tmp_path_factory):
    source = shared_set("voced")
    root = tmp_path_factory.mktemp("voced3")
    for sub in ("images", "masks"):
        (root / sub).mkdir()
        for stem in ("000", "001", "003"):
            shutil.copy(source / sub / f"{stem}.png", root / sub / f"{stem}.png")
    return root


@pytest.mark.slow
def test_kmeans_sweep_from_the_command_line(small_voced, capsys):
    code = main(["evaluate", str(small_voced), "--split", "all", "--method", "kmeans",
                 "--k", "3", "4", "--json"])
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert [row["setting"] for row in out["summary"]] == ["K=3", "K=4"]
    assert len(out["per_image"]) == 6
    ds = open_dataset(small_voced)
    expected = cluster_sweep([ds.image(i) for i in ds.ids], [ds.mask(i) for i in ds.ids],
                             (3, 4), ids=ds.ids, rng=0)
    got = [row["study_dice"] for row in out["per_image"]]
    assert got == pytest.approx(expected["study_dice"].tolist())
    # K = 4 has one cluster more than VocEd has classes: it scores 0.
    assert all(row["n_surplus"] >= 1 for row in out["per_image"] if row["k"] == 4)


def test_meanshift_and_table_output(small_voced, capsys):
    assert main(["evaluate", str(small_voced), "--split", "all", "--method", "meanshift",
                 "--gray"]) == 0
    text = capsys.readouterr().out
    assert "mean-shift" in text and "quantile=0.3" in text and "gray" in text


@pytest.mark.parametrize("extra", [["--preset", "lab02"], ["--k", "0"], ["--quantile", "2"]])
def test_cluster_options_refused(small_voced, extra, capsys):
    assert main(["evaluate", str(small_voced), "--split", "all", "--method", "kmeans",
                 *extra]) == 2
