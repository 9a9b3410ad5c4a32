"""The ``cellseg`` command: batch segmentation, evaluation and tuning without a browser.

Every command calls the same core functions as the app (:mod:`cellseg_core.batch`,
:mod:`cellseg_core.optimize`, :mod:`cellseg_core.datasets`). Exit codes: 0 when every
image succeeded, 1 when some image failed (each is reported by name, the rest go on),
2 for a usage error (bad option, unknown preset, unreadable parameters file), 130 when
interrupted. Progress goes to stderr, results to stdout; no traceback is ever printed.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

__all__ = ["main", "build_parser", "parse_space"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class UsageError(Exception):
    """A problem with what the user asked for (exit code 2)."""


# --- helpers ---------------------------------------------------------------------------
def _say(*parts) -> None:
    print(*parts, file=sys.stderr, flush=True)


def _add_method_options(parser: argparse.ArgumentParser, *, model: bool = True) -> None:
    group = parser.add_argument_group("method (at most one; default: Params() = lab01 thresholds)")
    group.add_argument("--preset", metavar="NAME",
                       help="a built-in preset (see `cellseg presets`), e.g. lab03v2")
    group.add_argument("--params", metavar="FILE.json",
                       help="parameters saved by the app, or a previous run's params.json")
    if model:
        group.add_argument("--model", metavar="FILE", help="a model trained by `cellseg train`")


def _method(args):
    from .batch import load_method

    return load_method(preset=args.preset, params=args.params,
                       model=getattr(args, "model", None))


def _progress_bar(total: int, desc: str, *, initial: int = 0, unit: str = "img"):
    from tqdm import tqdm

    tqdm.monitor_interval = 0  # no monitor thread: worker processes fork from a thread-free parent
    return tqdm(total=total, initial=initial, desc=desc, unit=unit, file=sys.stderr,
                dynamic_ncols=True, leave=True)


# --- segment ---------------------------------------------------------------------------
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
  OUT/images.csv          per image: areas, N/C ratio, counts, thresholds, Dice/IoU
                          when a mask with the same stem sits in a sibling masks/ folder
  OUT/objects.csv         per nucleus and its cell: areas, N/C, intensity, centroid, shape
  OUT/params.json         exactly what ran and the cellseg version
An OUT folder that holds a run's outputs is refused unless --resume (continue it: its
earlier images stay in the tables) or --overwrite (remove them first) is given.
An image with more objects than CELLSEG_MAX_OBJECTS (default 20000) gets its TIFFs and
its images.csv row, with the reason in the warnings column and on stderr, but no
objects.csv rows.
exit code 0 when every image succeeded, 1 when some failed (listed), 2 for usage errors.
"""


def _cmd_segment(args) -> int:
    from .batch import run_batch

    method = _method(args)
    if args.jobs < 1:
        raise UsageError(f"--jobs must be at least 1, got {args.jobs}")
    bar = None

    def progress(done, total, name):
        nonlocal bar
        if bar is None:
            bar = _progress_bar(total, "segment", initial=done)
        else:
            bar.update(done - bar.n)

    try:
        result = run_batch(args.inputs, args.out, method, jobs=args.jobs,
                           dask_address=args.dask, resume=args.resume,
                           overwrite=args.overwrite, progress=progress,
                           preset=args.preset, model_path=args.model)
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
    _say(line)
    warned = images[images["warnings"].notna()]
    for name, message in zip(warned["image"], warned["warnings"]):
        _say(f"WARNING {name}: {message}")
    for name, message in result.failed:
        _say(f"FAILED {name}: {message}")
    if result.failed:
        _say(f"{len(result.failed)} image(s) failed; rerun with --resume after fixing them")
        return EXIT_FAILED
    return EXIT_OK


# --- evaluate --------------------------------------------------------------------------
_EVALUATE_EPILOG = """\
examples:
  cellseg evaluate data/voced --split test --preset lab02
  cellseg evaluate data/voced --split all --params tuned.json --json > scores.json
  cellseg evaluate data/dsb --preset auto-fluorescence      # adds F1@0.5 and AP

DATASET is a folder with images/ and masks/ (and optionally labels/ with instance masks
and split.json), or a course folder with X/*.npy and y/*.npy, or demo-cytology /
demo-fluorescence (generated in memory).
"""


def _open_dataset(name: str):
    try:
        from .datasets import demo_datasets, open_dataset
    except ImportError:
        raise UsageError("this version of cellseg has no dataset reader "
                         "(cellseg_core.datasets is missing)") from None
    if name in ("demo-cytology", "demo-fluorescence"):
        return demo_datasets()[name]
    if not Path(name).exists():
        raise UsageError(f"{name}: no such dataset folder")
    return open_dataset(name)


def _split_ids(dataset, split: str) -> list[str]:
    if split == "all":
        return list(dataset.ids)
    table = dataset.split
    if not table:
        if split == "test":
            _say(f"note: {dataset.name} has no split.json; evaluating all {len(dataset.ids)} images")
            return list(dataset.ids)
        raise UsageError(f"{dataset.name} has no split.json, so no {split!r} split; use --split all")
    if split not in table:
        raise UsageError(f"--split must be one of {sorted(table) + ['all']}, got {split!r}")
    return list(table[split])


def _instance_scores(dataset, ids, method) -> dict | None:
    """Instance F1@0.5 and DSB AP over images that have instance labels."""
    from .metrics import average_precision, match_instances
    from .params import Params
    from .pipeline import segment

    f1, ap = [], []
    for ident in ids:
        truth = dataset.instances(ident)
        if truth is None:
            continue
        image = dataset.image(ident)
        seg = segment(image, method) if isinstance(method, Params) else method.segment(image)
        f1.append(match_instances(seg.nuclei, truth, 0.5)["f1"])
        ap.append(average_precision(seg.nuclei, truth))
    if not f1:
        return None
    return {"instance_f1_0.5": float(sum(f1) / len(f1)), "instance_ap": float(sum(ap) / len(ap)),
            "n_instance_images": len(f1)}


def _cmd_evaluate(args) -> int:
    method = _method(args)
    dataset = _open_dataset(args.dataset)
    if not dataset.has_masks:
        raise UsageError(f"{args.dataset}: has no masks to compare with")
    ids = _split_ids(dataset, args.split)
    from .optimize import evaluate

    bar = _progress_bar(len(ids), "evaluate")

    def progress(*a):
        bar.update(1)

    try:
        result = evaluate(dataset, ids, method, progress=progress)
    finally:
        bar.close()
    summary = {k: v.item() if hasattr(v, "item") else v for k, v in result.summary.items()}
    instances = _instance_scores(dataset, ids, method)
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


# --- optimize --------------------------------------------------------------------------
_OPTIMIZE_EPILOG = """\
examples:
  cellseg optimize data/voced --calls 50 --seed 0 --out best.json
  cellseg optimize data/voced --preset lab03v2 \\
      --params-space "threshold.t_nuc=0.1:0.7, threshold.t_bg=0.5:0.99, cleanup.fill_holes=true|false" \\
      --calls 80 --out best.json
  cellseg segment new_images --params best.json --out results

--params-space: comma-separated NAME=LOW:HIGH (a range; integer when both ends are
integers, e.g. cleanup.min_nucleus_size=0:400) or NAME=A|B|C (choices: true/false,
numbers or words, e.g. threshold.method=otsu|li|yen). Names are the dotted parameter
names of params.json. Without it the course's default space is searched.
The search runs on the train split (all images without split.json); the best params
are scored on the test split at the end.
"""


def _value(text: str):
    low = text.strip()
    if low.lower() in ("true", "false"):
        return low.lower() == "true"
    for kind in (int, float):
        try:
            return kind(low)
        except ValueError:
            pass
    return low


def parse_space(text: str, base=None) -> dict:
    """Parse a ``--params-space`` string into ``{name: (low, high) or [choices]}``.

    Examples
    --------
    >>> parse_space("threshold.t_nuc=0.1:0.7, cleanup.min_nucleus_size=0:400, cleanup.fill_holes=true|false")
    {'threshold.t_nuc': (0.1, 0.7), 'cleanup.min_nucleus_size': (0, 400), 'cleanup.fill_holes': [True, False]}
    """
    from .params import Params

    known = (base or Params()).flat()
    space = {}
    for entry in filter(None, (e.strip() for e in text.split(","))):
        name, sep, spec = entry.partition("=")
        name = name.strip()
        if not sep or not spec.strip():
            raise UsageError(f"--params-space entry {entry!r} must look like NAME=LOW:HIGH or NAME=A|B")
        if name not in known:
            raise UsageError(f"--params-space: unknown parameter {name!r}; valid: {sorted(known)}")
        if name in space:
            raise UsageError(f"--params-space: {name!r} is given twice")
        if "|" in spec:
            choices = [_value(c) for c in spec.split("|")]
            if len(choices) < 2 or "" in choices:
                raise UsageError(f"--params-space: {name!r} needs at least two choices, got {spec!r}")
            space[name] = choices
        elif ":" in spec:
            low, high = (_value(v) for v in spec.split(":", 1))
            if isinstance(low, (bool, str)) or isinstance(high, (bool, str)):
                raise UsageError(f"--params-space: {name!r} range {spec!r} must be two numbers")
            if not low < high:
                raise UsageError(f"--params-space: {name!r} range {spec!r} needs LOW < HIGH")
            if isinstance(known[name], float):
                low, high = float(low), float(high)
            space[name] = (low, high)
        else:
            raise UsageError(f"--params-space entry {entry!r} must look like NAME=LOW:HIGH or NAME=A|B")
    if not space:
        raise UsageError("--params-space is empty")
    return space


def _cmd_optimize(args) -> int:
    from .batch import load_method
    from .params import Params

    base = load_method(preset=args.preset, params=args.params)
    if args.calls < 1:
        raise UsageError(f"--calls must be at least 1, got {args.calls}")
    dataset = _open_dataset(args.dataset)
    if not dataset.has_masks:
        raise UsageError(f"{args.dataset}: has no masks to optimise against")
    from . import optimize as opt

    space = parse_space(args.params_space, base) if args.params_space else opt.DEFAULT_SPACE
    train = _split_ids(dataset, "train") if dataset.split else list(dataset.ids)
    bar = _progress_bar(args.calls, "optimize", unit="call")

    def callback(info):
        bar.update(1)
        bar.set_postfix(best=f"{info['best_so_far']:.4f}", refresh=False)

    try:
        result = opt.optimize(dataset, train, space, base, n_calls=args.calls,
                              random_state=args.seed, callback=callback)
    finally:
        bar.close()
    best: Params = result.best_params
    text = best.to_json() + "\n"
    if args.out:
        from .io import write_bytes_atomic

        write_bytes_atomic(args.out, text.encode())
    else:
        sys.stdout.write(text)
    changed = {k: v for k, v in best.flat().items() if base.flat().get(k) != v}
    _say(f"best train score {result.best_score:.4f} after {args.calls} calls; "
         f"changed: {json.dumps(changed)}")
    if dataset.split and dataset.split.get("test"):
        test = list(dataset.split["test"])
        scored = opt.evaluate(dataset, test, best).summary
        _say(f"test split ({len(test)} images): mean Dice {scored['mean_dice']:.4f}")
    if args.out:
        _say(f"saved to {args.out}; use it with: cellseg segment ... --params {args.out}")
    return EXIT_OK


# --- presets ---------------------------------------------------------------------------
def _cmd_presets(args) -> int:
    from .presets import DESCRIPTIONS, PRESETS

    if args.json:
        print(json.dumps({name: {"description": DESCRIPTIONS[name], "params": p.to_dict()}
                          for name, p in PRESETS.items()}, indent=2))
        return EXIT_OK
    width = max(map(len, PRESETS))
    for name in PRESETS:
        print(f"{name:<{width}}  {DESCRIPTIONS[name]}")
    return EXIT_OK


# --- train (the learn helper's place) ------------------------------------------------------
def _add_train_parser(sub) -> None:
    """`cellseg train`: the learned-model command.

    If ``cellseg_core.learn`` defines ``add_train_arguments(parser)`` and
    ``train_command(args) -> int``, they are used; raise ``ValueError`` (exit 2) or
    return 1 for failures. Until then the command says it is not available.
    """
    parser = sub.add_parser(
        "train", help="train a pixel classifier on a dataset (saves a --model file)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  cellseg train data/voced --out model.joblib\n"
               "  cellseg segment new_images --model model.joblib --out results\n")
    try:
        from .learn import add_train_arguments
    except ImportError:
        parser.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    else:
        add_train_arguments(parser)
    parser.set_defaults(func=_cmd_train)


def _cmd_train(args) -> int:
    try:
        from .learn import train_command
    except ImportError:
        raise UsageError("`cellseg train` is not available in this version "
                         "(cellseg_core.learn is missing)") from None
    return train_command(args)


# --- parser and main -------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="cellseg", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Segment microscopy images of cells (cytoplasm, nuclei) from the command line.",
        epilog="examples:\n  cellseg presets\n  cellseg segment data/voced --preset lab03v2 --out results\n"
               "  cellseg evaluate data/voced --split test --preset lab02\n"
               "  cellseg optimize data/voced --calls 50 --seed 0 --out best.json\n"
               "run `cellseg COMMAND --help` for each command's options.")
    parser.add_argument("--version", action="version", version=f"cellseg {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    raw = argparse.RawDescriptionHelpFormatter

    p = sub.add_parser("segment", help="segment images into labels, instances and tables",
                       description="Segment image files and folders; write TIFFs and CSVs to --out.",
                       epilog=_SEGMENT_EPILOG, formatter_class=raw)
    p.add_argument("inputs", nargs="+", metavar="INPUT",
                   help="image files or folders (a dataset folder's images/ is used)")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (created)")
    _add_method_options(p)
    p.add_argument("--jobs", type=int, default=1, metavar="N",
                   help="worker processes on this machine (default 1)")
    p.add_argument("--dask", metavar="ADDRESS",
                   help="run on an existing Dask cluster, e.g. tcp://scheduler:8786")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out: skip images whose outputs exist (same "
                        "method), add new ones; earlier rows of the tables are kept")
    p.add_argument("--overwrite", action="store_true",
                   help="remove the outputs of an earlier run in --out first")
    p.set_defaults(func=_cmd_segment)

    p = sub.add_parser("evaluate", help="score a method against a dataset's masks",
                       description="Print the compare table: mean Dice, per-class Dice, IoU, "
                                   "N/C MAE and R2 (and instance F1@0.5 / AP with labels/).",
                       epilog=_EVALUATE_EPILOG, formatter_class=raw)
    p.add_argument("dataset", metavar="DATASET")
    p.add_argument("--split", default="test", help="train, test or all (default test)")
    _add_method_options(p)
    p.add_argument("--json", action="store_true", help="print JSON (summary and per image)")
    p.set_defaults(func=_cmd_evaluate)

    p = sub.add_parser("optimize", help="Bayesian search for the best parameters on a dataset",
                       description="Tune parameters on the train split by Bayesian optimisation.",
                       epilog=_OPTIMIZE_EPILOG, formatter_class=raw)
    p.add_argument("dataset", metavar="DATASET")
    p.add_argument("--params-space", metavar="SPACE",
                   help='e.g. "threshold.t_nuc=0.1:0.7,cleanup.fill_holes=true|false"')
    p.add_argument("--calls", type=int, default=50, help="evaluations (default 50)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--out", metavar="FILE.json", help="where to save the best params (default: stdout)")
    _add_method_options(p, model=False)
    p.set_defaults(func=_cmd_optimize)

    p = sub.add_parser("presets", help="list the built-in presets",
                       description="List the built-in parameter presets with descriptions.",
                       epilog="examples:\n  cellseg presets\n  cellseg presets --json > presets.json\n",
                       formatter_class=raw)
    p.add_argument("--json", action="store_true", help="print every preset's full parameters")
    p.set_defaults(func=_cmd_presets)

    _add_train_parser(sub)
    return parser


def main(argv=None) -> int:
    """Run the ``cellseg`` command; return its exit code (never raises for user errors)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as stop:  # --help, --version, argparse usage errors
        return int(stop.code or 0) if not isinstance(stop.code, str) else EXIT_USAGE
    try:
        return args.func(args)
    except BrokenPipeError:  # e.g. `cellseg evaluate ... | head`
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_FAILED
    except KeyboardInterrupt:
        _say("interrupted; finished images are kept, rerun with --resume to continue")
        return EXIT_INTERRUPTED
    except (UsageError, ValueError) as err:
        _say(f"cellseg {args.command}: error: {err}")
        return EXIT_USAGE
    except OSError as err:
        _say(f"cellseg {args.command}: error: {err}")
        return EXIT_USAGE
