"""``cellseg train``: fit a learned model on a dataset, save its file, score it on the test
split (:mod:`..learn`)."""
from __future__ import annotations

import argparse

from ..data import dataset_from_spec, split_ids
from ..evaluation import evaluate
from ..learn import (CHANNELS, ESTIMATORS, FeatureSettings, PixelClassifier,
                     ProbabilityEnsemble, UNetModel, train_on_dataset)
from . import train_nuclei
from . import train_objects
from ._common import EXIT_OK, say


def add_parser(sub) -> None:
    parser = sub.add_parser(
        "train", help="train a pixel classifier on a dataset (saves a --model file)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  cellseg train data/voced --out model.joblib\n"
               "  cellseg segment new_images --model model.joblib --out results\n")
    parser.add_argument("dataset", metavar="DATASET",
                        help="a dataset folder (images/ + masks/ [+ split.json]), a course "
                             "folder (X/*.npy, y/*.npy) or demo-cytology")
    parser.add_argument("--out", required=True, metavar="FILE",
                        help="where to write the model file (use it with --model)")
    parser.add_argument("--split", default="train",
                        help="train (default), test, all, lab02-train or lab02-test: the images "
                             "to train on")
    parser.add_argument("--limit", type=int, metavar="N",
                        help="train on the first N images of the split only")
    parser.add_argument("--features", default=",".join(FeatureSettings().channels),
                        metavar="CHANNELS",
                        help=f"comma-separated colour channels from {', '.join(CHANNELS)} "
                             "(default rgb,lab)")
    parser.add_argument("--scale", type=float, default=FeatureSettings().scale,
                        help="working scale of the features (default 0.25)")
    parser.add_argument("--estimator", choices=ESTIMATORS, default="boosting")
    parser.add_argument("--n-estimators", type=int, default=100, metavar="N",
                        help="boosting iterations or trees (default 100)")
    parser.add_argument("--samples-per-class", type=int, default=300, metavar="N",
                        help="pixels sampled per class and image (default 300)")
    parser.add_argument("--auto-context", action="store_true",
                        help="two stages, as ilastik's auto-context: the second classifier "
                             "also sees features of the first one's probabilities (better "
                             "Dice, about 1.7x the training time; --method pixel only)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--method", choices=("pixel", "unet", "ensemble", "objects",
                                              "unet-nuclei"),
                        default="pixel",
                        help="pixel: the pixel classifier (default); unet: the small U-Net; "
                             "ensemble: both, their probabilities averaged, in one file "
                             "(unet and ensemble need the deep extra: pip install .[deep]); "
                             "objects: an object classifier (cell classes) from the "
                             "dataset's classes/<stem>.csv files (label,class), for "
                             "`cellseg segment --object-classifier`; unet-nuclei: fine-tune "
                             "the built-in nucleus model on instance labels, --out FILE.onnx "
                             "(deep extra)")
    parser.add_argument("--epochs", type=int, default=None, metavar="N",
                        help="U-Net training epochs (default 60 for --method unet or "
                             "ensemble; at most 30 with early stopping for unet-nuclei)")
    parser.add_argument("--unets", type=int, default=1, metavar="N",
                        help="U-Nets in the ensemble, each from its own seed (default 1; "
                             "--method ensemble)")
    train_nuclei.add_arguments(parser)
    parser.set_defaults(func=run)


def run(args) -> int:
    """Run ``cellseg train``: fit, save, and score on the test split when there is one.

    Progress goes to stderr, the test scores to stdout. A ValueError (bad option,
    dataset without masks) reaches :func:`cellseg_core.cli.main`, which exits with 2.
    """
    method = getattr(args, "method", "pixel")
    epochs = args.epochs if getattr(args, "epochs", None) is not None else 60
    if method == "unet-nuclei":
        dataset = dataset_from_spec(args.dataset)
        return train_nuclei.run(args, dataset, _limited(args, split_ids(dataset, args.split,
                                                                          note=say)))
    if method == "objects":
        return train_objects.run(args)
    if method == "unet":
        model = UNetModel(scale=args.scale, epochs=epochs)
    else:
        channels = tuple(c.strip() for c in args.features.split(",") if c.strip())
        settings = FeatureSettings(channels=channels, scale=args.scale)
        model = PixelClassifier(settings, estimator=args.estimator,
                                n_estimators=args.n_estimators,
                                samples_per_class=args.samples_per_class,
                                auto_context=getattr(args, "auto_context", False))
        if method == "ensemble":
            n_unets = getattr(args, "unets", 1)
            if not 1 <= n_unets <= 8:
                raise ValueError(f"--unets must be 1 to 8, got {n_unets}")
            model = ProbabilityEnsemble([model, *(UNetModel(scale=args.scale, epochs=epochs)
                                                  for _ in range(n_unets))])
    dataset = dataset_from_spec(args.dataset)
    if not dataset.has_masks:
        raise ValueError(f"{args.dataset}: has no masks to train on")
    ids = _limited(args, split_ids(dataset, args.split, note=say))
    say(f"training {model!r} on {len(ids)} image(s) of {dataset.name} ({args.split})")
    shown = [-1]

    def progress(fraction, message):
        step = int(fraction * 10)
        if step != shown[0]:
            shown[0] = step
            say(f"  {fraction:4.0%}  {message}")

    train_on_dataset(dataset, ids, model=model, rng=args.seed, progress=progress)
    model.save(args.out)
    say(f"fitted in {model.fit_seconds_:.1f} s; saved to {args.out}; use it with: "
        f"cellseg segment ... --model {args.out}")
    test = list((dataset.split or {}).get("test") or [])
    if test and args.split != "test":
        say(f"scoring on the test split ({len(test)} images)…")
        summary = evaluate(dataset, test, model).summary
        rows = {"test_images": len(test), **{k: summary[k] for k in (
            "mean_dice", "dice_cytoplasm", "dice_nucleus", "mean_iou", "nc_mae", "nc_r2",
            "seconds_per_image")}}
        width = max(map(len, rows))
        for key, value in rows.items():
            shown_value = f"{value:.4f}" if isinstance(value, float) else value
            print(f"{key:<{width}}  {shown_value}")
    return EXIT_OK


def _limited(args, ids: list) -> list:
    """The first ``--limit`` ids (all without it)."""
    if args.limit is None:
        return ids
    if args.limit < 1:
        raise ValueError(f"--limit must be at least 1, got {args.limit}")
    return ids[:args.limit]
