"""How the nucleus model's probabilities become instances: decodes × size estimates × TTA.

For choosing the decode settings stored in the model file (issue 18), on the TRAIN
splits by default. Per set, mean per-image F1 at IoU 0.5 and DSB AP of:

- size: ``true`` (median ground-truth diameter), ``model`` (the model's own
  multi-pass estimate), ``classical`` (``auto-nuclei``'s estimate from the image);
- decode: ``interior`` (markers = interior cores; the decode of files without decode
  keys) and ``distance`` (distance-transform split of the foreground, parts kept
  where there is a core; :func:`cellseg_core.learn.nuclei.probabilities_to_instances`);
- TTA: 1 pass, or the mean over ``--tta`` flips/rotations.

The probabilities of an image at one size are computed once and decoded both ways.
The ``model`` size estimate is the legacy one (its passes decoded with ``interior``),
as old model files get it. Then the time of each decode on a 512² image.

Usage::

    python3 benchmarks/bench_nuclei_decode.py                      # train, TTA 1
    python3 benchmarks/bench_nuclei_decode.py --tta 1 4 --limit 10 # first 10 per set
    python3 benchmarks/bench_nuclei_decode.py --split test         # report only

Data: ../shared/data/<set> (env CELLSEG_DATA overrides).
"""
from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
import tifffile

from _common import REPO  # noqa: F401  (puts the repo on sys.path)

from bench_nuclei import SETS, set_folders  # noqa: E402
from cellseg_core.io import read_image  # noqa: E402
from cellseg_core.learn.nuclei import (NucleusModel, estimate_diameter,  # noqa: E402
                                        normalize_image, probabilities_to_instances)
from cellseg_core.metrics import average_precision, match_instances  # noqa: E402
from cellseg_core.scale import median_diameter  # noqa: E402

DECODES = ("interior", "distance")
SIZES = ("true", "model", "classical")


def run_set(folder, split, models, tta_values, limit=None) -> dict:
    ids = json.loads((folder / "split.json").read_text())[split][:limit]
    scores: dict = {}
    legacy = models["interior"]
    for ident in ids:
        image = read_image(folder / "images" / f"{int(ident):03d}.png")
        truth = tifffile.imread(folder / "labels" / f"{int(ident):03d}.tif")
        x = normalize_image(image, low=legacy.settings.low, high=legacy.settings.high)
        sizes = {"true": median_diameter(truth),
                 "model": estimate_diameter(image, model=legacy, method="model"),
                 "classical": estimate_diameter(image, model=legacy, method="classical")}
        for size, d in sizes.items():
            xs = legacy.to_model_scale(x, d)
            for tta in tta_values:
                prob = legacy.probabilities(xs, tta=tta)
                for decode, model in models.items():
                    pred, _ = model.decode_probabilities(prob, truth.shape)
                    m = match_instances(pred, truth)
                    scores.setdefault((size, decode, tta), []).append(
                        (m["f1"], average_precision(pred, truth)))
    return {key: np.mean(v, axis=0).tolist() for key, v in scores.items()}


def decode_times(model: NucleusModel, repeats: int = 5) -> dict:
    """Median seconds of each decode of the probabilities of a 512² image."""
    from skimage.filters import gaussian

    rng = np.random.default_rng(0)
    prob = model.probabilities(normalize_image(gaussian(rng.random((512, 512)), 3)))
    out = {}
    for decode in DECODES:
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            probabilities_to_instances(prob, marker_threshold=model.marker_threshold,
                                       foreground_threshold=model.foreground_threshold,
                                       decode=decode, diameter=model.diameter)
            times.append(time.perf_counter() - t0)
        out[decode] = float(np.median(times))
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description="nucleus model decodes on the train splits")
    ap.add_argument("--sets", nargs="+", default=list(SETS))
    ap.add_argument("--split", default="train", choices=("train", "test"))
    ap.add_argument("--model", default=None, help="ONNX file (default: the built-in model)")
    ap.add_argument("--tta", nargs="+", type=int, default=[1], choices=(1, 2, 4, 8))
    ap.add_argument("--limit", type=int, default=None, help="first N images per set")
    args = ap.parse_args(argv)
    models = {d: NucleusModel(args.model, decode=d, tta=1) for d in DECODES}
    results = {}
    for name, folder in set_folders(args.sets):
        results[name] = run_set(folder, args.split, models, args.tta, args.limit)
        print(f"{name} done", flush=True)
    names = list(results)
    print(f"\n{args.split} split, mean per-image F1@0.5 / DSB AP"
          f"{f' (first {args.limit} images per set)' if args.limit else ''}")
    print("| size | decode | TTA | " + " | ".join(n.replace("dsb2018_", "") for n in names)
          + " | mean F1 | mean AP |")
    print("|---|---|---|" + "---|" * (len(names) + 2))
    for key in next(iter(results.values())) if results else ():
        cells = [results[n][key] for n in names]
        print(f"| {key[0]} | {key[1]} | {key[2]} | "
              + " | ".join(f"{f:.3f} / {a:.3f}" for f, a in cells)
              + f" | {np.mean([c[0] for c in cells]):.3f} | {np.mean([c[1] for c in cells]):.3f} |")
    t = decode_times(models["interior"])
    print("\n512² decode time: " + ", ".join(f"{k} {v:.3f} s" for k, v in t.items())
          + f" (load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")


if __name__ == "__main__":
    main()
