"""``cellseg segment``: images into label TIFFs, tables and params.json (:mod:`..batch`)."""
from __future__ import annotations

import argparse

from ..batch import run_batch
from ._common import (EXIT_FAILED, EXIT_OK, UsageError, add_method_options, method_from_args,
                      progress_bar, say)

_SEGMENT_EPILOG = """\
examples:
  cellseg segment data/voced --preset lab03v2 --out results
  cellseg segment scans/*.png --params tuned.json --out results --jobs 4
  cellseg segment big_folder --preset auto-cytology --out results --resume
  cellseg segment /shared/slides --preset lab03v2 --out /shared/out --dask tcp://scheduler:8786

writes:
  OUT/labels/<stem>.tif   uint8 classes: 0 background, 1 cytoplasm, 2 nucleus
  OUT/nuclei/<stem>.tif   uint16 (uint32 above 65535) nucleus instances, plain TIFF
  OUT/images.csv          per image: areas, N/C ratio, counts, thresholds, Dice/IoU
                          when a mask with the same stem sits in a sibling masks/ folder
  OUT/objects.csv         per nucleus and its cell: areas, N/C, intensity, centroid, shape
  OUT/params.json         exactly what ran and the cellseg version
exit code 0 when every image succeeded, 1 when some failed (listed), 2 for usage errors.
"""


def add_parser(sub) -> None:
    p = sub.add_parser("segment", help="segment images into labels, instances and tables",
                       description="Segment image files and folders; write TIFFs and CSVs to --out.",
                       epilog=_SEGMENT_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("inputs", nargs="+", metavar="INPUT",
                   help="image files or folders (a dataset folder's images/ is used)")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (created)")
    add_method_options(p)
    p.add_argument("--jobs", type=int, default=1, metavar="N",
                   help="worker processes on this machine (default 1)")
    p.add_argument("--dask", metavar="ADDRESS",
                   help="run on an existing Dask cluster, e.g. tcp://scheduler:8786")
    p.add_argument("--resume", action="store_true",
                   help="skip images whose outputs exist from an earlier run with the same method")
    p.set_defaults(func=run)


def run(args) -> int:
    method = method_from_args(args)
    if args.jobs < 1:
        raise UsageError(f"--jobs must be at least 1, got {args.jobs}")
    bar = None

    def progress(done, total, name):
        nonlocal bar
        if bar is None:
            bar = progress_bar(total, "segment", initial=done)
        else:
            bar.update(done - bar.n)

    try:
        result = run_batch(args.inputs, args.out, method, jobs=args.jobs,
                           dask_address=args.dask, resume=args.resume, progress=progress)
    finally:
        if bar is not None:
            bar.close()
    images = result.images
    ok = images[images["status"] == "ok"]
    line = (f"{len(ok)} of {len(images)} images segmented"
            f"{f' ({result.n_skipped} already done, skipped)' if result.n_skipped else ''}"
            f" in {result.seconds:.1f} s; {len(result.objects)} nuclei; outputs in {args.out}")
    scored = ok[ok["has_mask"].astype(bool)]
    if len(scored):
        line += (f"\nmean Dice {scored['mean_dice'].mean():.4f} over {len(scored)} images with"
                 f" a mask (cytoplasm {scored['dice_cytoplasm'].mean():.4f}, nucleus "
                 f"{scored['dice_nucleus'].mean():.4f})")
    say(line)
    for name, message in result.failed:
        say(f"FAILED {name}: {message}")
    if result.failed:
        say(f"{len(result.failed)} image(s) failed; rerun with --resume after fixing them")
        return EXIT_FAILED
    return EXIT_OK
