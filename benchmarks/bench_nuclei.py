"""The built-in nucleus model against the textbook baseline on the DSB 2018 test splits.

One table per set (dsb2018_fluo, dsb2018_histo, dsb2018_brightfield), test split only:
mean per-image F1 at IoU 0.5 (``metrics.match_instances``), DSB average precision over
IoU 0.5:0.95 (``metrics.average_precision``), precision, recall, mean absolute count
error and seconds per image, for

- ``model (estimated size)``: the shipped model, nucleus size estimated from the image
  (what a user gets without saying anything),
- ``model (true size)``: the image rescaled by the median ground-truth diameter
  (what a user gets who says "nuclei ≈ N px across" right),
- ``model (no rescale)``: the image fed at its own scale,
- ``Otsu + distance watershed``: the textbook baseline
  (:func:`cellseg_core.textbook.textbook_nuclei`: gaussian σ 2, Otsu, holes filled,
  objects < 30 px removed, distance watershed with min_distance 5), bright or dark
  nuclei as the detected image kind says.

Then the time of one 512×512 prediction (network + watershed, size given) with the
load of the machine at that moment. Goals (issue 18): F1 fluo ≥ 0.90, histo ≥ 0.80,
brightfield ≥ 0.80; 512² ≤ 0.5 s on 2 cores.

Usage::

    python3 benchmarks/bench_nuclei.py                 # all sets, all rows
    python3 benchmarks/bench_nuclei.py --sets dsb2018_histo --model path/to/nuclei.onnx
    python3 benchmarks/bench_nuclei.py --split train   # for choosing settings

Data: ../shared/data/<set> (env CELLSEG_DATA overrides the folder holding the sets).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import tifffile
from skimage.filters import gaussian

from _common import REPO

from cellseg_core.io import read_image  # noqa: E402
from cellseg_core.metrics import average_precision, match_instances  # noqa: E402
from cellseg_core.scale import median_diameter  # noqa: E402
from cellseg_core.learn.nuclei import NucleusModel, estimate_diameter  # noqa: E402
from cellseg_core.textbook import textbook_nuclei  # noqa: E402

SETS = ("dsb2018_fluo", "dsb2018_histo", "dsb2018_brightfield")
GOALS = {"dsb2018_fluo": 0.90, "dsb2018_histo": 0.80, "dsb2018_brightfield": 0.80}


def data_root() -> Path:
    env = os.environ.get("CELLSEG_DATA")
    return Path(env) if env else REPO.parent / "shared" / "data"


def set_folders(names):
    """(name, folder) of each set found under :func:`data_root`; says which are missing."""
    for name in names:
        folder = data_root() / name
        if folder.is_dir():
            yield name, folder
        else:
            print(f"{name}: not found at {folder}, skipped")


def score(pred, truth) -> dict:
    m = match_instances(pred, truth)
    return {"f1": m["f1"], "ap": average_precision(pred, truth), "precision": m["precision"],
            "recall": m["recall"], "count_abs_err": abs(m["count_error"])}


def run_set(folder: Path, split: str, model: NucleusModel, rows) -> dict:
    ids = json.loads((folder / "split.json").read_text())[split]
    out = {row: [] for row in rows}
    diam = []
    for ident in ids:
        image = read_image(folder / "images" / f"{int(ident):03d}.png")
        truth = tifffile.imread(folder / "labels" / f"{int(ident):03d}.tif")
        true_d = median_diameter(truth)
        for row in rows:
            t0 = time.perf_counter()
            if row == "model (estimated size)":
                est = estimate_diameter(image, model=model)
                pred, _ = model.predict(image, diameter=est)
                diam.append((est, true_d))
            elif row == "model (true size)":
                pred, _ = model.predict(image, diameter=true_d)
            elif row == "model (no rescale)":
                pred, _ = model.predict(image, diameter=model.diameter)
            else:
                pred = textbook_nuclei(image)
            seconds = time.perf_counter() - t0
            out[row].append({**score(pred, truth), "seconds": seconds})
    table = {row: {k: float(np.mean([r[k] for r in v])) for k in v[0]} for row, v in out.items()}
    if diam:
        est, true = np.array(diam).T
        ratio = est / true
        table["_size"] = {"within_25pct": float(np.mean(np.abs(ratio - 1) <= 0.25)),
                          "median_ratio": float(np.median(ratio))}
    return table


def time_512(model: NucleusModel, repeats: int = 5) -> dict:
    rng = np.random.default_rng(0)
    image = gaussian(rng.random((512, 512)), 3)
    model.predict(image, diameter=model.diameter)  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        model.predict(image, diameter=model.diameter)
        times.append(time.perf_counter() - t0)
    x = np.zeros((512, 512, 3), np.float32)
    net = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        model._run(x)
        net.append(time.perf_counter() - t0)
    return {"median_s": float(np.median(times)), "network_s": float(np.median(net)),
            "load": os.getloadavg()[0]}


def main(argv=None):
    ap = argparse.ArgumentParser(description="nucleus model vs textbook baseline")
    ap.add_argument("--sets", nargs="+", default=list(SETS))
    ap.add_argument("--split", default="test", choices=("train", "test"))
    ap.add_argument("--model", default=None, help="ONNX file (default: the built-in model)")
    ap.add_argument("--rows", nargs="+", default=None)
    ap.add_argument("--json", default=None, help="also write the tables to this file")
    args = ap.parse_args(argv)
    model = NucleusModel(args.model)
    rows = args.rows or ["model (estimated size)", "model (true size)", "model (no rescale)",
                         "Otsu + distance watershed"]
    results = {}
    for name, folder in set_folders(args.sets):
        table = run_set(folder, args.split, model, rows)
        results[name] = table
        goal = GOALS.get(name)
        print(f"\n{name} ({args.split} split){f', goal F1 >= {goal}' if goal else ''}")
        print(f"| method | F1@0.5 | DSB AP | precision | recall | |count err| | s/image |")
        print("|---|---|---|---|---|---|---|")
        for row in rows:
            r = table[row]
            print(f"| {row} | {r['f1']:.3f} | {r['ap']:.3f} | {r['precision']:.3f} | "
                  f"{r['recall']:.3f} | {r['count_abs_err']:.1f} | {r['seconds']:.2f} |")
        if "_size" in table:
            s = table["_size"]
            print(f"size estimate within ±25 % of the true median diameter on "
                  f"{s['within_25pct']:.0%} of images (median ratio {s['median_ratio']:.2f})")
        sys.stdout.flush()
    t = time_512(model)
    results["time_512"] = t
    print(f"\n512×512 prediction (size given): {t['median_s']:.3f} s "
          f"(network alone {t['network_s']:.3f} s), load average {t['load']:.1f} on "
          f"{os.cpu_count()} cores")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
