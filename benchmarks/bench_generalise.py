"""Do the automatic presets work on images nobody tuned them for? (issue 17)

Prints one table over the public sets in ``../shared/data`` (or ``--data``): for every
set with nucleus instances (dsb2018_fluo, dsb2018_histo, dsb2018_brightfield) and the
chosen split, each method's

* F1 at IoU 0.5 (one-to-one matching, :func:`cellseg_core.metrics.match_instances`),
  averaged over images (as the issue's table);
* DSB average precision, IoU 0.5:0.95 (:func:`cellseg_core.metrics.average_precision`);
* count error: mean over images of ``|found - true| / true``;
* seconds per image (wall clock, one process);

for the textbook baseline (computed in the same run), ``auto-nuclei`` and the preset
made for the set's kind (``auto-fluorescence`` or ``auto-cytology``). For auto-nuclei
it adds how often the detected kind is the set's kind and how often the estimated
diameter is within ±25 % of the image's median true equivalent diameter.

The textbook baseline is the issue's (:func:`cellseg_core.textbook.textbook_nuclei`):
gray, gaussian sigma 2, Otsu, holes filled, objects under 30 px removed,
distance-transform watershed (``peak_local_max`` min_distance 5, its default
footprint). Its polarity is detected from each image (bright objects on fluorescence,
dark on stained and gray bright-field); the row says on how many images that was the
set's polarity. The issue's figures (0.793 / 0.566 / 0.033) had the polarity given per
set; the detector picks that polarity on every test image of the three sets, so the
labels, and the figures, are the same and no given-polarity row is needed.

Then the detector alone on usiigaci_phase (phase contrast; its instances are whole
cells, not nuclei, so a nucleus F1 would mean nothing there) and VocEd's mean Dice
(cytoplasm and nucleus) for ``auto-cytology`` next to its fixed rule (``auto.kind``
off, the preset before issue 17).

Choose on the train split (``--split train``); report the test split (default).

Usage::

    python3 benchmarks/bench_generalise.py                  # test split, all sets
    python3 benchmarks/bench_generalise.py --split train    # while developing
    python3 benchmarks/bench_generalise.py --sets dsb2018_histo --limit 10
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from _common import REPO as ROOT

from cellseg_core import read_image, read_mask, score_labels, segment  # noqa: E402
from cellseg_core.imagekind import detect_kind  # noqa: E402
from cellseg_core.io import read_instances  # noqa: E402
from cellseg_core.metrics import average_precision, match_instances  # noqa: E402
from cellseg_core.presets import get_preset  # noqa: E402
from cellseg_core.scale import median_diameter  # noqa: E402
from cellseg_core.textbook import baseline_objects, textbook_nuclei  # noqa: E402

#: Nucleus sets: name -> (kind, the preset made for that kind, the nuclei's polarity).
NUCLEUS_SETS = {
    "dsb2018_fluo": ("fluorescence", "auto-fluorescence", "bright"),
    "dsb2018_histo": ("stained", "auto-cytology", "dark"),
    "dsb2018_brightfield": ("brightfield", "auto-cytology", "dark"),
}
DETECTOR_ONLY = {"usiigaci_phase": "brightfield"}


def _ids(folder: Path, split: str, limit: int | None) -> list[int]:
    ids = json.loads((folder / "split.json").read_text())[split]
    return sorted(ids)[:limit] if limit else sorted(ids)


def _row(name, method, scores, extra=""):
    f1, ap, count, seconds = (np.mean([s[k] for s in scores]) for k in range(4))
    return (f"| {name} | {method} | {f1:.3f} | {ap:.3f} | {100 * count:.0f} % | {seconds:.2f} "
            f"| {extra} |")


def nucleus_rows(folder: Path, split: str, limit: int | None) -> list[str]:
    kind, preset, polarity = NUCLEUS_SETS[folder.name]
    methods = {"textbook baseline": textbook_nuclei,
               "auto-nuclei": None, preset: lambda im: segment(im, get_preset(preset)).nuclei}
    scores = {m: [] for m in methods}
    kinds_ok, sizes_ok, polarity_ok = [], [], []
    for ident in _ids(folder, split, limit):
        image = read_image(folder / "images" / f"{ident:03d}.png")
        truth = read_instances(folder / "labels" / f"{ident:03d}.tif")
        polarity_ok.append(baseline_objects(image) == polarity)
        for method, run in methods.items():
            t0 = time.perf_counter()
            if run is None:
                seg = segment(image, get_preset("auto-nuclei"))
                found = seg.nuclei
                kinds_ok.append(seg.auto["kind"] == kind)
                sizes_ok.append(abs(seg.auto["diameter"] / median_diameter(truth) - 1) <= 0.25)
            else:
                found = run(image)
            seconds = time.perf_counter() - t0
            match = match_instances(found, truth)
            scores[method].append((match["f1"], average_precision(found, truth),
                                   abs(match["count_error"]) / max(match["n_true"], 1),
                                   seconds))
    n = len(kinds_ok)
    rows = []
    for method in methods:
        extra = {"auto-nuclei": f"kind {np.mean(kinds_ok):.0%}, diameter ±25 % "
                                f"{np.mean(sizes_ok):.0%}",
                 "textbook baseline": f"{polarity} objects {np.mean(polarity_ok):.0%}"
                 }.get(method, "")
        rows.append(_row(f"{folder.name} (n={n})", method, scores[method], extra))
    return rows


def detector_row(folder: Path, split: str, limit: int | None) -> str:
    expected = DETECTOR_ONLY[folder.name]
    results = [detect_kind(read_image(folder / "images" / f"{i:03d}.png"))
               for i in _ids(folder, split, limit)]
    ok = np.mean([r.kind.value == expected for r in results])
    low = min(r.confidence for r in results)
    return (f"| {folder.name} (n={len(results)}) | detector only | – | – | – | – | "
            f"kind {expected} {ok:.0%} (lowest confidence {low:.2f}); cells, not nuclei: "
            "no nucleus F1 |")


def voced_rows(folder: Path, split: str, limit: int | None) -> list[str]:
    rows = []
    for method, params in (("auto-cytology", get_preset("auto-cytology")),
                           ("auto-cytology, auto.kind off (before)",
                            get_preset("auto-cytology").with_values({"auto.kind": "off"}))):
        dice, seconds = [], []
        for ident in _ids(folder, split, limit):
            image = read_image(folder / "images" / f"{ident:03d}.png")
            truth = read_mask(folder / "masks" / f"{ident:03d}.png")
            t0 = time.perf_counter()
            labels = segment(image, params).labels
            seconds.append(time.perf_counter() - t0)
            dice.append(score_labels(labels, truth)["mean_dice"])
        rows.append(f"| voced (n={len(dice)}) | {method} | mean Dice {np.mean(dice):.3f} | – "
                    f"| – | {np.mean(seconds):.2f} | cytoplasm + nucleus |")
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--split", choices=("train", "test"), default="test")
    parser.add_argument("--sets", nargs="+",
                        default=[*NUCLEUS_SETS, *DETECTOR_ONLY, "voced"])
    parser.add_argument("--limit", type=int, default=None, help="first N ids of each split")
    args = parser.parse_args(argv)
    print(f"split: {args.split}\n")
    print("| set | method | F1@0.5 | DSB AP | count error | s / image | notes |")
    print("|---|---|---|---|---|---|---|")
    for name in args.sets:
        folder = args.data / name
        if not (folder / "split.json").is_file():
            print(f"| {name} | missing at {folder} | | | | | |")
            continue
        if name in NUCLEUS_SETS:
            rows = nucleus_rows(folder, args.split, args.limit)
        elif name in DETECTOR_ONLY:
            rows = [detector_row(folder, args.split, args.limit)]
        elif name == "voced":
            rows = voced_rows(folder, args.split, args.limit)
        else:
            raise SystemExit(f"unknown set {name!r}")
        for row in rows:
            print(row, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
