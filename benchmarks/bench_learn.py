"""Learned methods on VocEd's canonical split, next to the presets lab02 and lab03v2.

Prints one table, one row per method: training time (160 train images: reading,
features, fitting; wall-clock seconds and the process's CPU seconds, which a busy
shared machine inflates less), prediction time per 256x256 image (segment(), clean-up and
instances included), and test scores over the 40 test images: mean Dice, per-class
Dice, pooled Dice, N/C MAE and N/C R² (identity); then a second table with the same
scores on the 36 test images that are not near-copies of training images (test ids
58, 99, 157 and 192 correlate > 0.99 with train images 128, 141, 131 and 189; see the
data set's README): a model that only remembered its training images would drop there.

Goals (issue 8): pixel classifier training <= 60 s on 2 cores, prediction <= 0.3 s per
image, test mean Dice >= 0.87 and N/C R² >= 0.5.

Usage::

    python3 benchmarks/bench_learn.py              # default classifier, k-means, presets
    python3 benchmarks/bench_learn.py --all        # also the forest and lab-colour variants
    python3 benchmarks/bench_learn.py --seed 1
    python3 benchmarks/bench_learn.py --no-deep    # skip the U-Net rows (minutes)
    python3 benchmarks/bench_learn.py --best       # only the recommended ensemble (~10 min)
    python3 benchmarks/bench_learn.py --nuclei dsb2018_fluo --fine-tune-minutes 8
        # the nuclei table instead (issue 18): the built-in model, a U-Net fine-tuned on
        # the set's train split (cellseg train --method unet-nuclei), the textbook Otsu
        # baseline (polarity from the image kind)
        # and the automatic presets on the test split (F1@0.5, DSB AP, precision,
        # recall, count error): cellseg_core.evaluation.compare_nuclei, as on Compare.
        # (benchmarks/bench_nuclei.py: the built-in model's own scale variants and speed.)
    python3 benchmarks/bench_learn.py --nuclei dsb2018_histo --methods "otsu baseline"
        # only the named rows (seconds; no fine-tuning without --fine-tune-minutes)

With PyTorch (``pip install .[deep]``) it adds the small U-Net and the ensembles of its
probabilities with each pixel classifier's; without, it says the rows were skipped.

Data: env CELLSEG_VOCED or ../shared/data/voced.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

from _common import voced_path

from cellseg_core.data import Dataset
from cellseg_core.learn import (FeatureSettings, KMeansBaseline,
                                MeanShiftBaseline, PixelClassifier, train_on_dataset)
from cellseg_core.evaluation import evaluate
from cellseg_core.presets import get_preset


#: Test ids that are near-copies of training images (pixel correlation > 0.99).
NEAR_COPIES = ("058", "099", "157", "192")


def _unseen_summary(per_image) -> dict:
    """Mean Dice, per-class Dice and N/C errors without the near-copies."""
    from cellseg_core.metrics import nc_errors

    keep = per_image[~per_image["id"].astype(str).isin(NEAR_COPIES)]
    out = {k: float(keep[k].mean()) for k in ("mean_dice", "dice_cytoplasm", "dice_nucleus")}
    out.update(nc_errors(keep["nc_pred"], keep["nc_true"]))
    out.update(seconds_per_image=float(keep["seconds"].mean()), n=len(keep),
               pooled_dice=float("nan"))
    return out


def _table(rows, title, file=None) -> None:
    print(f"\ntest scores on {title}", file=file)
    head = (f"{'method':44s} {'train s':>8s} {'cpu s':>7s} {'pred s':>7s} {'Dice':>6s} {'cyto':>6s} "
            f"{'nucl':>6s} {'pooled':>6s} {'NC MAE':>7s} {'NC R2':>6s}")
    print(head, file=file)
    print("-" * len(head), file=file)
    for name, (train_s, cpu_s), s, _ in rows:
        train = "-" if train_s != train_s else f"{train_s:8.1f}"
        cpu = "-" if cpu_s != cpu_s else f"{cpu_s:7.1f}"
        pooled = "-" if s["pooled_dice"] != s["pooled_dice"] else f"{s['pooled_dice']:6.3f}"
        print(f"{name:44s} {train:>8s} {cpu:>7s} {s['seconds_per_image']:7.3f} {s['mean_dice']:6.3f} "
              f"{s['dice_cytoplasm']:6.3f} {s['dice_nucleus']:6.3f} {pooled:>6s} "
              f"{s['nc_mae']:7.3f} {s['nc_r2']:6.3f}", file=file, flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--all", action="store_true", help="also the slower variants")
    parser.add_argument("--best", action="store_true",
                        help="only the presets and the recommended model: pixel classifier "
                             "+ 2 U-Nets of 120 epochs (`cellseg train --method ensemble "
                             "--epochs 120 --unets 2`), chosen on a holdout of the train split")
    parser.add_argument("--no-deep", action="store_true",
                        help="skip the U-Net and ensemble rows even with PyTorch installed")
    parser.add_argument("--nuclei", nargs="+", metavar="SET",
                        help="print the nuclei table for these sets of ../shared/data "
                             "(e.g. dsb2018_fluo) instead of the VocEd table")
    parser.add_argument("--fine-tune-minutes", type=float, default=0, metavar="M",
                        help="--nuclei: also fine-tune the built-in model on each set's train "
                             "split for at most M minutes (needs PyTorch) and add its row")
    parser.add_argument("--nuclei-model", action="append", default=[], metavar="FILE.onnx",
                        help="--nuclei: also score this nucleus model (repeatable)")
    parser.add_argument("--limit", type=int, default=None,
                        help="--nuclei: the first N test images only")
    parser.add_argument("--methods", nargs="+", default=None, metavar="NAME",
                        help="--nuclei: only these rows (names as printed, e.g. 'otsu "
                             "baseline'); the network rows take minutes, the classic seconds")
    args = parser.parse_args(argv)
    if args.nuclei:
        return nuclei_tables(args)
    path = voced_path()
    if not (path / "images").is_dir():
        sys.exit(f"VocEd data not found at {path} (set CELLSEG_VOCED)")

    methods = {
        "pixel classifier (boosting, rgb+lab, 1/4)": lambda: PixelClassifier(FeatureSettings()),
        "pixel classifier, auto-context (2 stages)":
            lambda: PixelClassifier(FeatureSettings(), auto_context=True),
        "k-means baseline (K=4)": lambda: KMeansBaseline(4),
        "mean-shift baseline (quantile 0.2, narrowed to >= 3 modes)": lambda: MeanShiftBaseline(),
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
    from cellseg_core.learn import ProbabilityEnsemble, UNetModel, torch_available

    skipped = []
    if args.best:
        if not torch_available():
            parser.error("--best needs PyTorch (pip install .[deep])")
        methods = {"ensemble pixel classifier + 2 U-Nets (120 epochs)":
                   lambda: ProbabilityEnsemble([PixelClassifier(FeatureSettings()),
                                                UNetModel(epochs=120), UNetModel(epochs=120)])}
    elif args.no_deep:
        skipped.append("U-Net rows skipped (--no-deep)")
    elif torch_available():
        methods["U-Net (Lab 06, 1/4, 60 epochs, TTA)"] = lambda: UNetModel()
    else:
        skipped.append("U-Net rows skipped: PyTorch is not installed "
                       "(install the deep extra: pip install .[deep])")
    rows = []
    for name in ("lab02", "lab03v2"):
        ds = Dataset.from_folder(path)  # fresh: no image cache shared between rows
        ev = evaluate(ds, ds.split["test"], get_preset(name), cache={})
        rows.append((f"preset {name}", (float("nan"),) * 2, ev.summary, ev.per_image))
        _table(rows[-1:], "all test images, so far", file=sys.stderr)
    fitted = {}
    for name, make in methods.items():
        ds = Dataset.from_folder(path)
        start, cpu_start = time.perf_counter(), time.process_time()
        # With a progress callback, as `cellseg train` and the Train page fit (in chunks
        # of trees, reported as they go): the time measured is the time they take.
        model = train_on_dataset(ds, ds.split["train"], model=make(), rng=args.seed,
                                 progress=lambda fraction, message: None)
        train_s = (time.perf_counter() - start, time.process_time() - cpu_start)
        ev = evaluate(ds, ds.split["test"], model, cache={})
        rows.append((name, train_s, ev.summary, ev.per_image))
        fitted[name] = (model, train_s)
        _table(rows[-1:], "all test images, so far", file=sys.stderr)  # a row as it ends
    unets = [k for k in fitted if k.startswith("U-Net")]  # none with --best
    if unets:
        # The members fitted above, their probabilities averaged (what `cellseg train
        # --method ensemble [--auto-context]` saves as one file); train s = the sum.
        (unet, unet_s) = fitted[unets[0]]
        for name in ("pixel classifier (boosting, rgb+lab, 1/4)",
                     "pixel classifier, auto-context (2 stages)"):
            pc, pc_s = fitted[name]
            ds = Dataset.from_folder(path)
            ev = evaluate(ds, ds.split["test"], ProbabilityEnsemble([pc, unet]), cache={})
            label = "auto-context" if pc.auto_context else "pixel classifier"
            rows.append((f"ensemble U-Net + {label} (mean p)",
                         (unet_s[0] + pc_s[0], unet_s[1] + pc_s[1]), ev.summary,
                         ev.per_image))

    print(f"VocEd canonical split ({path}), seed {args.seed}, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f} at the end")
    _table(rows, "all 40 test images")
    unseen = [(name, train_s, _unseen_summary(per_image)) for name, train_s, _, per_image in rows]
    _table([(n, t, s, None) for n, t, s in unseen],
           f"the {len(unseen) and unseen[0][2]['n']} test images that are not near-copies of "
           f"training images (without {', '.join(NEAR_COPIES)})")
    print("goals: train <= 60 s, predict <= 0.3 s, Dice >= 0.87, N/C R2 >= 0.5")
    for line in skipped:
        print(line)


def nuclei_tables(args) -> None:
    """One table per set: nucleus methods on its test split (issue 18 point 7)."""
    import tempfile
    from pathlib import Path

    from _common import REPO
    from cellseg_core.data import open_dataset
    from cellseg_core.evaluation import compare_nuclei
    from cellseg_core.evaluation.nuclei import SUMMARY_COLUMNS
    from cellseg_core.learn.nuclei_training import NucleusTrainingSettings, train_nucleus_model
    from cellseg_core.methods import load_method, nucleus_methods
    from cellseg_core.learn import torch_available

    root = Path(os.environ.get("CELLSEG_DATA") or REPO.parent / "shared" / "data")
    for name in args.nuclei:
        ds = open_dataset(root / name)
        test = list(ds.split["test"])[:args.limit]
        methods = dict(nucleus_methods())
        if args.methods:
            unknown = set(args.methods) - set(methods)
            if unknown:
                raise SystemExit(f"--methods: unknown {sorted(unknown)}; known: {list(methods)}")
            methods = {k: v for k, v in methods.items() if k in args.methods}
        for file in args.nuclei_model:
            methods[f"model {Path(file).name}"] = load_method(model=file)
        note = ""
        if args.fine_tune_minutes and torch_available():
            out = Path(tempfile.mkdtemp()) / f"{name}-fine-tuned.onnx"
            settings = NucleusTrainingSettings(minutes=args.fine_tune_minutes, seed=args.seed)
            start = time.perf_counter()
            log = train_nucleus_model(ds, ds.split["train"], out, settings)
            note = (f"fine-tuned: {len(log['train_ids'])} train + {len(log['val_ids'])} "
                    f"validation images, {len(log['epochs'])} epochs ({log['stopped']}), best "
                    f"validation F1 {log['best']['val_f1']:.3f}, "
                    f"{time.perf_counter() - start:.0f} s")
            builtin = {k: methods.pop(k) for k in ["builtin:nuclei"] if k in methods}
            methods = {**builtin, "U-Net fine-tuned (unet-nuclei)": load_method(model=str(out)),
                       **methods}
        elif args.fine_tune_minutes:
            note = "fine-tuned row skipped: PyTorch is not installed"
        table = compare_nuclei(ds, test, methods).summary
        print(f"\n{name}: test split, {len(test)} images, seed {args.seed}, {os.cpu_count()} CPUs")
        print("| method | " + " | ".join(SUMMARY_COLUMNS) + " |")
        print("|---|" + "---|" * len(SUMMARY_COLUMNS))
        for _, row in table.iterrows():
            print(f"| {row['method']} | " + " | ".join(
                f"{row[c]:.3f}" if c != "|count error|" and c != "count error"
                else f"{row[c]:.1f}" for c in SUMMARY_COLUMNS) + " |")
        if note:
            print(note)
        sys.stdout.flush()


if __name__ == "__main__":
    main()
