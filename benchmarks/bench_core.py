"""Per-stage and whole-pipeline latency of cellseg_core against a naive course-style reference.

Prints one table: for each image size (256², 1024², 2048²) and preset (lab01, lab03v2,
auto-cytology), the median time of each stage of :func:`cellseg_core.segment` and of the
whole pipeline, next to a reference written the way the course wrote Lab 03-v2 (float64
gray, ``np.where`` chains, ``skimage.morphology.remove_small_objects`` and
``scipy.ndimage.binary_fill_holes`` per class, ``skimage.measure.label``), and the ratio
reference / core (> 1: the core is faster).

Both start from the decoded uint8 RGB array in memory (what the app holds while a slider
moves); the PNG decode is timed on its own row ("read") and is not part of "pipeline".

The image is a VocEd image tiled to the size (env CELLSEG_VOCED or ../shared/data/voced),
or a synthetic RGB image of dark nuclei in grey cells when the data set is missing.

Goal (issue 2): lab03v2 whole pipeline at least 2x faster than the reference at 256² and
at 2048².

Usage::

    python3 benchmarks/bench_core.py                 # default repeats
    python3 benchmarks/bench_core.py --repeats 3     # quick look
    python3 benchmarks/bench_core.py --sizes 256 2048 --presets lab03v2
"""
from __future__ import annotations

import argparse
import inspect
import io
import os
import statistics
import sys
import time

import numpy as np
from PIL import Image
from scipy import ndimage as ndi
from skimage import filters as skf
from skimage.measure import label as sk_label
from skimage.morphology import remove_small_objects as sk_remove_small_objects
from _common import voced_path

from cellseg_core.color import extract_channel
from cellseg_core.filters import blur
from cellseg_core.io import as_float_image, read_image
from cellseg_core.morphology import clean_labels
from cellseg_core.pipeline import _nucleus_instances, segment
from cellseg_core.presets import get_preset
from cellseg_core.threshold import apply_threshold

SIZES = (256, 1024, 2048)
PRESETS = ("lab01", "lab03v2", "auto-cytology")
STAGES = ("read", "channel", "blur", "threshold", "cleanup", "instances", "pipeline")


# --- input images --------------------------------------------------------------------------
def _synthetic_tile(size=256, seed=0) -> np.ndarray:
    """Grey cells with dark nuclei on a bright background, uint8 RGB."""
    rng = np.random.default_rng(seed)
    rr, cc = np.indices((size, size))
    gray = np.full((size, size), 0.93)
    for _ in range(6):
        r, c = rng.integers(30, size - 30, 2)
        d2 = (rr - r) ** 2 + (cc - c) ** 2
        gray[d2 <= rng.integers(18, 30) ** 2] = 0.65
        gray[d2 <= rng.integers(6, 12) ** 2] = 0.25
    gray = ndi.gaussian_filter(gray, 1.5) + rng.normal(0, 0.02, gray.shape)
    rgb = np.clip(np.stack([gray * 1.02, gray * 0.95, gray * 1.05], -1), 0, 1)
    return (rgb * 255).round().astype(np.uint8)


def base_tile() -> tuple[np.ndarray, str]:
    folder = voced_path() / "images"
    path = folder / "000.png"
    if path.is_file():
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB")), f"VocEd {path.name} tiled"
    return _synthetic_tile(), "synthetic RGB (VocEd not found)"


def make_image(tile: np.ndarray, size: int) -> np.ndarray:
    reps = -(-size // tile.shape[0]), -(-size // tile.shape[1])
    return np.ascontiguousarray(np.tile(tile, (*reps, 1))[:size, :size])


def png_bytes(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "PNG", compress_level=1)
    return buf.getvalue()


# --- the naive reference, course style ----------------------------------------------------
def ref_read(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB")) / 255.0


def ref_channel(rgb_uint8: np.ndarray) -> np.ndarray:
    x = rgb_uint8 / 255.0                                  # float64, as a course notebook
    return 0.299 * x[:, :, 0] + 0.587 * x[:, :, 1] + 0.114 * x[:, :, 2]


def ref_thresholds(gray: np.ndarray, preset: str) -> tuple[float, float]:
    if preset == "lab01":
        return 0.45, 0.85
    if preset == "lab03v2":
        return 0.3904, 0.99
    # auto-cytology, naively: background from the bright histogram peak, Li inside the cell
    counts, edges = np.histogram(gray, bins=256, range=(0.0, 1.0))
    mode = edges[np.argmax(counts)]
    spread = 1.4826 * np.median(gray[gray >= mode] - mode) + 1 / 255
    t_bg = float(np.clip(mode - 6 * spread, 0, 1))
    return float(skf.threshold_li(gray[gray < t_bg])), t_bg


def ref_threshold(gray, t_nuc, t_bg):
    return np.where(gray < t_nuc, 2, np.where(gray < t_bg, 1, 0))


def _remove_small(mask, min_size):
    """skimage's remove_small_objects: pieces < min_size (0.26 renamed it max_size, <=)."""
    if "max_size" in inspect.signature(sk_remove_small_objects).parameters:
        return sk_remove_small_objects(mask, max_size=min_size - 1)
    return sk_remove_small_objects(mask, min_size)


def ref_cleanup(mask, preset):
    if preset == "lab01":
        return mask
    nucleus = _remove_small(mask == 2, 200)
    cytoplasm = _remove_small(mask == 1, 200)
    nucleus = ndi.binary_fill_holes(nucleus)
    cytoplasm = ndi.binary_fill_holes(cytoplasm)
    return np.where(nucleus, 2, np.where(cytoplasm, 1, 0))


def ref_instances(mask):
    return sk_label(mask == 2, connectivity=1)


def ref_pipeline(rgb_uint8, preset):
    gray = ref_channel(rgb_uint8)
    mask = ref_cleanup(ref_threshold(gray, *ref_thresholds(gray, preset)), preset)
    return mask, ref_instances(mask)


# --- timing ---------------------------------------------------------------------------------
def median_time(func, repeats: int) -> float:
    func()                                                 # warm-up (caches, imports)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench_core(rgb, data, params, repeats):
    image = as_float_image(rgb)
    channel = extract_channel(image, params.channel)
    blurred = blur(channel, params.blur.kind, sigma=params.blur.sigma, size=params.blur.size)
    raw, _ = apply_threshold(blurred, params.threshold, params.mode)
    labels = clean_labels(raw, params.cleanup)
    b = params.blur
    return {
        "read": median_time(lambda: read_image(data), repeats),
        "channel": median_time(lambda: extract_channel(as_float_image(rgb), params.channel),
                               repeats),
        "blur": median_time(lambda: blur(channel, b.kind, sigma=b.sigma, size=b.size), repeats),
        "threshold": median_time(lambda: apply_threshold(blurred, params.threshold, params.mode),
                                 repeats),
        "cleanup": median_time(lambda: clean_labels(raw, params.cleanup), repeats),
        "instances": median_time(lambda: _nucleus_instances(labels, params), repeats),
        "pipeline": median_time(lambda: segment(rgb, params), repeats),
    }


def bench_reference(rgb, data, preset, repeats):
    gray = ref_channel(rgb)
    t = ref_thresholds(gray, preset)
    mask = ref_threshold(gray, *t)
    cleaned = ref_cleanup(mask, preset)
    return {
        "read": median_time(lambda: ref_read(data), repeats),
        "channel": median_time(lambda: ref_channel(rgb), repeats),
        "blur": 0.0,
        "threshold": median_time(lambda: ref_threshold(gray, *ref_thresholds(gray, preset)),
                                 repeats),
        "cleanup": median_time(lambda: ref_cleanup(mask, preset), repeats),
        "instances": median_time(lambda: ref_instances(cleaned), repeats),
        "pipeline": median_time(lambda: ref_pipeline(rgb, preset), repeats),
    }


def agreement(rgb, preset) -> float:
    """Fraction of pixels where core and reference agree (a sanity check, not a test)."""
    ours = segment(rgb, get_preset(preset)).labels
    theirs, _ = ref_pipeline(rgb, preset)
    return float((ours == theirs).mean())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    parser.add_argument("--presets", nargs="+", default=list(PRESETS))
    parser.add_argument("--repeats", type=int, default=0,
                        help="timed runs per cell (default: 201 / 15 / 11 by size: millisecond timings "
                             "need many runs for a stable median)")
    args = parser.parse_args(argv)

    tile, source = base_tile()
    print(f"# bench_core: {source}; median of repeats; times in ms; ratio = reference / core")
    print(f"# numpy {np.__version__}, {os.cpu_count()} CPUs, load average "
          f"{', '.join(f'{x:.1f}' for x in os.getloadavg())}")
    header = f"{'size':>5} {'preset':<14} {'stage':<10} {'core ms':>9} {'ref ms':>9} {'ratio':>6}"
    print(header)
    print("-" * len(header))
    goal_rows = []
    for size in args.sizes:
        rgb = make_image(tile, size)
        data = png_bytes(rgb)
        repeats = args.repeats or (201 if size <= 256 else 15 if size <= 1024 else 11)
        for preset in args.presets:
            core = bench_core(rgb, data, get_preset(preset), repeats)
            ref = bench_reference(rgb, data, preset, repeats)
            for stage in STAGES:
                c, r = core[stage] * 1e3, ref[stage] * 1e3
                ratio = f"{r / c:6.2f}" if c > 0 and r > 0 else "     -"
                print(f"{size:>5} {preset:<14} {stage:<10} {c:9.2f} {r:9.2f} {ratio}")
            agree = agreement(rgb, preset)
            print(f"{size:>5} {preset:<14} {'(labels agree with reference on '}"
                  f"{100 * agree:.2f}% of pixels)")
            if preset == "lab03v2":
                goal_rows.append((size, ref["pipeline"] / core["pipeline"]))
    print()
    for size, ratio in goal_rows:
        verdict = "meets" if ratio >= 2 else "MISSES"
        print(f"goal lab03v2 pipeline >= 2x reference at {size}^2: {ratio:.2f}x -> {verdict}"
              + ("" if size in (256, 2048) else " (not a goal size)"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
