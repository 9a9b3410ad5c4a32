"""``cellseg train DATASET --method unet-nuclei``: fine-tune the built-in nucleus model
(or train it from scratch) on a dataset with instance labels and write an ONNX file
for ``--model`` (:mod:`cellseg_core.learn.nuclei_training`)."""
from __future__ import annotations

import sys

from ..evaluation import compare_nuclei
from ..evaluation.nuclei import SUMMARY_COLUMNS
from ..learn import torch_available
from ..learn.nuclei_training import NucleusTrainingSettings, train_nucleus_model
from ..methods import load_method
from ._common import EXIT_OK, say

__all__ = ["add_arguments", "run"]

#: Epochs when --epochs is not given (early stopping usually ends fine-tuning sooner).
DEFAULT_EPOCHS = 30


def add_arguments(parser) -> None:
    """The options only ``--method unet-nuclei`` reads."""
    group = parser.add_argument_group(
        "--method unet-nuclei (the built-in nucleus model; needs the deep extra)")
    group.add_argument("--from-scratch", action="store_true",
                       help="random initial weights instead of fine-tuning the built-in model")
    group.add_argument("--init", metavar="FILE.pt",
                       help="start from these PyTorch weights instead of the built-in model's")
    group.add_argument("--steps", type=int, default=20, metavar="N",
                       help="optimiser steps per epoch (default 20, batches of 8 crops)")
    group.add_argument("--lr", type=float, default=None,
                       help="learning rate (default 5e-4 fine-tuning, 2e-3 from scratch); "
                            "halved after --lr-patience epochs without a better validation F1")
    group.add_argument("--lr-patience", type=int, default=2, metavar="N",
                       help="epochs without a better validation F1 before the learning rate "
                            "is halved (default 2; the shipped weights used 4, then 3)")
    group.add_argument("--patience", type=int, default=5, metavar="N",
                       help="stop after N epochs without a better validation F1 (default 5)")
    group.add_argument("--val-fraction", type=float, default=0.15, metavar="F",
                       help="part of the training images held out for validation "
                            "(default 0.15, at least one image)")
    group.add_argument("--boundary-weight", type=float, default=3.0, metavar="W",
                       help="class weight of the nucleus boundary in the loss (default 3)")
    group.add_argument("--minutes", type=float, default=None,
                       help="stop training after this much wall time")


def settings_from_args(args) -> NucleusTrainingSettings:
    """The training settings the options spell."""
    scratch = getattr(args, "from_scratch", False)
    if scratch and getattr(args, "init", None):
        raise ValueError("give --from-scratch or --init, not both")
    init = None if scratch else (getattr(args, "init", None) or "builtin")
    lr = args.lr if getattr(args, "lr", None) is not None else (2e-3 if scratch else 5e-4)
    return NucleusTrainingSettings(
        init=init, epochs=args.epochs or DEFAULT_EPOCHS, steps=args.steps, lr=lr,
        lr_patience=getattr(args, "lr_patience", 2), patience=args.patience,
        val_fraction=args.val_fraction,
        class_weights=(1.0, 1.0, args.boundary_weight), minutes=args.minutes,
        seed=args.seed)


def run(args, dataset, ids) -> int:
    """Train, write ``--out`` (ONNX), then score it and the built-in model on the test
    split (F1@0.5, DSB AP, precision, recall, count error; stdout)."""
    if not str(args.out).lower().endswith(".onnx"):
        raise ValueError(f"--out must name an .onnx file for --method unet-nuclei, got "
                         f"{args.out}")
    if not torch_available():
        raise ValueError("--method unet-nuclei needs PyTorch and onnx (the deep extra): "
                         "pip install .[deep]")
    settings = settings_from_args(args)
    say(f"{'training from scratch' if settings.init is None else 'fine-tuning'} the nucleus "
        f"model on {len(ids)} image(s) of {dataset.name}")

    def progress(event):
        if event["kind"] == "epoch":
            say(f"  epoch {event['epoch']:3d}  loss {event['loss']:.4f}  validation F1 "
                f"{event['val_f1']:.3f}  lr {event['lr']:.2g}  {event['seconds']:.0f} s")
        elif event["kind"] == "export":
            say("  tuning the watershed thresholds on the validation images, exporting…")

    log = train_nucleus_model(dataset, ids, args.out, settings, progress=progress)
    say(f"{log['stopped']} after {len(log['epochs'])} epoch(s); best validation F1 "
        f"{log['best']['val_f1']:.3f} (epoch {log['best']['epoch']}; {len(log['val_ids'])} "
        f"validation image(s)); saved to {args.out} in {log['wall_seconds']:.0f} s; use it "
        f"with: cellseg segment ... --model {args.out}")
    test = list((dataset.split or {}).get("test") or [])
    if test and args.split != "test":
        say(f"scoring on the test split ({len(test)} images)…")
        methods = {args.out: load_method(model=args.out), "builtin:nuclei":
                   load_method("builtin:nuclei")}
        table = compare_nuclei(dataset, test, methods).summary
        cols = ["method", "images", *SUMMARY_COLUMNS]
        sys.stdout.write(table[cols].to_string(index=False, float_format=lambda v: f"{v:.3f}")
                         + "\n")
    return EXIT_OK
