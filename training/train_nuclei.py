"""Train the built-in nucleus model (3-class U-Net) and export it to ONNX.

Example (the command that produced ``cellseg_core/models/nuclei.onnx``: see its card)::

    nice -n 10 python training/train_nuclei.py ../shared/data/dsb2018_fluo \
        ../shared/data/dsb2018_histo ../shared/data/dsb2018_brightfield \
        --out training/runs/nuclei --seed 0 --minutes 15

Only the ``train`` ids of each set's ``split.json`` are read; a seeded part of them is
held out for validation (best checkpoint, learning-rate decay, early stopping). Writes
into ``--out``: ``log.json`` (settings, per-epoch loss / validation F1 / learning rate,
wall time), ``best.pt`` (torch state dict + settings) and ``nuclei.onnx``.
PyTorch is needed here only; inference (``cellseg_core.learn.nuclei``) uses onnxruntime.
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
from skimage.transform import rescale, resize

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from cellseg_core.io import read_image  # noqa: E402
from cellseg_core.metrics import match_instances  # noqa: E402
from cellseg_core.learn.nuclei import (FORMAT, FORMAT_VERSION, normalize_image,  # noqa: E402
                                        nucleus_targets, probabilities_to_instances)


def median_diameter(labels: np.ndarray) -> float:
    """Median equivalent diameter (px) of the instances of a label image."""
    areas = np.bincount(labels.ravel())[1:]
    areas = areas[areas > 0]
    return float(np.median(2 * np.sqrt(areas / np.pi))) if areas.size else float("nan")


def to_model_scale(image, labels, diameter: float, model_diameter: float):
    """Normalised RGB image and instances rescaled so nuclei are `model_diameter` across."""
    x = normalize_image(image)
    factor = model_diameter / diameter
    if abs(factor - 1) > 0.02:
        x = rescale(x, factor, order=1, channel_axis=-1, anti_aliasing=factor < 1,
                    preserve_range=True).astype(np.float32)
        labels = resize(labels, x.shape[:2], order=0, preserve_range=True,
                        anti_aliasing=False).astype(np.int32)
    return x, labels


def _pad_min(x, labels, size: int):
    """Reflect-pad to at least `size` per side; mirrored nuclei get their own ids."""
    pm, pn = max(0, size - x.shape[0]), max(0, size - x.shape[1])
    if not (pm or pn):
        return x, labels
    pads = ((pm // 2, pm - pm // 2), (pn // 2, pn - pn // 2))
    inside = np.pad(np.ones(labels.shape, bool), pads)
    x = np.pad(x, pads + ((0, 0),), mode="symmetric")
    big = np.pad(labels, pads, mode="symmetric")
    big = np.where(~inside & (big > 0), big + labels.max(), big)
    return x, big.astype(np.int32)


def load_sets(folders, model_diameter, val_fraction, rng):
    """{'train': [...], 'val': [...]} of (set name, x, labels) at model scale."""
    out = {"train": [], "val": []}
    for folder in folders:
        folder = Path(folder)
        ids = sorted(json.loads((folder / "split.json").read_text())["train"])
        ids = list(rng.permutation(ids))
        n_val = max(1, int(round(val_fraction * len(ids))))
        for part, chosen in (("val", ids[:n_val]), ("train", ids[n_val:])):
            for ident in chosen:
                image = read_image(folder / "images" / f"{int(ident):03d}.png")
                labels = tifffile.imread(folder / "labels" / f"{int(ident):03d}.tif").astype(np.int32)
                x, lab = to_model_scale(image, labels, median_diameter(labels), model_diameter)
                out[part].append((folder.name, int(ident), x, lab))
    return out


def augment_intensity(x, rng):
    if x.shape[-1] == 3 and rng.random() < 0.5:
        x = x * rng.uniform(0.9, 1.1, size=3).astype(np.float32)
    if rng.random() < 0.1:
        x = np.repeat(x.mean(-1, keepdims=True), 3, -1)
    gamma = float(np.exp(rng.uniform(np.log(0.7), np.log(1.5))))
    x = np.clip(x, 0, 1.5) ** gamma
    x = (x - 0.5) * rng.uniform(0.7, 1.4) + 0.5 + rng.uniform(-0.15, 0.15)
    if rng.random() < 0.3:
        x = ndi.gaussian_filter(x, (rng.uniform(0.3, 1.5),) * 2 + (0,))
    if rng.random() < 0.5:
        x = x + rng.normal(0, rng.uniform(0, 0.06), x.shape)
    return x.astype(np.float32)


def sample_crop(item, crop, scale_range, rng):
    """One augmented (x (3, crop, crop), target (crop, crop)) pair."""
    _, _, x, lab = item
    s = float(np.exp(rng.uniform(np.log(scale_range[0]), np.log(scale_range[1]))))
    c = int(round(crop / s))
    x, lab = _pad_min(x, lab, c)
    m, n = lab.shape
    if rng.random() < 0.5 and lab.any():
        rows, cols = np.nonzero(lab)
        k = rng.integers(rows.size)
        r0 = int(np.clip(rows[k] - c // 2 + rng.integers(-c // 4, c // 4 + 1), 0, m - c))
        c0 = int(np.clip(cols[k] - c // 2 + rng.integers(-c // 4, c // 4 + 1), 0, n - c))
    else:
        r0, c0 = int(rng.integers(m - c + 1)), int(rng.integers(n - c + 1))
    xc, lc = x[r0:r0 + c, c0:c0 + c], lab[r0:r0 + c, c0:c0 + c]
    if c != crop:
        xc = resize(xc, (crop, crop), order=1, preserve_range=True, anti_aliasing=False)
        lc = resize(lc, (crop, crop), order=0, preserve_range=True, anti_aliasing=False).astype(np.int32)
    k = int(rng.integers(4))
    xc, lc = np.rot90(xc, k), np.rot90(lc, k)
    if rng.random() < 0.5:
        xc, lc = xc[:, ::-1], lc[:, ::-1]
    xc = augment_intensity(np.ascontiguousarray(xc, np.float32), rng)
    return np.moveaxis(xc, -1, 0), nucleus_targets(np.ascontiguousarray(lc))


def predict_torch(torch, net, x, multiple=8):
    """(M, N, 3) probabilities of a whole image at model scale."""
    m, n = x.shape[:2]
    pm, pn = (-m) % multiple, (-n) % multiple
    xp = np.pad(x, ((0, pm), (0, pn), (0, 0)), mode="symmetric")
    with torch.no_grad():
        logits = net(torch.from_numpy(np.moveaxis(xp, -1, 0)[None].copy()))
        prob = torch.softmax(logits, 1)[0].numpy()
    return np.moveaxis(prob, 0, -1)[:m, :n]


def validate(torch, net, items):
    net.eval()
    per_set = {}
    for name, _, x, lab in items:
        inst = probabilities_to_instances(predict_torch(torch, net, x))
        per_set.setdefault(name, []).append(match_instances(inst, lab)["f1"])
    net.train()
    scores = {k: float(np.mean(v)) for k, v in per_set.items()}
    return float(np.mean(list(scores.values()))), scores


def tune_thresholds(torch, net, items):
    """Marker and foreground thresholds with the best mean validation F1 (per-set means)."""
    net.eval()
    probs = [(name, predict_torch(torch, net, x), lab) for name, _, x, lab in items]
    best = (-1.0, 0.5, 0.5)
    for marker in (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9):
        for fg in (0.3, 0.4, 0.5, 0.6):
            per_set = {}
            for name, p, lab in probs:
                inst = probabilities_to_instances(p, marker_threshold=marker,
                                                  foreground_threshold=fg)
                per_set.setdefault(name, []).append(match_instances(inst, lab)["f1"])
            score = float(np.mean([np.mean(v) for v in per_set.values()]))
            best = max(best, (score, marker, fg))
    return {"val_f1_tuned": round(best[0], 4), "marker_threshold": best[1],
            "foreground_threshold": best[2]}


def export_onnx(torch, net, path, meta: dict):
    import onnx

    net.eval()
    torch.onnx.export(net, torch.zeros(1, 3, 64, 64), str(path), dynamo=False, opset_version=17,
                      input_names=["image"], output_names=["logits"],
                      dynamic_axes={"image": {0: "batch", 2: "height", 3: "width"},
                                    "logits": {0: "batch", 2: "height", 3: "width"}})
    model = onnx.load(str(path))
    for key, value in meta.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, str(value)
    onnx.save(model, str(path))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("data", nargs="+", help="dataset folders (images/, labels/, split.json)")
    ap.add_argument("--out", default="training/runs/nuclei")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--epochs", type=int, default=200)
    ap.add_argument("--steps", type=int, default=40, help="steps per epoch")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--crop", type=int, default=128)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--diameter", type=float, default=20.0, help="model-scale nucleus diameter")
    ap.add_argument("--widths", default="16,32,64,128")
    ap.add_argument("--boundary-weight", type=float, default=3.0)
    ap.add_argument("--val-fraction", type=float, default=0.15)
    ap.add_argument("--patience", type=int, default=8, help="epochs without gain before stop")
    ap.add_argument("--minutes", type=float, default=None, help="stop training after this")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--init", default=None, help="start from a best.pt state (fine-tuning)")
    ap.add_argument("--export-only", action="store_true",
                    help="no training: tune thresholds for --init on validation and export")
    args = ap.parse_args(argv)

    import torch

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from nuclei_net import NucleusUNet

    start = time.time()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    widths = tuple(int(w) for w in args.widths.split(","))
    data = load_sets(args.data, args.diameter, args.val_fraction, rng)
    print(f"loaded {len(data['train'])} train / {len(data['val'])} val images "
          f"in {time.time() - start:.0f} s", flush=True)
    by_set = {}
    for item in data["train"]:
        by_set.setdefault(item[0], []).append(item)
    names = sorted(by_set)
    area = {k: np.array([it[3].size for it in v], float) for k, v in by_set.items()}

    net = NucleusUNet(widths)
    if args.init:
        state = torch.load(args.init, map_location="cpu")
        net.load_state_dict(state["state_dict"])
    weights = torch.tensor([1.0, 1.0, args.boundary_weight])
    opt = torch.optim.Adam(net.parameters(), lr=args.lr)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="max", factor=0.5, patience=2)
    log = {"settings": {**vars(args), "widths": widths,
                        "train_ids": [(n, i) for n, i, _, _ in data["train"]],
                        "val_ids": [(n, i) for n, i, _, _ in data["val"]]},
           "epochs": []}
    best, best_epoch = -1.0, -1
    if args.export_only:
        torch.save(torch.load(args.init, map_location="cpu"), out / "best.pt")
        init_log = Path(args.init).with_name("log.json")
        if init_log.is_file():  # keep the training run's record of its best epoch
            previous = json.loads(init_log.read_text())
            best, best_epoch = previous["best"]["val_f1"], previous["best"]["epoch"]
            log["trained_by"] = {k: previous.get(k) for k in ("settings", "epochs", "best",
                                                               "wall_seconds")}
    for epoch in range(0 if args.export_only else args.epochs):
        net.train()
        losses = []
        for _ in range(args.steps):
            batch = []
            for _ in range(args.batch):
                name = names[rng.integers(len(names))]
                k = rng.choice(len(by_set[name]), p=area[name] / area[name].sum())
                batch.append(sample_crop(by_set[name][k], args.crop, (0.75, 1.33), rng))
            xb = torch.from_numpy(np.stack([b[0] for b in batch]))
            yb = torch.from_numpy(np.stack([b[1] for b in batch]).astype(np.int64))
            loss = torch.nn.functional.cross_entropy(net(xb), yb, weight=weights)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
        score, per_set = validate(torch, net, data["val"])
        sched.step(score)
        elapsed = time.time() - start
        log["epochs"].append({"epoch": epoch, "loss": float(np.mean(losses)), "val_f1": score,
                              "val_f1_per_set": per_set, "lr": opt.param_groups[0]["lr"],
                              "seconds": round(elapsed, 1)})
        print(f"epoch {epoch} loss {np.mean(losses):.4f} val F1 {score:.3f} "
              f"{ {k: round(v, 3) for k, v in per_set.items()} } lr {opt.param_groups[0]['lr']:.2g} "
              f"{elapsed / 60:.1f} min", flush=True)
        if score > best:
            best, best_epoch = score, epoch
            torch.save({"state_dict": net.state_dict(), "widths": widths,
                        "diameter": args.diameter}, out / "best.pt")
        log["best"] = {"epoch": best_epoch, "val_f1": best}
        log["wall_seconds"] = round(time.time() - start, 1)
        (out / "log.json").write_text(json.dumps(log, indent=1))
        if epoch - best_epoch >= args.patience:
            print("early stop", flush=True)
            break
        if args.minutes and elapsed > args.minutes * 60:
            print("time limit", flush=True)
            break
    net.load_state_dict(torch.load(out / "best.pt", map_location="cpu")["state_dict"])
    tuned = tune_thresholds(torch, net, data["val"])
    log["tuned"] = tuned
    print(f"thresholds on validation: {tuned}", flush=True)
    export_onnx(torch, net, out / "nuclei.onnx", {
        "marker_threshold": tuned["marker_threshold"],
        "foreground_threshold": tuned["foreground_threshold"],
        "cellseg_format": FORMAT, "cellseg_format_version": FORMAT_VERSION,
        "diameter": args.diameter, "classes": "background,interior,boundary",
        "normalize_percentiles": "1,99.8", "multiple": 2 ** (len(widths) - 1),
        "seed": args.seed, "best_epoch": best_epoch, "val_f1": round(best, 4),
        "trained_on": ",".join(Path(d).name for d in args.data)})
    log["wall_seconds"] = round(time.time() - start, 1)
    (out / "log.json").write_text(json.dumps(log, indent=1))
    print(f"done in {log['wall_seconds'] / 60:.1f} min; best epoch {best_epoch} val F1 {best:.3f}")


if __name__ == "__main__":
    main()
