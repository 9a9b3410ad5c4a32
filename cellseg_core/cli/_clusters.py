"""``cellseg evaluate --method kmeans|meanshift``: the ECSE 415 study's unsupervised
segmentation, clustered per image and scored by its Dice matching
(:mod:`cellseg_core.learn.clusters`)."""
from __future__ import annotations

import json

from ..learn.clusters import cluster_sweep, sweep_table
from ._common import EXIT_OK, UsageError, progress_bar

__all__ = ["CLUSTER_METHODS", "add_cluster_options", "run_clusters"]

#: The unsupervised methods of ``--method``.
CLUSTER_METHODS = ("kmeans", "meanshift")


def add_cluster_options(parser) -> None:
    """``--method``, ``--k``, ``--gray``, ``--bandwidth``, ``--quantile``, ``--seed``."""
    group = parser.add_argument_group(
        "unsupervised, per image (the ECSE 415 study; instead of a preset or model)")
    group.add_argument("--method", choices=CLUSTER_METHODS,
                       help="cluster each image alone and match clusters to classes by "
                            "Dice; clusters beyond the classes score 0 (not merged)")
    group.add_argument("--k", type=int, nargs="+", default=[3], metavar="K",
                       help="k-means clusters; several values print the sweep table "
                            "(e.g. --k 3 4 5; default 3)")
    group.add_argument("--gray", action="store_true",
                       help="gray level instead of RGB in the features")
    group.add_argument("--bandwidth", type=float, default=None,
                       help="mean-shift bandwidth (z-scored feature units; default: "
                            "estimated per image)")
    group.add_argument("--quantile", type=float, default=0.3,
                       help="quantile of the estimated bandwidth (default 0.3)")
    group.add_argument("--seed", type=int, default=0, help="pixel samples and k-means")


def run_clusters(args, dataset, ids) -> int:
    """Cluster and score `ids` of `dataset`; print the table (or JSON)."""
    if args.preset or args.params or getattr(args, "model", None):
        raise UsageError("--method clusters each image itself: give it without "
                         "--preset, --params or --model")
    if any(k < 1 for k in args.k):
        raise UsageError(f"--k must be >= 1, got {args.k}")
    if args.bandwidth is not None and not args.bandwidth > 0:
        raise UsageError(f"--bandwidth must be > 0, got {args.bandwidth}")
    if not 0 < args.quantile <= 1:
        raise UsageError(f"--quantile must be in (0, 1], got {args.quantile}")
    missing = [i for i in ids if dataset.mask(i) is None]
    if missing:
        raise UsageError(f"{dataset.name}: no mask for {missing[:5]} to match clusters to")
    bar = progress_bar(len(ids), f"evaluate {args.method}")
    try:
        sweep = cluster_sweep(
            (dataset.image(i) for i in ids), [dataset.mask(i) for i in ids],
            args.k if args.method == "kmeans" else (), gray=args.gray,
            meanshift=args.method == "meanshift", bandwidth=args.bandwidth,
            quantile=args.quantile, ids=ids, rng=args.seed,
            progress=lambda *a: bar.update(1))
    finally:
        bar.close()
    table = sweep_table(sweep)
    if args.json:
        print(json.dumps({"dataset": dataset.name, "split": args.split, "n_images": len(ids),
                          "summary": json.loads(table.to_json(orient="records")),
                          "per_image": json.loads(sweep.to_json(orient="records"))}, indent=2))
        return EXIT_OK
    print(f"{dataset.name} / {args.split}: {len(ids)} images, clustered one by one; "
          "study_dice = the study's matching (surplus clusters score 0), mean_dice = "
          "(cytoplasm + nucleus Dice) / 2 of the matched labels")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    return EXIT_OK
