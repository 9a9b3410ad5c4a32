"""The ``cellseg`` command: batch segmentation, evaluation and tuning without a browser.

One module per command (``segment``, ``evaluate``, ``optimize``, ``train``, ``presets``),
each with ``add_parser(subparsers)`` and ``run(args) -> int``; they call the same core
functions as the app (:mod:`cellseg_core.batch`, :mod:`cellseg_core.evaluation`,
:mod:`cellseg_core.learn`, :mod:`cellseg_core.data`, :mod:`cellseg_core.methods`). Exit
codes: 0 when every image succeeded, 1 when some image failed (each is reported by
name, the rest go on), 2 for a usage error (bad option, unknown preset, unreadable
parameters file), 130 when interrupted. Progress goes to stderr, results to stdout; no
traceback is ever printed.
"""
from __future__ import annotations

import argparse
import os
import sys

from .._version import __version__
from . import evaluate, optimize, presets, segment, train
from ._common import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_USAGE, UsageError, say
from .optimize import parse_space

__all__ = ["main", "build_parser", "parse_space"]

_COMMANDS = (segment, evaluate, optimize, presets, train)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cellseg", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Segment microscopy images of cells (cytoplasm, nuclei) from the command line.",
        epilog="examples:\n  cellseg presets\n  cellseg segment data/voced --preset lab03v2 --out results\n"
               "  cellseg evaluate data/voced --split test --preset lab02\n"
               "  cellseg optimize data/voced --calls 50 --seed 0 --out best.json\n"
               "run `cellseg COMMAND --help` for each command's options.")
    parser.add_argument("--version", action="version", version=f"cellseg {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in _COMMANDS:
        command.add_parser(sub)
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
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_FAILED
    except KeyboardInterrupt:
        say("interrupted; finished images are kept, rerun with --resume to continue")
        return EXIT_INTERRUPTED
    except (UsageError, ValueError) as err:
        say(f"cellseg {args.command}: error: {err}")
        return EXIT_USAGE
    except OSError as err:
        say(f"cellseg {args.command}: error: {err}")
        return EXIT_USAGE
