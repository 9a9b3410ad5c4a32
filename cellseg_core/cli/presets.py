"""``cellseg presets``: the built-in presets and their parameters."""
from __future__ import annotations

import argparse
import json

from ..presets import DESCRIPTIONS, PRESETS
from ._common import EXIT_OK


def add_parser(sub) -> None:
    p = sub.add_parser("presets", help="list the built-in presets",
                       description="List the built-in parameter presets with descriptions.",
                       epilog="examples:\n  cellseg presets\n  cellseg presets --json > presets.json\n",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--json", action="store_true", help="print every preset's full parameters")
    p.set_defaults(func=run)


def run(args) -> int:
    if args.json:
        print(json.dumps({name: {"description": DESCRIPTIONS[name], "params": p.to_dict()}
                          for name, p in PRESETS.items()}, indent=2))
        return EXIT_OK
    width = max(map(len, PRESETS))
    for name in PRESETS:
        print(f"{name:<{width}}  {DESCRIPTIONS[name]}")
    return EXIT_OK
