"""Batch speed: the 200 VocEd images through `cellseg segment --preset lab03v2`.

Times :func:`cellseg_core.batch.run_batch` in this process (what ``cellseg segment``
runs, without interpreter start and imports) at ``--jobs 1``, ``--jobs 2`` and on a
2-worker Dask ``LocalCluster`` (cluster start-up timed apart), then splits one image's
cost into its steps. Goal: <= 3 s for the 200 images on 2 cores.

Usage::

    python benchmarks/bench_batch.py [--repeats 3] [--data PATH] [--no-dask] [--no-profile]
"""
from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import need_voced

from cellseg_core import batch
from cellseg_core.io import read_image, read_mask, tiff_bytes
from cellseg_core.metrics import score_labels
from cellseg_core.pipeline import segment
from cellseg_core.presets import get_preset

GOAL_S = 3.0


def _cpu() -> float:
    """CPU seconds of this process and its finished children (pool workers)."""
    import resource

    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def _best(run, repeats):
    times, cpus = [], []
    for _ in range(repeats):
        c0 = _cpu()
        times.append(run())
        cpus.append(_cpu() - c0)
    return min(times), float(np.median(times)), min(cpus)


def time_runs(data: Path, repeats: int, dask: bool) -> list[tuple]:
    params = get_preset("lab03v2")
    items = batch.find_inputs([data])
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        def one(**kw):
            out = Path(tmp) / "out"
            shutil.rmtree(out, ignore_errors=True)
            result = batch.run_batch(items, out, params, preset="lab03v2", **kw)
            assert result.ok and result.n_done == len(items), result.failed
            return result.seconds

        for jobs in (1, 2):
            rows.append((f"--jobs {jobs}", len(items), *_best(lambda: one(jobs=jobs), repeats)))
        if dask:
            from distributed import Client, LocalCluster

            t0 = time.perf_counter()
            with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                              dashboard_address=None) as cluster, Client(cluster) as client:
                start = time.perf_counter() - t0
                one(dask_address=client)  # warm the workers' imports
                best, median, _ = _best(lambda: one(dask_address=client), repeats)
            rows.append(("dask LocalCluster(2)", len(items), best, median, float("nan")))
            rows.append(("  (cluster start, once)", 0, start, start, float("nan")))
    return rows


def profile_steps(data: Path, n: int = 60) -> dict:
    """Milliseconds per image of each step of `process_image` plus the writes."""
    params = get_preset("lab03v2")
    items = batch.find_inputs([data])[:n]
    steps: dict[str, float] = {}

    clock = time.process_time  # CPU time: less disturbed by other processes than wall time

    def tick(name, t0):
        steps[name] = steps.get(name, 0.0) + clock() - t0
        return clock()

    with tempfile.TemporaryDirectory() as tmp:
        for item in items:
            t = clock()
            image = read_image(item.image)
            t = tick("read image (PNG)", t)
            truth = read_mask(item.mask)
            t = tick("read mask", t)
            seg = segment(image, params)
            t = tick("segment()", t)
            seg.cells
            t = tick("cells: assign_cells watershed", t)
            objects = seg.objects
            t = tick("objects: regionprops table", t)
            seg.summary
            t = tick("summary", t)
            score_labels(seg.labels, truth)
            t = tick("score_labels", t)
            [objects[c].tolist() for c in objects.columns]
            t = tick("table -> rows", t)
            a, b = tiff_bytes(seg.labels), tiff_bytes(seg.nuclei)
            t = tick("2 TIFFs encoded (zlib)", t)
            batch.write_bytes_atomic(Path(tmp) / "l.tif", a)
            batch.write_bytes_atomic(Path(tmp) / "n.tif", b)
            batch.write_bytes_atomic(Path(tmp) / "p.json", b"{}")
            tick("3 atomic writes", t)
        t = clock()
        for item in items:
            batch.process_image(item.image, params, mask=item.mask)
        steps["= process_image total"] = clock() - t
    return {k: v / len(items) * 1000 for k, v in steps.items()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--data", help="VocEd folder (default: CELLSEG_VOCED or ../shared/data/voced)")
    parser.add_argument("--no-dask", action="store_true")
    parser.add_argument("--no-profile", action="store_true")
    args = parser.parse_args(argv)
    data = need_voced(args.data)
    print(f"cpus: {os.cpu_count()}, load average at start: "
          f"{', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"\n{'run (lab03v2)':<26}{'images':>7}{'best s':>9}{'median s':>10}{'img/s':>8}"
          f"{'cpu s':>8}  goal (wall <= {GOAL_S:g} s)")
    for name, n, best, median, cpu in time_runs(data, args.repeats, not args.no_dask):
        rate = f"{n / best:8.0f}" if n else " " * 8
        goal = ("ok" if best <= GOAL_S else "MISSED") if n else ""
        print(f"{name:<26}{n:>7}{best:9.2f}{median:10.2f}{rate}{cpu:8.2f}  {goal}")
    print("cpu s: CPU time of this process and its pool workers (not Dask workers); on an"
          " idle machine\n--jobs 2 wall time approaches cpu s / 2.")
    if not args.no_profile:
        print(f"\n{'one image, step (CPU time)':<34}{'ms':>7}")
        for name, ms in profile_steps(data).items():
            print(f"{name:<34}{ms:7.2f}")
    print(f"load average at end: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
