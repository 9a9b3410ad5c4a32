"""``cellseg segment``: images into label TIFFs, tables and params.json (:mod:`..batch`)."""
from __future__ import annotations

import argparse

from ..batch import find_inputs, run_batch
from ..export import EXPORTS, export_run, parse_exports
from ..flags import RatioFlags
from ..io import write_bytes_atomic
from ..report import run_report
from ._common import (EXIT_FAILED, EXIT_OK, UsageError, add_method_options, method_from_args,
                      progress_bar, say)

_SEGMENT_EPILOG = """\
examples:
  cellseg segment data/voced --preset lab03v2 --out results
  cellseg segment scans/*.png --params tuned.json --out results --jobs 4
  cellseg segment big_folder --preset auto-cytology --out results --resume
  cellseg segment more_images --preset auto-cytology --out results --resume   # adds them
  cellseg segment big_folder --preset lab02 --out results --overwrite
  cellseg segment /shared/slides --preset lab03v2 --out /shared/out --dask tcp://scheduler:8786

writes:
  OUT/labels/<stem>.tif   uint8 classes: 0 background, 1 cytoplasm, 2 nucleus
  OUT/nuclei/<stem>.tif   uint16 (uint32 above 65535) nucleus instances, plain TIFF
  OUT/images.csv          per image: areas (px, and µm² with a pixel size), both N/C
                          ratios, counts, flagged cells, thresholds, Dice/IoU when a
                          mask with the same stem sits in a sibling masks/ folder
  OUT/objects.csv         per nucleus and its cell: areas, both N/C ratios, ratio flags,
                          intensity, centroid, shape, nuclear features
  OUT/params.json         exactly what ran and the cellseg version
nc_ratio = nucleus / cytoplasm area (the course's); nucleus_cell_ratio = nucleus /
(nucleus + cytoplasm) area (The Paris System's, QuPath's). Pixel size: --pixel-size, else
a dataset folder's dataset.json {"pixel_size_um": ...}, else the TIFF's own metadata; the
label TIFFs record it. Flags and features are measurements for review, not a diagnosis.
with --export (any of geojson,imagej,binary), beside them:
  OUT/geojson/<stem>.geojson   QuPath GeoJSON: cells (with nucleusGeometry) or nuclei,
                               objects.csv's numbers as measurements
  OUT/rois/<stem>.zip          ImageJ ROI set of the nucleus outlines (Fiji's ROI Manager)
  OUT/binary/<stem>_{nucleus,cytoplasm,cell}.png   0/255 masks
with --report: OUT/report.html, a one-page printable report of the run
With --object-classifier FILE (from `cellseg train --method objects` or Explore's
"Classify cells"), objects.csv gets two more columns after the others: class (the
predicted cell class) and class_probability (the forest's vote for it, 0-1).
An OUT folder that holds a run's outputs is refused unless --resume (continue it: its
earlier images stay in the tables) or --overwrite (remove them first) is given.
An image with more objects than CELLSEG_MAX_OBJECTS (default 20000) gets its TIFFs and
its images.csv row, with the reason in the warnings column and on stderr, but no
objects.csv rows.
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
    p.add_argument("--pixel-size", type=float, default=None, metavar="UM",
                   help="micrometres per pixel for every image (default: a dataset.json's "
                        "pixel_size_um, else the TIFF's metadata, else none: pixels only)")
    p.add_argument("--flag-cutoffs", default="0.5,0.7", metavar="ATYPIA,HIGH",
                   help="nucleus/cell ratio cut-offs of the flag_atypia and flag_high_grade "
                        "columns (default 0.5,0.7, The Paris System's)")
    p.add_argument("--jobs", type=int, default=1, metavar="N",
                   help="worker processes on this machine (default 1)")
    p.add_argument("--dask", metavar="ADDRESS",
                   help="run on an existing Dask cluster, e.g. tcp://scheduler:8786")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out: skip images whose outputs exist (same "
                        "method), add new ones; earlier rows of the tables are kept")
    p.add_argument("--overwrite", action="store_true",
                   help="remove the outputs of an earlier run in --out first")
    p.add_argument("--export", metavar="LIST", default=None,
                   help=f"also write other tools' formats, comma-separated: {','.join(EXPORTS)}"
                        " (QuPath GeoJSON, ImageJ ROI zip, 0/255 PNG masks)")
    p.add_argument("--report", action="store_true",
                   help="also write report.html: a one-page printable report of the run")
    p.add_argument("--object-classifier", metavar="FILE",
                   help="an object classifier file (cellseg train --method objects, or "
                        "the app's Classify cells): adds class and class_probability "
                        "columns to objects.csv")
    p.set_defaults(func=run)


def run(args) -> int:
    method = method_from_args(args)
    if args.jobs < 1:
        raise UsageError(f"--jobs must be at least 1, got {args.jobs}")
    if args.pixel_size is not None and not (args.pixel_size > 0 and args.pixel_size < 1e6):
        raise UsageError(f"--pixel-size must be a positive number of µm per pixel, "
                         f"got {args.pixel_size}")
    try:
        flags = RatioFlags.parse(args.flag_cutoffs)
    except (TypeError, ValueError) as err:
        raise UsageError(f"--flag-cutoffs: {err}") from None
    try:
        exports = parse_exports(args.export) if args.export is not None else []
    except ValueError as err:
        raise UsageError(f"--export: {err}") from None
    bar = None

    def progress(done, total, name):
        nonlocal bar
        if bar is None:
            bar = progress_bar(total, "segment", initial=done)
        else:
            bar.update(done - bar.n)

    try:
        result = run_batch(args.inputs, args.out, method, jobs=args.jobs,
                           dask_address=args.dask, resume=args.resume,
                           overwrite=args.overwrite, progress=progress,
                           pixel_size=args.pixel_size, flags=flags,
                           object_classifier=getattr(args, "object_classifier", None))
    finally:
        if bar is not None:
            bar.close()
    images = result.images
    ok = images[images["status"] == "ok"]
    n_nuclei = int(ok["n_nuclei"].sum())
    measured = f" ({len(result.objects)} measured)" if len(result.objects) != n_nuclei else ""
    line = (f"{len(ok)} of {len(images)} images segmented"
            f"{f' ({result.n_skipped} already done, skipped)' if result.n_skipped else ''}"
            f" in {result.seconds:.1f} s; {n_nuclei} nuclei{measured}; outputs in {args.out}")
    scored = ok[ok["has_mask"].astype(bool)]
    if len(scored):
        line += (f"\nmean Dice {scored['mean_dice'].mean():.4f} over {len(scored)} images with"
                 f" a mask (cytoplasm {scored['dice_cytoplasm'].mean():.4f}, nucleus "
                 f"{scored['dice_nucleus'].mean():.4f})")
    say(line)
    _extras(args, exports)
    warned = images[images["warnings"].notna()]
    for name, message in zip(warned["image"], warned["warnings"]):
        say(f"WARNING {name}: {message}")
    for name, message in result.failed:
        say(f"FAILED {name}: {message}")
    if result.failed:
        say(f"{len(result.failed)} image(s) failed; rerun with --resume after fixing them")
        return EXIT_FAILED
    return EXIT_OK


def _extras(args, exports) -> None:
    """The --export files and the --report page, from the run's output folder."""
    pixel_size = getattr(args, "pixel_size", None)
    if exports:
        written, skipped = export_run(args.out, exports, pixel_size=pixel_size)
        say(f"exports ({', '.join(exports)}): {len(written)} files in {args.out}")
        for stem, reason in skipped:
            say(f"WARNING {stem}: not exported: {reason}")
    if args.report:
        try:
            found = {item.stem: item.image for item in find_inputs(args.inputs, masks=False)}
        except ValueError:
            found = {}
        path = write_bytes_atomic(f"{args.out}/report.html",
                                  run_report(args.out, images=found).encode("utf-8"))
        say(f"report: {path}")
