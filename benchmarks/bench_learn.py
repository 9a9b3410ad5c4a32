"""Learned methods on VocEd's canonical split, next to the presets lab02 and lab03v2.

Prints one table, one row per method: training time (160 train images: reading,
features, fitting), prediction time per 256x256 image (segment(), clean-up and
instances included), and test scores over the 40 test images: mean Dice, per-class
Dice, pooled Dice, N/C MAE and N/C R² (identity).

Goals (issue 8): pixel classifier training <= 60 s on 2 cores, prediction <= 0.3 s per
image, test mean Dice >= 0.87 and N/C R² >= 0.5.

Usage::

    python3 benchmarks/bench_learn.py              # default classifier, k-means, presets
    python3 benchmarks/bench_learn.py --all        # also the forest and lab-colour variants
    python3 benchmarks/bench_learn.py --seed 1

With PyTorch (``pip install .[deep]``) it adds the small U-Net and the ensemble of its
probabilities with the pixel classifier's; without, it says the rows were skipped.

Data: env CELLSEG_VOCED or ../shared/data/voced.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from cellseg_core.datasets import Dataset  # noqa: E402
from cellseg_core.learn import (FeatureSettings, KMeansBaseline, PixelClassifier,  # noqa: E402
                                train_on_dataset)
from cellseg_core.optimize import evaluate  # noqa: E402
from cellseg_core.presets import get_preset  # noqa: E402


def _voced() -> Path:
    env = os.environ.get("CELLSEG_VOCED")
    return Path(env) if env else REPO.parent / "shared" / "data" / "voced"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--all", action="store_true", help="also the slower variants")
    args = parser.parse_args(argv)
    path = _voced()
    if not (path / "images").is_dir():
        sys.exit(f"VocEd data not found at {path} (set CELLSEG_VOCED)")

    methods = {
        "pixel classifier (boosting, rgb+lab, 1/4)": lambda: PixelClassifier(FeatureSettings()),
        "k-means baseline (K=4)": lambda: KMeansBaseline(4),
    }
    if args.all:
        methods.update({
            "pixel classifier (boosting, rgb, 1/4)":
                lambda: PixelClassifier(FeatureSettings(channels=("rgb",))),
            "pixel classifier (forest 50, rgb+lab, 1/4)":
                lambda: PixelClassifier(FeatureSettings(), estimator="forest", n_estimators=50),
            "k-means baseline (K=3)": lambda: KMeansBaseline(3),
            "k-means baseline (K=5)": lambda: KMeansBaseline(5),
        })
    from cellseg_core.unet import ProbabilityEnsemble, UNetModel, torch_available

    skipped = []
    if torch_available():
        methods["U-Net (Lab 06, 1/4, 60 epochs, TTA)"] = lambda: UNetModel()
    else:
        skipped.append("U-Net rows skipped: PyTorch is not installed "
                       "(install the deep extra: pip install .[deep])")
    rows = []
    for name in ("lab02", "lab03v2"):
        ds = Dataset.from_folder(path)  # fresh: no image cache shared between rows
        ev = evaluate(ds, ds.split["test"], get_preset(name), cache={})
        rows.append((f"preset {name}", float("nan"), ev.summary))
    fitted = {}
    for name, make in methods.items():
        ds = Dataset.from_folder(path)
        start = time.perf_counter()
        model = train_on_dataset(ds, ds.split["train"], model=make(), rng=args.seed)
        train_s = time.perf_counter() - start
        ev = evaluate(ds, ds.split["test"], model, cache={})
        rows.append((name, train_s, ev.summary))
        fitted[name] = (model, train_s)
    unets = [k for k in fitted if k.startswith("U-Net")]
    if unets:
        (unet, unet_s), (pc, pc_s) = fitted[unets[0]], next(iter(fitted.values()))
        ds = Dataset.from_folder(path)
        ev = evaluate(ds, ds.split["test"], ProbabilityEnsemble([unet, pc]), cache={})
        rows.append(("ensemble U-Net + pixel classifier (mean p)", unet_s + pc_s, ev.summary))

    print(f"VocEd canonical split ({path}), seed {args.seed}, {os.cpu_count()} CPUs")
    head = (f"{'method':44s} {'train s':>8s} {'pred s':>7s} {'Dice':>6s} {'cyto':>6s} "
            f"{'nucl':>6s} {'pooled':>6s} {'NC MAE':>7s} {'NC R2':>6s}")
    print(head)
    print("-" * len(head))
    for name, train_s, s in rows:
        train = "-" if train_s != train_s else f"{train_s:8.1f}"
        print(f"{name:44s} {train:>8s} {s['seconds_per_image']:7.3f} {s['mean_dice']:6.3f} "
              f"{s['dice_cytoplasm']:6.3f} {s['dice_nucleus']:6.3f} {s['pooled_dice']:6.3f} "
              f"{s['nc_mae']:7.3f} {s['nc_r2']:6.3f}")
    print("goals: train <= 60 s, predict <= 0.3 s, Dice >= 0.87, N/C R2 >= 0.5")
    for line in skipped:
        print(line)


if __name__ == "__main__":
    main()
