"""What the commands share: exit codes, the method options, progress bars, messages."""
from __future__ import annotations

import argparse
import dataclasses
import sys

from tqdm import tqdm

from ..methods import ParamsMethod, Segmenter, load_method
from ..params import CONNECTIVITIES

__all__ = ["EXIT_OK", "EXIT_FAILED", "EXIT_USAGE", "EXIT_INTERRUPTED", "UsageError", "say",
           "add_method_options", "method_from_args", "progress_bar"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class UsageError(Exception):
    """A problem with what the user asked for (exit code 2)."""


def say(*parts) -> None:
    """A message on stderr (results go to stdout)."""
    print(*parts, file=sys.stderr, flush=True)


def add_method_options(parser: argparse.ArgumentParser, *, model: bool = True) -> None:
    """``--preset`` / ``--params`` (and ``--model``, ``--trust-pickle``) of a command."""
    group = parser.add_argument_group("method (at most one; default: Params() = lab01 thresholds)")
    group.add_argument("--preset", metavar="NAME",
                       help="a built-in preset (see `cellseg presets`), e.g. lab03v2")
    group.add_argument("--params", metavar="FILE.json",
                       help="parameters saved by the app, or a previous run's params.json")
    group.add_argument("--connectivity", type=int, choices=CONNECTIVITIES, metavar="{4,8}",
                       help="labelling connectivity of the size filters and the nuclei: "
                            "4 (edges) or 8 (diagonals too); overrides the params' "
                            "cleanup.connectivity")
    if model:
        group.add_argument("--model", metavar="FILE", help="a model trained by `cellseg train`")
        group.add_argument("--trust-pickle", action="store_true",
                           help="read a --model file of the old pickled format (cellseg before "
                                "model format 3), which can run code: only a file you trust, "
                                "and only where CELLSEG_ALLOW_PICKLE_MODELS=1")


def method_from_args(args) -> Segmenter:
    """The method the options name (:func:`cellseg_core.methods.load_method`), with
    ``--connectivity`` applied to its params."""
    method = load_method(preset=args.preset, params=args.params,
                         model=getattr(args, "model", None),
                         trust_pickle=getattr(args, "trust_pickle", False))
    connectivity = getattr(args, "connectivity", None)
    if connectivity is not None:
        if not isinstance(method, ParamsMethod):
            raise UsageError("--connectivity applies to --preset / --params, not to --model")
        method = dataclasses.replace(
            method, params=method.params.with_values({"cleanup.connectivity": connectivity}))
    return method


def progress_bar(total: int, desc: str, *, initial: int = 0, unit: str = "img"):
    """A tqdm bar on stderr."""
    tqdm.monitor_interval = 0  # no monitor thread: worker processes fork from a thread-free parent
    return tqdm(total=total, initial=initial, desc=desc, unit=unit, file=sys.stderr,
                dynamic_ncols=True, leave=True)
