"""``cellseg evaluate``: a method's scores against a dataset's masks (:mod:`..evaluation`)."""
from __future__ import annotations

import argparse
import json
import math

from ..data import dataset_from_spec, split_ids
from ..evaluation import evaluate, instance_scores
from ._clusters import add_cluster_options, run_clusters
from ._common import EXIT_OK, UsageError, add_method_options, method_from_args, progress_bar, say

_EVALUATE_EPILOG = """\
examples:
  cellseg evaluate data/voced --split test --preset lab02
  cellseg evaluate data/voced --split all --params tuned.json --json > scores.json
  cellseg evaluate data/dsb --preset auto-fluorescence      # adds F1@0.5 and AP
  cellseg evaluate data/voced --method kmeans --k 3 4 5     # the ECSE 415 study's sweep

DATASET is a folder with images/ and masks/ (and optionally labels/ with instance masks
and split.json), or a course folder with X/*.npy and y/*.npy, or demo-cytology /
demo-fluorescence (generated in memory).
"""


def add_parser(sub) -> None:
    p = sub.add_parser("evaluate", help="score a method against a dataset's masks",
                       description="Print the compare table: mean Dice, per-class Dice, IoU, "
                                   "N/C MAE and R2 (and instance F1@0.5 / AP with labels/).",
                       epilog=_EVALUATE_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("dataset", metavar="DATASET")
    p.add_argument("--split", default="test", help="train, test, all (default test), or lab02-test / lab02-train: the "
                        "course's Lab 02 split (split_lab02.json, else derived)")
    add_method_options(p)
    add_cluster_options(p)
    p.add_argument("--json", action="store_true", help="print JSON (summary and per image)")
    p.set_defaults(func=run)


def run(args) -> int:
    method = None if args.method else method_from_args(args)
    dataset = dataset_from_spec(args.dataset)
    if not dataset.has_masks:
        raise UsageError(f"{args.dataset}: has no masks to compare with")
    ids = split_ids(dataset, args.split, note=say)
    if args.method:
        return run_clusters(args, dataset, ids)
    bar = progress_bar(len(ids), "evaluate")

    def progress(*a):
        bar.update(1)

    try:
        result = evaluate(dataset, ids, method, progress=progress)
    finally:
        bar.close()
    summary = {k: v.item() if hasattr(v, "item") else v for k, v in result.summary.items()}
    instances = instance_scores(dataset, ids, method)
    if instances:
        summary.update(instances)
    summary = {"dataset": dataset.name, "split": args.split, "n_images": len(ids),
               "method": args.preset or args.params or args.model or "default", **summary}
    if args.json:
        print(json.dumps({"summary": summary,
                          "per_image": json.loads(result.per_image.to_json(orient="records"))},
                         indent=2))
        return EXIT_OK
    width = max(len(k) for k in summary)
    for key, value in summary.items():
        shown = f"{value:.4f}" if isinstance(value, float) and math.isfinite(value) else value
        print(f"{key:<{width}}  {shown}")
    return EXIT_OK
