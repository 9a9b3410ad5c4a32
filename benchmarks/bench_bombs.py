"""Images that make thousands of "nuclei": `cellseg segment` must stay bounded (issue 21).

Uniform RGB noise (2000² and 3000²), a checkerboard of 2-px squares and a speckle
image (low-contrast noise with salt and pepper), each through every preset with
``cellseg segment`` in a child process: seconds, exit code, nuclei found, whether the
outputs read back (both TIFFs with the image's shape, ``images.csv`` with one ``ok``
row, ``objects.csv`` readable), the child's peak RSS and the warnings it wrote.
Goal: <= 60 s per image on 2 cores, exit 0, outputs readable.

Then the engine's peak memory for one 4096² RGB image (segment, cells, per-object
table, summary and both TIFFs, in a fresh child process): a tiled VocEd image through
lab03v2 (a real image, per-object table on), and 4096² noise through lab02 with the
object ceiling lifted (the table computed for every one of its ~2 million objects).
This is the engine's part of the Explore page's budget (1.5 GB for the whole page),
not the page itself.

Usage::

    python benchmarks/bench_bombs.py [--images noise-2000,noise-3000,checker-3000,speckle-3000]
        [--presets lab01,lab02,...] [--timeout 300] [--no-memory] [--memory-only]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from _common import REPO
from cellseg_core.presets import preset_names

GOAL_S = 60.0
GOAL_MB = 1536
IMAGES = ("noise-2000", "noise-3000", "checker-3000", "speckle-3000")


def make_image(name: str) -> np.ndarray:
    """The bomb called `name` (``kind-size``) as uint8 RGB, deterministic."""
    kind, size = name.rsplit("-", 1)
    n = int(size)
    rng = np.random.default_rng(21)
    if kind == "noise":
        return rng.integers(0, 256, (n, n, 3), dtype=np.uint8)
    if kind == "checker":  # 2-px squares, black and white
        rows, cols = np.indices((n, n)) // 2
        gray = ((rows + cols) % 2 * 255).astype(np.uint8)
    elif kind == "speckle":  # low-contrast noise around mid-gray, 5 % salt and pepper
        gray = np.clip(rng.normal(150, 20, (n, n)), 0, 255)
        spots = rng.random((n, n))
        gray[spots < 0.025] = 0
        gray[spots > 0.975] = 255
        gray = gray.astype(np.uint8)
    else:
        raise ValueError(f"unknown image kind {kind!r}; valid: noise, checker, speckle")
    return np.repeat(gray[..., None], 3, axis=2)


def _run_child(argv, timeout: float, stderr_path: Path):
    """Run `argv`; return (seconds, exit code or 'timeout', CPU seconds, peak RSS in MB)."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with open(stderr_path, "wb") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=err, env=env)
        timer = threading.Timer(timeout, proc.kill)
        timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)  # this child's own rusage
        finally:
            timer.cancel()
        seconds = time.perf_counter() - start
    proc.returncode = code = os.waitstatus_to_exitcode(status)
    rss_mb = usage.ru_maxrss / 1024  # KiB on Linux
    cpu = usage.ru_utime + usage.ru_stime
    return seconds, ("timeout" if code == -9 and seconds >= timeout else code), cpu, rss_mb


def _check_outputs(out: Path, stem: str, shape) -> tuple[bool, int | None, int | None, str]:
    """(outputs readable, n_nuclei, objects.csv rows, warnings) of one image's run."""
    import pandas as pd
    import tifffile

    try:
        labels = tifffile.imread(out / "labels" / f"{stem}.tif")
        nuclei = tifffile.imread(out / "nuclei" / f"{stem}.tif")
        images = pd.read_csv(out / "images.csv")
        objects = pd.read_csv(out / "objects.csv")
    except (OSError, ValueError) as err:
        return False, None, None, f"unreadable: {err}"
    row = images.iloc[0]
    ok = (labels.shape == shape and nuclei.shape == shape and len(images) == 1
          and row["status"] == "ok" and int(nuclei.max()) == int(row["n_nuclei"]))
    warnings = row.get("warnings")
    warnings = "" if not isinstance(warnings, str) else warnings
    short = ", ".join(label for key, label in _WARNINGS if key in warnings)
    return ok, int(row["n_nuclei"]), len(objects), short


_WARNINGS = (("watershed split skipped", "watershed off"),
             ("per-object measurements are off", "objects off"),
             ("solidity", "solidity partial"))


def bench_cli(image_names, presets, timeout) -> list[dict]:
    from PIL import Image

    results = []
    with tempfile.TemporaryDirectory(prefix="bench-bombs-") as tmp:
        tmp = Path(tmp)
        for name in image_names:
            array = make_image(name)
            path = tmp / f"{name}.png"
            Image.fromarray(array).save(path, compress_level=1)
            for preset in presets:
                out = tmp / f"out-{name}-{preset}"
                argv = [sys.executable, "-m", "cellseg_core", "segment", str(path),
                        "--preset", preset, "--out", str(out)]
                seconds, code, cpu, rss = _run_child(argv, timeout, tmp / "stderr.txt")
                readable, n_nuclei, n_rows, warnings = (
                    _check_outputs(out, name, array.shape[:2]) if code == 0
                    else (False, None, None, (tmp / "stderr.txt").read_text()[-200:]))
                results.append(dict(image=name, preset=preset, seconds=seconds, cpu=cpu, exit=code,
                                    nuclei=n_nuclei, rows=n_rows, readable=readable,
                                    rss_mb=rss, warnings=warnings))
                print(_row(results[-1]), flush=True)
    return results


_HEADER = (f"{'image':<13} {'preset':<18} {'seconds':>7} {'CPU s':>6} {'exit':>4} {'nuclei':>9} "
           f"{'csv rows':>8} {'outputs':>7} {'RSS MB':>7}  warnings")


def _row(r: dict) -> str:
    nuclei = "-" if r["nuclei"] is None else f"{r['nuclei']:,}"
    rows = "-" if r["rows"] is None else f"{r['rows']:,}"
    flag = "" if r["seconds"] <= GOAL_S and r["exit"] == 0 and r["readable"] else "  <-- GOAL MISSED"
    return (f"{r['image']:<13} {r['preset']:<18} {r['seconds']:>7.1f} {r['cpu']:>6.1f} {str(r['exit']):>4} "
            f"{nuclei:>9} {rows:>8} {'yes' if r['readable'] else 'NO':>7} {r['rss_mb']:>7.0f}  "
            f"{r['warnings']}{flag}")


_MEMORY_CHILD = r"""
import json, resource, sys, time
import numpy as np
sys.path.insert(0, sys.argv[1])
from cellseg_core.io import read_image, tiff_bytes
from cellseg_core.pipeline import segment
from cellseg_core.presets import get_preset
kind, n = sys.argv[2], int(sys.argv[3])
if kind == "voced":
    tile = read_image(sys.argv[4])
    reps = (-(-n // tile.shape[0]), -(-n // tile.shape[1]), 1)
    image = np.ascontiguousarray(np.tile(tile, reps)[:n, :n])
    preset, limit = "lab03v2", None
else:
    image = np.random.default_rng(0).random((n, n, 3), dtype=np.float32)
    preset, limit = "lab02", 10**9
peak = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
base = peak()
start = time.perf_counter()
seg = segment(image, get_preset(preset), max_objects=limit)
seg.cells, seg.objects, seg.summary, tiff_bytes(seg.labels), tiff_bytes(seg.nuclei)
print(json.dumps({"kind": kind, "preset": preset, "base_mb": base, "peak_mb": peak(),
                  "seconds": time.perf_counter() - start, "nuclei": int(seg.nuclei.max()),
                  "rows": len(seg.objects)}))
"""


_PAGE_CHILD = r"""
import json, sys, threading, time
import numpy as np
import psutil
from pathlib import Path
from PIL import Image
from cellseg_core.io import read_image
folder = Path(sys.argv[2])
tile = (read_image(sys.argv[1]) * 255).round().astype(np.uint8)
n = int(sys.argv[3])
reps = (-(-n // tile.shape[0]), -(-n // tile.shape[1]), 1)
(folder / "images").mkdir(parents=True)
Image.fromarray(np.ascontiguousarray(np.tile(tile, reps)[:n, :n])).save(folder / "images" / "big.png")
del tile
import os
os.environ["CELLSEG_DATA"] = str(folder)
# The page's memory is the server's *and* its worker pool's: poll the process tree.
# PSS splits pages shared between processes (the forked workers share the server's
# libraries), so the PSS sum is what the machine gives the page; the RSS sum counts
# shared pages once per process (an upper bound).
me = psutil.Process()
peak = {"server_rss": 0, "tree_rss": 0, "tree_pss": 0}
def pss(pid):
    with open(f"/proc/{pid}/smaps_rollup") as f:
        return next(int(l.split()[1]) * 1024 for l in f if l.startswith("Pss:"))
def poll():
    while True:
        try:
            kids = me.children(recursive=True)
            rss = me.memory_info().rss
            peak["server_rss"] = max(peak["server_rss"], rss)
            peak["tree_rss"] = max(peak["tree_rss"], rss + sum(k.memory_info().rss for k in kids))
            peak["tree_pss"] = max(peak["tree_pss"], pss(me.pid) + sum(pss(k.pid) for k in kids))
        except (psutil.Error, OSError, StopIteration):
            pass
        time.sleep(0.05)
threading.Thread(target=poll, daemon=True).start()
from streamlit.testing.v1 import AppTest
from app_support import state
from tests._support.apptest import page_harness
base = me.memory_info().rss
start = time.perf_counter()
at = AppTest.from_string(page_harness("explore.py"), default_timeout=600)
at.session_state[state.SOURCE_KIND] = "Dataset"
at.session_state[state.SOURCE_DATASET] = folder.name
at.session_state[state.SOURCE_ID] = "big"
at.run()
errors = [e.value for e in at.exception]
for section in ("Per-cell table", "Error map", "Try all thresholds", "Downloads"):
    at.segmented_control(key="explore.tab").set_value(section)
    at.run()
    errors += [e.value for e in at.exception]
time.sleep(0.2)
mb = lambda b: b / 2**20
print(json.dumps({"kind": "Explore page", "preset": "default", "base_mb": mb(base),
                  "server_mb": mb(peak["server_rss"]), "tree_rss_mb": mb(peak["tree_rss"]),
                  "peak_mb": mb(peak["tree_pss"]), "workers": len(me.children(recursive=True)),
                  "seconds": time.perf_counter() - start, "errors": errors}))
"""


def bench_page_memory(size: int = 4096) -> dict | None:
    """Peak RSS of the Explore page (AppTest, every section) on a `size`² RGB image."""
    voced = Path(os.environ.get("CELLSEG_VOCED") or REPO.parent / "shared" / "data" / "voced")
    tile = voced / "images" / "000.png"
    if not tile.is_file():
        print(f"(VocEd not found at {voced}: Explore page row skipped)")
        return None
    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.run([sys.executable, "-c", _PAGE_CHILD, str(tile),
                               str(Path(tmp) / "big4096"), str(size)], capture_output=True,
                              text=True, check=True, cwd=REPO,
                              env={**os.environ, "PYTHONPATH": str(REPO)})
    return json.loads(proc.stdout.strip().splitlines()[-1])


def bench_memory(size: int = 4096) -> list[dict]:
    voced = Path(os.environ.get("CELLSEG_VOCED") or REPO.parent / "shared" / "data" / "voced")
    out = []
    for kind in ("voced", "noise"):
        tile = voced / "images" / "000.png"
        if kind == "voced" and not tile.is_file():
            print(f"(VocEd not found at {voced}: tiled-image row skipped)")
            continue
        proc = subprocess.run([sys.executable, "-c", _MEMORY_CHILD, str(REPO), kind, str(size),
                               str(tile)], capture_output=True, text=True, check=True)
        out.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", default=",".join(IMAGES))
    parser.add_argument("--presets", default=",".join(preset_names()))
    parser.add_argument("--timeout", type=float, default=300.0,
                        help="seconds before a run is killed (default 300)")
    parser.add_argument("--no-memory", action="store_true")
    parser.add_argument("--memory-only", action="store_true")
    args = parser.parse_args(argv)
    missed = 0
    if not args.memory_only:
        print(f"cellseg segment, one image per run, {os.cpu_count()} CPUs; goal <= {GOAL_S:.0f} s, "
              "exit 0, outputs readable")
        print(_HEADER, flush=True)
        results = bench_cli(args.images.split(","), args.presets.split(","), args.timeout)
        missed += sum(1 for r in results
                      if not (r["seconds"] <= GOAL_S and r["exit"] == 0 and r["readable"]))
        worst = max(results, key=lambda r: r["seconds"])
        print(f"slowest: {worst['image']} / {worst['preset']} {worst['seconds']:.1f} s; "
              f"{missed} of {len(results)} runs miss the goal")
    if not args.no_memory:
        print(f"\nengine peak memory, 4096² RGB, one fresh process (goal for the whole Explore "
              f"page: {GOAL_MB} MB)")
        print(f"{'image':<24} {'preset':<8} {'seconds':>7} {'nuclei':>9} {'rows':>9} "
              f"{'RSS before':>10} {'peak RSS':>9}")
        for m in bench_memory():
            name = "VocEd 000 tiled" if m["kind"] == "voced" else "noise, ceiling lifted"
            print(f"{name:<24} {m['preset']:<8} {m['seconds']:>7.1f} {m['nuclei']:>9,} "
                  f"{m['rows']:>9,} {m['base_mb']:>7.0f} MB {m['peak_mb']:>6.0f} MB")
            missed += m["peak_mb"] > GOAL_MB
        page = bench_page_memory()
        if page is not None:
            print(f"\nthe whole Explore page (AppTest: overlay, numbers, histogram, then every "
                  f"section), 4096² RGB (VocEd 000 tiled), default preset; the server and its "
                  f"worker pool together (goal on the PSS sum: {GOAL_MB} MB)")
            print(f"{'seconds':>7} {'RSS before':>10} {'server peak':>11} {'tree RSS':>9} "
                  f"{'tree PSS':>9}  errors")
            print(f"{page['seconds']:>7.1f} {page['base_mb']:>7.0f} MB {page['server_mb']:>8.0f} MB "
                  f"{page['tree_rss_mb']:>6.0f} MB {page['peak_mb']:>6.0f} MB  {len(page['errors'])}")
            missed += page["peak_mb"] > GOAL_MB or bool(page["errors"])
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
