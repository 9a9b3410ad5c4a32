"""The object classifier on synthetic two-type cells: accuracy against the number of
examples a user clicks, on ground-truth nuclei and on the nuclei Explore's thresholds
find, and the time to measure and to fit.

Training cells are drawn from 3 images (seeds 0-2, 192 cells), test cells are every
cell of 3 other images (seeds 100-102); each row is the mean over 5 random draws of
the examples (half of each type). Noise sd 0.06 (the unit test's).

Usage::

    python3 benchmarks/bench_objects.py
"""
from __future__ import annotations

import time

import numpy as np

from cellseg_core.data.synthetic import CELL_TYPES, two_type_cells
from cellseg_core.learn.objects import ObjectClassifier
from cellseg_core.measure import region_stats
from cellseg_core.pipeline import segment
from cellseg_core.presets import get_preset

PARAMS = get_preset("lab02").with_values({"threshold.t_nuc": 0.62, "threshold.t_bg": 0.87,
                                          "cleanup.min_nucleus_size": 20})


def _measure(clf, samples, found: bool):
    """Features and true types (0/1) of the cells of `samples`: ground-truth nuclei, or
    the segmented ones typed by the true nucleus under their centroid."""
    xs, ys = [], []
    for s in samples:
        if found:
            seg = segment(s.image, PARAMS)
            nuclei, labels = seg.nuclei, seg.labels
            stats = region_stats(nuclei)
            under = s.nuclei[stats["centroid_row"].round().astype(int),
                             stats["centroid_col"].round().astype(int)]
            ids, x, _ = clf.features(s.image, nuclei, labels)
            keep = under > 0
            xs.append(x[keep])
            ys.append(s.types[under[keep] - 1])
        else:
            ids, x, _ = clf.features(s.image, s.nuclei, s.labels)
            xs.append(x)
            ys.append(s.types[ids - 1])
    return np.concatenate(xs), np.concatenate(ys)


def main() -> None:
    train = [two_type_cells(i, noise=0.06) for i in range(3)]
    test = [two_type_cells(100 + i, noise=0.06) for i in range(3)]
    probe = ObjectClassifier(CELL_TYPES)
    print("| nuclei | examples | accuracy (mean of 5 draws) | worst draw | fit |")
    print("| --- | --- | --- | --- | --- |")
    for found in (False, True):
        start = time.perf_counter()
        x_train, y_train = _measure(probe, train, found)
        x_test, y_test = _measure(probe, test, found)
        per_image = (time.perf_counter() - start) / 6
        for n in (2, 4, 10, 40, len(y_train)):
            scores, fits = [], []
            for draw in range(5):
                rng = np.random.default_rng(draw)
                pick = np.concatenate([rng.permutation(np.flatnonzero(y_train == t))[:n // 2]
                                       for t in (0, 1)])
                clf = ObjectClassifier(CELL_TYPES, n_estimators=100)
                clf.fit(x_train[pick], y_train[pick], rng=draw)
                fits.append(clf.fit_seconds_)
                truth = np.array(CELL_TYPES, dtype=object)[y_test]
                scores.append(float((clf.predict(x_test) == truth).mean()))
            print(f"| {'segmented (lab02, t_nuc 0.62)' if found else 'ground truth'} | {n} | "
                  f"{np.mean(scores):.3f} | {min(scores):.3f} | {np.mean(fits):.2f} s |")
        print(f"| (measuring: {per_image * 1000:.0f} ms per 256² image, {len(y_test)} test "
              "cells) | | | | |")


if __name__ == "__main__":
    main()
