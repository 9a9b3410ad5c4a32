"""The ECSE 415 study's methods on VocEd: the unsupervised sweep (k-means per image,
K = 3, 4, 5, gray K = 3, mean-shift; the study's Dice matching) on the train split, as
the study scored its training subjects; then its random-forest ensembles trained on the
train split and scored on the test split (seed 0).

    python3 benchmarks/bench_study.py [--data DIR] [--skip-clusters] [--skip-forests]
"""
from __future__ import annotations

import argparse
import time

import pandas as pd

from _common import need_voced
from cellseg_core.data import open_dataset
from cellseg_core.learn.clusters import cluster_sweep, sweep_table
from cellseg_core.learn.forests import StudyForest, study_scores

#: name -> StudyForest arguments (the study's 10 forests; 20 trees each).
FORESTS = {
    "raw gray pixel": dict(features="raw", mode_size=1),
    "raw gray pixel + mode filter 5x5": dict(features="raw", mode_size=5),
    "9x9 gray patch + mode filter 5x5": dict(features="patch", mode_size=5),
    "multiscale gray features + mode filter 5x5": dict(features="multiscale", mode_size=5),
}


def _markdown(table: pd.DataFrame) -> str:
    """`table` as a Markdown table (floats to 4 decimals)."""
    def cell(v):
        return f"{v:.4f}" if isinstance(v, float) else str(v)
    lines = ["| " + " | ".join(map(str, table.columns)) + " |",
             "|" + " --- |" * len(table.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |"
              for row in table.itertuples(index=False)]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None)
    parser.add_argument("--skip-clusters", action="store_true")
    parser.add_argument("--skip-forests", action="store_true")
    args = parser.parse_args()
    ds = open_dataset(need_voced(args.data))
    train, test = ds.split["train"], ds.split["test"]
    pd.set_option("display.width", 200)
    if not args.skip_clusters:
        images, masks = [ds.image(i) for i in train], [ds.mask(i) for i in train]
        start = time.perf_counter()
        rgb = cluster_sweep(images, masks, (3, 4, 5), meanshift=True, ids=train, rng=0)
        gray = cluster_sweep(images, masks, (3,), gray=True, ids=train, rng=0)
        table = sweep_table(pd.concat([rgb, gray], ignore_index=True))
        print(f"unsupervised, per image, train split ({len(train)} images, "
              f"{time.perf_counter() - start:.0f} s)")
        print(_markdown(table))
    if not args.skip_forests:
        X, Y = [ds.image(i) for i in train], [ds.mask(i) for i in train]
        Xt, Yt = [ds.image(i) for i in test], [ds.mask(i) for i in test]
        rows, curve = [], None
        for name, kwargs in FORESTS.items():
            start = time.perf_counter()
            model = StudyForest(**kwargs).fit(X, Y, rng=0)
            fit = time.perf_counter() - start
            start = time.perf_counter()
            scores = study_scores(model, Xt, Yt).mean(numeric_only=True)
            rows.append({"forest on": name, "train s": round(fit),
                         "predict s/image": round((time.perf_counter() - start) / len(Xt), 2),
                         **scores.round(4).to_dict()})
            if kwargs["features"] == "patch":
                curve = model.ensemble_curve(Xt, Yt)
            print(rows[-1], flush=True)
        print(f"supervised, 10 forests x 20 trees, trained on {len(train)} train images, "
              f"scored on {len(test)} test images")
        print(_markdown(pd.DataFrame(rows)))
        print("patch ensemble, test split, as forests are added")
        print(_markdown(curve))


if __name__ == "__main__":
    main()
