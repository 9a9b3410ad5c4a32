"""Experiment (issue 18, point 1): distance-map target against the 3-class target.

Both networks are the package's U-Net, trained from scratch by the same loop
(``fit_nucleus_net``; only its ``TrainingTarget`` differs) with the same seed, the
same training / validation images (``train_nuclei.load_sets``: the TRAIN splits of
the sets given, a seeded 15 % held out for validation), the same
augmented crops (``sample_crop``: same rng, same sequence), the same steps per epoch,
batch, learning rate, plateau decay, best-validation checkpoint and wall-time budget.
Only the target, the loss and the decode differ:

- ``classes`` (target A, the shipped design): background / interior / boundary,
  weighted cross-entropy; exactly ``fit_nucleus_net`` with ``init=None``; thresholds
  tuned on the validation images by ``tune_thresholds``; decoded by
  ``probabilities_to_instances(decode="distance")`` (the shipped decode).
- ``distance`` (target B): 2 output channels: channel 0 a foreground logit (BCE
  against "inside a nucleus"), channel 1 the distance of each nucleus pixel to its own
  nucleus's boundary in model-scale radii (diameter 20 -> radius 10), clipped to
  [0, 1.5], 0 on background (MSE, weight 1 against the BCE). The distance is computed
  per instance in one vectorised call: the Euclidean distance transform of the
  3-class target's interior (each nucleus's 1-px boundary ring, including the double
  ring between touching nuclei, counts as outside) plus 1 on every nucleus pixel, so
  touching nuclei get separate peaks. Decode: foreground = sigmoid(logit) > t_fg
  (holes filled); landscape = predicted distance smoothed by
  ``RELATIVE["marker_smoothing"]`` diameters; instances =
  ``autoseg.split_nuclei(foreground, landscape, depth, RELATIVE["compactness"] * 2 /
  diameter)``, i.e. the same relative values as the 3-class ``distance`` decode (which
  builds its landscape from the distance transform of its foreground, in radii);
  objects under 12 px dropped. During training the validation F1 uses t_fg 0.5 and
  depth ``RELATIVE["marker_depth"]``; afterwards t_fg and depth are tuned on the
  validation images only.

Both are then scored on the validation images (the held-out part of the train splits;
test splits are never read) at the images' true scale (instances predicted at model
scale, resized back with nearest neighbour): per set, mean per-image F1 at IoU 0.5
and DSB AP (``cellseg_core.metrics``). Note: the thresholds are tuned on these same
validation images for both targets (as the shipped model's are), so the figures are
optimistic for both alike; bright-field has a single validation image.

Command (one process per target, both at once, one thread each; the second one to
finish prints the table, or ``--report --out DIR`` prints it from the saved results)::

    for t in classes distance; do
      nice -n 10 python3 training/experiment_distance_target.py \
        ../shared/data/dsb2018_fluo ../shared/data/dsb2018_histo \
        ../shared/data/dsb2018_brightfield --target $t --minutes 10 --threads 1 \
        --patience 100 --out training/runs/distance_experiment_p100 \
        > training/runs/distance_experiment_p100_$t.log 2>&1 &
    done

Wall time, measured on 2 shared CPU cores with both runs at once: 10 min 45 s per
run (10.1 min training, then tuning and scoring; loading 5 s). Results (2026-12-02,
seed 0; validation images; F1@0.5 / DSB AP; ``--patience 100`` so that both use the
whole 10 minutes)::

    | target   | fluo F1 / AP  | histo F1 / AP | bright-field F1 / AP | mean F1 / AP  | steps |
    | classes  | 0.810 / 0.464 | 0.690 / 0.257 | 0.775 / 0.362 (n=1)  | 0.758 / 0.361 | 1400  |
    | distance | 0.762 / 0.394 | 0.588 / 0.216 | 0.619 / 0.236 (n=1)  | 0.656 / 0.282 | 1640  |

With ``train_nuclei.py``'s default ``--patience 8`` the 3-class run stops early after
7.0 min (epoch 20, best 12: 0.728/0.624/0.750, mean F1 0.701, AP 0.290) and the
distance run is unchanged (its best epoch is 32 either way; the run is deterministic).
Writes ``<out>/<target>.json`` (settings, per-epoch log, tuned values, scores).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import tifffile
from scipy import ndimage as ndi
from skimage.segmentation import relabel_sequential
from skimage.transform import resize

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from cellseg_core.autoseg import RELATIVE, split_nuclei  # noqa: E402
from cellseg_core.instances import filter_by_size  # noqa: E402
from cellseg_core.learn.nuclei import probabilities_to_instances  # noqa: E402
from cellseg_core.learn.nuclei_training import (  # noqa: E402
    NucleusTrainingSettings, TrainingTarget, fit_nucleus_net, tune_thresholds)
from cellseg_core.metrics import average_precision, match_instances  # noqa: E402
from cellseg_core.morphology import fill_holes  # noqa: E402
from train_nuclei import add_training_arguments, load_sets, settings_from  # noqa: E402

TARGETS = ("classes", "distance")
MIN_SIZE = 12
SET_NAMES = {"dsb2018_fluo": "fluo", "dsb2018_histo": "histo",
             "dsb2018_brightfield": "bright-field"}


# --- target B: distance to the nucleus's own boundary ---------------------------------------

def distance_target(classes: np.ndarray, radius: float, cap: float = 1.5) -> np.ndarray:
    """Per-instance distance to the own boundary, in radii, from a 3-class target.

    Examples
    --------
    >>> t = np.zeros((1, 9), np.uint8); t[0, 1:8] = [2, 1, 1, 1, 1, 1, 2]
    >>> distance_target(t, radius=2.0, cap=10)
    array([[0. , 0.5, 1. , 1.5, 2. , 1.5, 1. , 0.5, 0. ]], dtype=float32)
    """
    inside = ndi.distance_transform_edt(classes == 1) + 1.0
    out = np.where(classes > 0, inside, 0.0) / float(radius)
    return np.clip(out, 0, cap).astype(np.float32)


def _forward(torch, net, x, multiple: int) -> np.ndarray:
    """(M, N, C) raw outputs of a whole (M, N, 3) image at model scale."""
    m, n = x.shape[:2]
    xp = np.pad(x, ((0, (-m) % multiple), (0, (-n) % multiple), (0, 0)), mode="symmetric")
    with torch.no_grad():
        out = net(torch.from_numpy(np.moveaxis(xp, -1, 0)[None].copy()))[0].numpy()
    return np.moveaxis(out, 0, -1)[:m, :n]


def decode_distance(out: np.ndarray, diameter: float, t_fg: float = 0.5,
                    depth: float = RELATIVE["marker_depth"]) -> np.ndarray:
    """Instances from (M, N, 2) outputs (foreground logit, distance in radii)."""
    foreground = fill_holes(1 / (1 + np.exp(-out[..., 0])) > t_fg)
    landscape = ndi.gaussian_filter(out[..., 1].astype(np.float64),
                                    RELATIVE["marker_smoothing"] * diameter, mode="nearest")
    labels = split_nuclei(foreground, landscape, depth, RELATIVE["compactness"] * 2 / diameter)
    labels = filter_by_size(labels, MIN_SIZE)
    return relabel_sequential(labels)[0].astype(np.int32, copy=False)


def _mean_per_set(values: dict) -> float:
    return float(np.mean([np.mean(v) for v in values.values()]))


def validate_distance(torch, net, items, diameter, t_fg=0.5, depth=RELATIVE["marker_depth"],
                      outputs=None) -> tuple[float, dict]:
    """Mean per-set validation F1 at IoU 0.5 at model scale (as ``validate``)."""
    multiple = 2 ** (len(net.widths) - 1)
    net.eval()
    per_set = {}
    for k, (name, _, x, lab) in enumerate(items):
        out = outputs[k] if outputs is not None else _forward(torch, net, x, multiple)
        inst = decode_distance(out, diameter, t_fg, depth)
        per_set.setdefault(name, []).append(match_instances(inst, lab)["f1"])
    net.train()
    return _mean_per_set(per_set), {k: float(np.mean(v)) for k, v in per_set.items()}


def distance_loss(out, classes: np.ndarray, settings: NucleusTrainingSettings):
    """Target B's loss: foreground BCE + MSE of the distance (in radii) to the own boundary."""
    import torch

    fg = torch.from_numpy((classes > 0).astype(np.float32))
    radius = settings.diameter / 2
    dist = torch.from_numpy(np.stack([distance_target(c, radius) for c in classes]))
    return (torch.nn.functional.binary_cross_entropy_with_logits(out[:, 0], fg)
            + torch.nn.functional.mse_loss(out[:, 1], dist))


def _validate_distance(net, items, diameter):
    import torch

    return validate_distance(torch, net, items, diameter)


#: Target B, trained by ``fit_nucleus_net``'s own loop (crops, schedule, early stop).
DISTANCE = TrainingTarget(n_out=2, loss=distance_loss, validate=_validate_distance)


def tune_distance(torch, net, items, diameter) -> dict:
    """t_fg and depth with the best mean validation F1 (model scale)."""
    multiple = 2 ** (len(net.widths) - 1)
    outputs = [_forward(torch, net, x, multiple) for _, _, x, _ in items]
    best = (-1.0, 0.5, RELATIVE["marker_depth"])
    for t_fg in (0.3, 0.4, 0.5, 0.6, 0.7):
        for depth in (0.02, 0.05, 0.1, 0.15, 0.2, 0.3):
            score, _ = validate_distance(torch, net, items, diameter, t_fg, depth, outputs)
            best = max(best, (score, t_fg, depth))
    net.eval()
    return {"val_f1_tuned": round(best[0], 4), "t_fg": best[1], "depth": best[2]}


# --- scoring at true scale ------------------------------------------------------------------

def score_true_scale(torch, net, target, val_items, folders, tuned, diameter) -> dict:
    """Per set: mean per-image F1@0.5 and DSB AP against the labels at their own scale."""
    multiple = 2 ** (len(net.widths) - 1)
    where = {Path(f).name: Path(f) for f in folders}
    per_set = {}
    for name, ident, x, _ in val_items:
        truth = tifffile.imread(where[name] / "labels" / f"{int(ident):03d}.tif").astype(np.int32)
        out = _forward(torch, net, x, multiple)
        if target == "classes":
            e = np.exp(out - out.max(-1, keepdims=True))
            inst = probabilities_to_instances(
                e / e.sum(-1, keepdims=True), marker_threshold=tuned["marker_threshold"],
                foreground_threshold=tuned["foreground_threshold"], min_size=MIN_SIZE,
                decode="distance", diameter=diameter)
        else:
            inst = decode_distance(out, diameter, tuned["t_fg"], tuned["depth"])
        if inst.shape != truth.shape:
            inst = resize(inst, truth.shape, order=0, preserve_range=True,
                          anti_aliasing=False).astype(np.int32)
            inst = relabel_sequential(inst)[0]
        per_set.setdefault(name, []).append((match_instances(inst, truth)["f1"],
                                             average_precision(inst, truth)))
    return {k: {"f1": float(np.mean([v[0] for v in vals])),
                "ap": float(np.mean([v[1] for v in vals])), "n": len(vals)}
            for k, vals in per_set.items()}


def table(results: dict) -> str:
    """The markdown table of the saved results (one row per target)."""
    sets = list(SET_NAMES)
    lines = ["| target | " + " | ".join(f"{SET_NAMES[s]} F1 / AP" for s in sets)
             + " | mean F1 / AP | steps | minutes |",
             "|---" * (len(sets) + 4) + "|"]
    for target in TARGETS:
        r = results.get(target)
        if r is None:
            continue
        cells, f1s, aps = [], [], []
        for s in sets:
            if s in r["scores"]:
                v = r["scores"][s]
                cells.append(f"{v['f1']:.3f} / {v['ap']:.3f} (n={v['n']})")
                f1s.append(v["f1"])
                aps.append(v["ap"])
            else:
                cells.append("-")
        lines.append(f"| {target} | " + " | ".join(cells)
                     + f" | {np.mean(f1s):.3f} / {np.mean(aps):.3f} | {r['steps']} "
                     f"| {r['minutes']:.1f} |")
    return "\n".join(lines)


def _load_results(out: Path) -> dict:
    return {t: json.loads((out / f"{t}.json").read_text())
            for t in TARGETS if (out / f"{t}.json").is_file()}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("data", nargs="*", help="dataset folders (images/, labels/, split.json)")
    ap.add_argument("--target", choices=TARGETS)
    ap.add_argument("--out", default="training/runs/distance_experiment")
    ap.add_argument("--report", action="store_true", help="only print the saved table")
    add_training_arguments(ap, minutes=10.0, threads=1)
    args = ap.parse_args(argv)
    out = Path(args.out)
    if args.report:
        print(table(_load_results(out)))
        return
    if not args.data or args.target is None:
        ap.error("give the dataset folders and --target (or --report)")

    import torch

    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    data = load_sets(args.data, args.diameter, args.val_fraction,
                     np.random.default_rng(args.seed))
    print(f"[{args.target}] loaded {len(data['train'])} train / {len(data['val'])} val "
          f"in {time.time() - t0:.0f} s", flush=True)
    settings = settings_from(args)

    def report(event):
        if event["kind"] == "epoch":
            print(f"[{args.target}] epoch {event['epoch']} loss {event['loss']:.4f} "
                  f"val F1 {event['val_f1']:.3f} lr {event['lr']:.2g} "
                  f"{event['seconds'] / 60:.1f} min", flush=True)

    start = time.time()
    if args.target == "classes":
        net, log = fit_nucleus_net(data["train"], data["val"], settings, progress=report)
        tuned = tune_thresholds(net, data["val"], settings.diameter)
    else:
        net, log = fit_nucleus_net(data["train"], data["val"], settings, progress=report,
                                   target=DISTANCE)
        tuned = tune_distance(torch, net, data["val"], settings.diameter)
    print(f"[{args.target}] {log['stopped']}; tuned on validation: {tuned}", flush=True)
    scores = score_true_scale(torch, net, args.target, data["val"], args.data, tuned,
                              settings.diameter)
    result = {"target": args.target, "settings": {**vars(args)}, "tuned": tuned,
              "scores": scores, "epochs": log["epochs"], "best": log["best"],
              "stopped": log["stopped"], "steps": len(log["epochs"]) * args.steps,
              "train_minutes": log["wall_seconds"] / 60,
              "minutes": (time.time() - start) / 60}
    (out / f"{args.target}.json").write_text(json.dumps(result, indent=1))
    torch.save({"state_dict": net.state_dict(), "widths": settings.widths,
                "diameter": settings.diameter, "target": args.target},
               out / f"{args.target}.pt")
    print(f"[{args.target}] done: {result['minutes']:.1f} min", flush=True)
    print(table(_load_results(out)))


if __name__ == "__main__":
    main()
