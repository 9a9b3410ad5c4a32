"""Exact Dice surface and Bayesian optimisation over the VocEd training split.

Prints one table:

- ``surface 256x256``: :func:`cellseg_core.evaluation.dice_surface` over the 160 train
  images, cold (PNG reading and per-class sorting included) and warm (channels cached).
  Goal (issue 3 item 7): warm <= 0.5 s.
- ``surface 16x16`` vs ``brute 16x16``: the same 16 x 16 subgrid of the 256 grid by
  segmenting and scoring every image for every valid pair (images preloaded), the
  ratio, and the brute force extrapolated to the full 256 x 256 grid.
- ``BO thresholds`` / ``BO lab03v2``: 50 calls of :func:`cellseg_core.evaluation.optimize`
  (``DEFAULT_SPACE`` / ``LAB03V2_SPACE``) from a cold cache, next to the course's way:
  ``gp_minimize`` with its default settings and an objective that loops over the
  preloaded images calling ``segment`` + ``score_labels`` (the images are read once,
  before timing, as the course held them in memory). Goals: <= 5 s and <= 20 s.
  Each row also gives the time spent inside the objective, the rest being the
  optimiser's own work, and the test mean Dice of the best params.

Usage::

    python3 benchmarks/bench_optimize.py                  # everything (several minutes)
    python3 benchmarks/bench_optimize.py --course-calls 10  # course loop on fewer calls,
                                                            # extrapolated to --calls

Data: env CELLSEG_VOCED or ../shared/data/voced.
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np
from _common import need_voced

from cellseg_core import score_labels, segment
from cellseg_core.data import open_dataset
from cellseg_core.evaluation import (DEFAULT_SPACE, LAB03V2_SPACE, ChannelCache,
                                   dice_surface, evaluate, optimize)
from cellseg_core.presets import get_preset


def _course_bo(images, masks, space, base, n_calls, seed):
    """The course's loop: gp_minimize defaults, segment + score every image every call."""
    from skopt import gp_minimize

    names = list(space)
    inside = [0.0]

    def objective(x):
        t0 = time.perf_counter()
        try:
            params = base.with_values({n: v.item() if hasattr(v, "item") else v
                                       for n, v in zip(names, x)})
        except ValueError:
            return 0.0
        scores = [score_labels(segment(im, params).labels, m)["mean_dice"]
                  for im, m in zip(images, masks)]
        inside[0] += time.perf_counter() - t0
        return -float(np.mean(scores))

    dims = [list(v) if isinstance(v, list) else v for v in space.values()]
    t0 = time.perf_counter()
    gp_minimize(objective, dims, n_calls=n_calls, random_state=seed)
    return time.perf_counter() - t0, inside[0]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=50)
    ap.add_argument("--course-calls", type=int, default=None,
                    help="calls of the course loop (default --calls); times are scaled "
                         "to --calls when fewer")
    ap.add_argument("--repeats", type=int, default=3, help="repeats of the warm surface")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    course_calls = args.course_calls or args.calls

    ds = open_dataset(need_voced())
    train, test = ds.split["train"], ds.split["test"]
    rows = []

    def row(name, seconds, goal="", note=""):
        rows.append((name, seconds, goal, note))
        print(f"  {name:<34} {seconds:9.3f} s  {goal:<10} {note}", flush=True)

    print(f"VocEd train: {len(train)} images, {os.cpu_count()} CPUs\n")

    # --- surface --------------------------------------------------------------------------
    cache = ChannelCache(max_bytes=2**30)
    t0 = time.perf_counter()
    dice_surface(ds, train, cache=cache)
    row("surface 256x256 cold", time.perf_counter() - t0, "", "reads 160 PNGs + sorts")
    warm = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        surface = dice_surface(ds, train, cache=cache)
        warm.append(time.perf_counter() - t0)
    row("surface 256x256 warm (min)", min(warm), "<= 0.5 s",
        f"best {surface.best} mean Dice {surface.best_score:.4f}")

    grid = np.linspace(0, 1, 256)[::16]
    t0 = time.perf_counter()
    small = dice_surface(ds, train, thresholds=grid, cache=cache)
    t_small = time.perf_counter() - t0
    row("surface 16x16 warm", t_small)
    images = [ds.image(i) for i in train]
    masks = [ds.mask(i) for i in train]
    base = get_preset("lab01")
    pairs = [(a, b) for a in grid for b in grid if a < b]
    t0 = time.perf_counter()
    worst = 0.0
    for (a, b) in pairs:
        p = base.with_values({"threshold.t_nuc": float(a), "threshold.t_bg": float(b)})
        score = np.mean([score_labels(segment(im, p).labels, m)["mean_dice"]
                         for im, m in zip(images, masks)])
        i, j = np.searchsorted(grid, a), np.searchsorted(grid, b)
        worst = max(worst, abs(score - small.mean[i, j]))
    t_brute = time.perf_counter() - t0
    n_full = 256 * 255 // 2
    row("brute 16x16 (segment + score)", t_brute, "",
        f"ratio {t_brute / t_small:.0f}x, max |diff| {worst:.1e}, 256x256 would take "
        f"~{t_brute * n_full / len(pairs) / 60:.0f} min")

    # --- Bayesian optimisation ------------------------------------------------------------
    for label, space, preset, goal in (("thresholds", DEFAULT_SPACE, "lab02", "<= 5 s"),
                                       ("lab03v2", LAB03V2_SPACE, "lab03v2", "<= 20 s")):
        base = get_preset(preset)
        t0 = time.perf_counter()
        result = optimize(ds, train, space, base, n_calls=args.calls, random_state=args.seed,
                          cache=ChannelCache())
        total = time.perf_counter() - t0
        inside = result.history.seconds.sum()
        test_dice = evaluate(ds, test, result.best_params).summary["mean_dice"]
        row(f"BO {label} ({args.calls} calls, ours)", total, goal,
            f"objective {inside:.1f} s, optimiser {total - inside:.1f} s; "
            f"train {result.best_score:.4f}, test {test_dice:.4f}")
        seconds, inside = _course_bo(images, masks, space, base, course_calls, args.seed)
        scale = args.calls / course_calls
        note = f"objective {inside * scale:.1f} s, optimiser {(seconds - inside) * scale:.1f} s"
        if scale != 1:
            note += f" (measured on {course_calls} calls, scaled)"
        row(f"BO {label} (course loop)", seconds * scale, "", note)
    return rows


if __name__ == "__main__":
    main()
