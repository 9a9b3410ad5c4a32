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
The network, augmentation and training loop are the package's
(``cellseg_core.learn.nuclei_training``, also behind ``cellseg train --method unet-nuclei``);
this script only reads several sets at once and writes the run's record. The shipped
weights' PyTorch state is ``cellseg_core/models/nuclei.pt`` (``--init`` for fine-tuning).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import tifffile

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from cellseg_core.io import read_image  # noqa: E402
from cellseg_core.learn.nuclei_training import (  # noqa: E402
    NucleusTrainingSettings, export_onnx, fit_nucleus_net, network_class, onnx_metadata,
    to_model_scale, tune_thresholds)
from cellseg_core.scale import median_diameter  # noqa: E402


def load_sets(folders, model_diameter, val_fraction, rng):
    """{'train': [...], 'val': [...]} of (set name, id, x, labels) at model scale."""
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


def add_training_arguments(ap, *, minutes: float | None = None, threads: int = 2):
    """The training options of this script and of the experiments in this folder."""
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
    ap.add_argument("--lr-patience", type=int, default=2,
                    help="epochs without gain before the learning rate is halved")
    ap.add_argument("--minutes", type=float, default=minutes, help="stop training after this")
    ap.add_argument("--threads", type=int, default=threads)
    return ap


def settings_from(args, init=None) -> NucleusTrainingSettings:
    """:class:`NucleusTrainingSettings` from :func:`add_training_arguments`' options."""
    return NucleusTrainingSettings(
        init=init, epochs=args.epochs, steps=args.steps, batch=args.batch, crop=args.crop,
        lr=args.lr, lr_patience=args.lr_patience, patience=args.patience,
        val_fraction=args.val_fraction, class_weights=(1.0, 1.0, args.boundary_weight),
        diameter=args.diameter, widths=tuple(int(w) for w in args.widths.split(",")),
        minutes=args.minutes, seed=args.seed, threads=args.threads)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("data", nargs="+", help="dataset folders (images/, labels/, split.json)")
    ap.add_argument("--out", default="training/runs/nuclei")
    add_training_arguments(ap)
    ap.add_argument("--init", default=None, help="start from a best.pt state (fine-tuning)")
    ap.add_argument("--export-only", action="store_true",
                    help="no training: tune thresholds for --init on validation and export")
    args = ap.parse_args(argv)

    import torch

    start = time.time()
    rng = np.random.default_rng(args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    settings = settings_from(args, init=args.init)
    widths = settings.widths
    data = load_sets(args.data, args.diameter, args.val_fraction, rng)
    print(f"loaded {len(data['train'])} train / {len(data['val'])} val images "
          f"in {time.time() - start:.0f} s", flush=True)
    log = {"settings": {**vars(args), "widths": widths,
                        "train_ids": [(n, i) for n, i, _, _ in data["train"]],
                        "val_ids": [(n, i) for n, i, _, _ in data["val"]]},
           "epochs": []}

    def report(event):
        if event["kind"] == "epoch":
            print(f"epoch {event['epoch']} loss {event['loss']:.4f} val F1 {event['val_f1']:.3f} "
                  f"{ {k: round(v, 3) for k, v in event['val_f1_per_set'].items()} } "
                  f"lr {event['lr']:.2g} {(time.time() - start) / 60:.1f} min", flush=True)

    if args.export_only:  # no training: the --init network, its thresholds tuned again
        torch.save(torch.load(args.init, map_location="cpu"), out / "best.pt")
        net = network_class()(widths)
        net.load_state_dict(torch.load(args.init, map_location="cpu")["state_dict"])
        net.eval()
        fit = {"best": {"epoch": -1, "val_f1": -1.0}}
        init_log = Path(args.init).with_name("log.json")
        if init_log.is_file():  # keep the training run's record of its best epoch
            previous = json.loads(init_log.read_text())
            fit["best"] = previous["best"]
            log["trained_by"] = {k: previous.get(k) for k in ("settings", "epochs", "best",
                                                               "wall_seconds")}
    else:
        net, fit = fit_nucleus_net(data["train"], data["val"], settings, progress=report,
                                   checkpoint=out / "best.pt")
        log.update({k: fit[k] for k in ("epochs", "best", "stopped")})
        print(fit["stopped"], flush=True)
    tuned = tune_thresholds(net, data["val"], settings.diameter)
    log["tuned"] = tuned
    print(f"thresholds on validation: {tuned}", flush=True)
    meta = onnx_metadata(settings, fit, tuned, ",".join(Path(d).name for d in args.data))
    meta.pop("init")
    export_onnx(net, out / "nuclei.onnx", meta)
    log["wall_seconds"] = round(time.time() - start, 1)
    (out / "log.json").write_text(json.dumps(log, indent=1))
    print(f"done in {log['wall_seconds'] / 60:.1f} min; best epoch {fit['best']['epoch']} "
          f"val F1 {fit['best']['val_f1']:.3f}")

if __name__ == "__main__":
    main()
