"""Leave-one-set-out for the nucleus U-Net: the honest figure for a new kind of image.

Each of the three DSB 2018 sets is left out in turn: a U-Net is trained from scratch on
the train splits of the other two (``training/train_nuclei.py``, the same recipe, seed and
time limit for every run) and every run is scored on all three *test* splits, so each
set is seen by two runs and unseen by one. The table puts the unseen score beside the
mean seen score at the same budget, and the built-in model (trained on all three) beside
both.

Usage::

    nice -n 10 python3 benchmarks/bench_nuclei_loso.py --out training/runs/loso --minutes 24
    python3 benchmarks/bench_nuclei_loso.py --out training/runs/loso --score-only

The first trains three models (about 10-14 min each on one core of a quiet laptop CPU,
early stopping included) and scores them; the second scores the runs already in
``--out``. Needs PyTorch for training only.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "training"))

from cellseg_core.data import open_dataset  # noqa: E402
from cellseg_core.data.splits import split_ids  # noqa: E402
from cellseg_core.evaluation.scoring import instance_scores  # noqa: E402
from cellseg_core.learn.nuclei import NucleusModel  # noqa: E402

SETS = ("dsb2018_fluo", "dsb2018_histo", "dsb2018_brightfield")


def train_without(left_out: str, data: Path, out: Path, minutes: float, threads: int) -> Path:
    """Train from scratch on the sets other than `left_out`; the run's ONNX file."""
    import train_nuclei

    run = out / f"without_{left_out}"
    if not (run / "nuclei.onnx").is_file():
        train_nuclei.main([str(data / s) for s in SETS if s != left_out]
                          + ["--out", str(run), "--seed", "0", "--minutes", str(minutes),
                             "--threads", str(threads)])
    return run / "nuclei.onnx"


def score(model: NucleusModel, data: Path) -> dict:
    """Set name -> (F1@0.5, DSB AP) of `model` on the set's test split."""
    out = {}
    for name in SETS:
        ds = open_dataset(data / name)
        s = instance_scores(ds, split_ids(ds, "test"), model)
        out[name] = (s["instance_f1_0.5"], s["instance_ap"])
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "data"))
    ap.add_argument("--out", default=str(REPO / "training" / "runs" / "loso"))
    ap.add_argument("--minutes", type=float, default=24.0, help="time limit of each run")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--score-only", action="store_true", help="score the runs in --out")
    args = ap.parse_args(argv)
    data, out = Path(args.data), Path(args.out)
    missing = [s for s in SETS if not (data / s / "split.json").is_file()]
    if missing:
        sys.exit(f"missing data sets under {data}: {', '.join(missing)}")
    scores = {}
    for left_out in SETS:
        path = (out / f"without_{left_out}" / "nuclei.onnx" if args.score_only
                else train_without(left_out, data, out, args.minutes, args.threads))
        if not path.is_file():
            sys.exit(f"no trained run at {path}: train first (drop --score-only)")
        scores[left_out] = score(NucleusModel(path), data)
    builtin = score(NucleusModel(), data)

    print("F1@0.5 / DSB AP on each test split (rows) of a U-Net trained without one set "
          "(columns)\n")
    print("| test split | " + " | ".join(f"without {s[8:]}" for s in SETS)
          + " | unseen | seen (mean of 2) | built-in (all 3) |")
    print("|---" * (len(SETS) + 4) + "|")
    for name in SETS:
        cells = [f"{scores[left][name][0]:.3f} / {scores[left][name][1]:.3f}"
                 + (" (unseen)" if left == name else "") for left in SETS]
        seen = [scores[left][name][0] for left in SETS if left != name]
        print(f"| {name} | " + " | ".join(cells)
              + f" | {scores[name][name][0]:.3f} | {sum(seen) / len(seen):.3f}"
              f" | {builtin[name][0]:.3f} / {builtin[name][1]:.3f} |")


if __name__ == "__main__":
    main()
