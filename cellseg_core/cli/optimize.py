"""``cellseg optimize``: Bayesian search of parameters on the train split (:mod:`..evaluation`)."""
from __future__ import annotations

import argparse
import json
import sys

from ..data import dataset_from_spec, split_ids
from ..evaluation import DEFAULT_SPACE, evaluate, optimize
from ..io import write_bytes_atomic
from ..params import Params
from ._common import EXIT_OK, UsageError, add_method_options, method_from_args, progress_bar, say

__all__ = ["parse_space"]

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


def add_parser(sub) -> None:
    p = sub.add_parser("optimize", help="Bayesian search for the best parameters on a dataset",
                       description="Tune parameters on the train split by Bayesian optimisation.",
                       epilog=_OPTIMIZE_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("dataset", metavar="DATASET")
    p.add_argument("--params-space", metavar="SPACE",
                   help='e.g. "threshold.t_nuc=0.1:0.7,cleanup.fill_holes=true|false"')
    p.add_argument("--calls", type=int, default=50, help="evaluations (default 50)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--split", default="", metavar="NAME",
                   help="search on NAME-train and check on NAME-test, e.g. lab02 (the "
                        "course's Lab 02 split); default: split.json's train / test")
    p.add_argument("--out", metavar="FILE.json", help="where to save the best params (default: stdout)")
    add_method_options(p, model=False)
    p.set_defaults(func=run)


def run(args) -> int:
    base = method_from_args(args).params
    if args.calls < 1:
        raise UsageError(f"--calls must be at least 1, got {args.calls}")
    dataset = dataset_from_spec(args.dataset)
    if not dataset.has_masks:
        raise UsageError(f"{args.dataset}: has no masks to optimise against")
    space = parse_space(args.params_space, base) if args.params_space else DEFAULT_SPACE
    name = args.split[:-len("-train")] if args.split.endswith("-train") else args.split
    prefix = f"{name}-" if name else ""
    if name:
        train, test = (split_ids(dataset, f"{prefix}train"), split_ids(dataset, f"{prefix}test"))
    else:
        train = split_ids(dataset, "train") if dataset.split else list(dataset.ids)
        test = list((dataset.split or {}).get("test") or [])
    bar = progress_bar(args.calls, "optimize", unit="call")

    def callback(info):
        bar.update(1)
        bar.set_postfix(best=f"{info['best_so_far']:.4f}", refresh=False)

    try:
        result = optimize(dataset, train, space, base, n_calls=args.calls,
                          random_state=args.seed, callback=callback)
    finally:
        bar.close()
    best: Params = result.best_params
    text = best.to_json() + "\n"
    if args.out:
        write_bytes_atomic(args.out, text.encode())
    else:
        sys.stdout.write(text)
    changed = {k: v for k, v in best.flat().items() if base.flat().get(k) != v}
    say(f"best train score {result.best_score:.4f} after {args.calls} calls; "
         f"changed: {json.dumps(changed)}")
    if test:
        scored = evaluate(dataset, test, best).summary
        say(f"test split ({len(test)} images): mean Dice {scored['mean_dice']:.4f}")
    if args.out:
        say(f"saved to {args.out}; use it with: cellseg segment ... --params {args.out}")
    return EXIT_OK
