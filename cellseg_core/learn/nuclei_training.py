"""Training the nucleus U-Net (:mod:`.nuclei`) on a dataset with instances: PyTorch.

The seeds' U-Net study, as a library: a validation split carved from the training
images, class weights (the 1-px boundary class is rare), augmentation (flips, rot90,
scale, brightness, contrast, gamma, blur, noise), learning-rate decay on a validation
plateau, the best-validation checkpoint kept, early stopping, then the watershed
thresholds tuned on the validation images and the network exported to ONNX, which
:class:`~.nuclei.NucleusModel` runs without PyTorch.

By default training starts from the built-in model's weights (:data:`BUILTIN_STATE`,
fine-tuning); ``init=None`` trains from scratch. PyTorch and onnx are imported only
when a network is built or exported (the ``deep`` extra); everything that prepares
data (:func:`load_items`, :func:`sample_crop`, :func:`augmentation_preview`) is numpy.

``training/train_nuclei.py`` (the script that produced the shipped weights) and
``cellseg train --method unet-nuclei`` both call :func:`fit_nucleus_net`.
"""
from __future__ import annotations

import copy
import functools
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi
from skimage.transform import rescale, resize

from ..metrics import match_instances
from ..scale import median_diameter
from .nuclei import DECODE, FORMAT, FORMAT_VERSION, normalize_image, nucleus_targets, \
    probabilities_to_instances

__all__ = ["BUILTIN_STATE", "NucleusTrainingSettings", "network_class", "to_model_scale", "load_items", "split_validation", "sample_crop",
           "augment_intensity", "augmentation_preview", "TrainingTarget", "THREE_CLASSES",
           "fit_nucleus_net", "validate",
           "tune_thresholds", "export_onnx", "initial_settings", "onnx_metadata",
           "train_nucleus_model"]

#: The built-in model's PyTorch weights (``{"state_dict", "widths", "diameter"}``):
#: the starting point of fine-tuning.
BUILTIN_STATE = Path(__file__).resolve().parent.parent / "models" / "nuclei.pt"


@dataclass(frozen=True)
class NucleusTrainingSettings:
    """How to train the nucleus U-Net.

    Attributes
    ----------
    init : str, Path or None
        Starting weights: ``"builtin"`` (default: fine-tune the shipped model), a
        ``.pt`` file saved by training, or None (from scratch, random weights).
    epochs, steps, batch : int
        At most `epochs` epochs of `steps` optimiser steps on `batch` random crops.
    crop : int
        Crop side (px, at model scale); a multiple of the network's stride.
    lr : float
        Adam's learning rate, halved after `lr_patience` epochs without a better
        validation F1.
    lr_patience : int
        Epochs without a better validation F1 before the learning rate is halved.
    patience : int
        Stop after this many epochs without a better validation F1 (early stopping).
    val_fraction : float
        Part of the training images held out for validation (at least one image).
    class_weights : tuple of 3 floats
        Cross-entropy weights of background, interior and boundary.
    diameter : float
        Nucleus diameter (px) images are rescaled to; from the init file when
        fine-tuning.
    widths : tuple of int
        Channels per level (from scratch only; the init file's otherwise).
    minutes : float or None
        Stop after this much wall time.
    seed : int
    threads : int
        PyTorch CPU threads.
    """

    init: str | Path | None = "builtin"
    epochs: int = 30
    steps: int = 20
    batch: int = 8
    crop: int = 128
    lr: float = 5e-4
    lr_patience: int = 2
    patience: int = 5
    val_fraction: float = 0.15
    class_weights: tuple = (1.0, 1.0, 3.0)
    diameter: float = 20.0
    widths: tuple = (16, 32, 64, 128)
    minutes: float | None = None
    seed: int = 0
    threads: int = 2
    scale_range: tuple = field(default=(0.75, 1.33))

    def __post_init__(self):
        for name in ("epochs", "steps", "batch"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"`{name}` must be at least 1, got {getattr(self, name)}")
        if int(self.lr_patience) < 1:
            raise ValueError(f"`lr_patience` must be at least 1 epoch, got {self.lr_patience}")
        if int(self.patience) < 1:
            raise ValueError(f"`patience` must be at least 1 epoch, got {self.patience}")
        if not 0 < float(self.val_fraction) < 1:
            raise ValueError(f"`val_fraction` must be in (0, 1), got {self.val_fraction}")
        if not float(self.lr) > 0:
            raise ValueError(f"`lr` must be positive, got {self.lr}")
        if len(self.class_weights) != 3 or min(self.class_weights) <= 0:
            raise ValueError(f"`class_weights` must be 3 positive numbers, got "
                             f"{self.class_weights}")
        stride = 2 ** (len(self.widths) - 1)
        if int(self.crop) < 2 * stride or int(self.crop) % stride:
            raise ValueError(f"`crop` must be a multiple of {stride} of at least "
                             f"{2 * stride}, got {self.crop}")

    @property
    def init_path(self) -> Path | None:
        """The weights file to start from (None: from scratch)."""
        if self.init is None:
            return None
        return BUILTIN_STATE if str(self.init) == "builtin" else Path(self.init)


# --- the network (PyTorch, built on first use) -----------------------------------------------

@functools.cache
def network_class():
    """The ``NucleusUNet`` class (a ``torch.nn.Module``); imports PyTorch.

    ``NucleusUNet(widths=(16, 32, 64, 128), n_out=3, in_channels=3)``: a U-Net with
    ``len(widths) - 1`` poolings; input (B, 3, H, W) with H and W multiples of
    ``2 ** (len(widths) - 1)``; output (B, n_out, H, W) logits.
    """
    import torch
    from torch import nn

    def block(cin: int, cout: int) -> nn.Sequential:
        return nn.Sequential(
            nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
            nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True))

    class NucleusUNet(nn.Module):
        def __init__(self, widths=(16, 32, 64, 128), n_out: int = 3, in_channels: int = 3):
            super().__init__()
            self.widths = tuple(widths)
            self.down = nn.ModuleList()
            cin = in_channels
            for w in widths:
                self.down.append(block(cin, w))
                cin = w
            self.pool = nn.MaxPool2d(2)
            self.up = nn.ModuleList()
            self.dec = nn.ModuleList()
            for w_hi, w_lo in zip(widths[::-1][:-1], widths[::-1][1:]):
                self.up.append(nn.ConvTranspose2d(w_hi, w_lo, 2, stride=2))
                self.dec.append(block(2 * w_lo, w_lo))
            self.head = nn.Conv2d(widths[0], n_out, 1)

        def forward(self, x):
            skips = []
            for i, down in enumerate(self.down):
                x = down(x if i == 0 else self.pool(x))
                skips.append(x)
            x = skips.pop()
            for up, dec in zip(self.up, self.dec):
                x = dec(torch.cat([up(x), skips.pop()], 1))
            return self.head(x)

    NucleusUNet.__module__ = __name__
    NucleusUNet.__qualname__ = "NucleusUNet"
    return NucleusUNet


# --- data at model scale (numpy) ------------------------------------------------------------

def to_model_scale(image, labels, diameter: float, model_diameter: float):
    """Normalised RGB image and instances rescaled so nuclei are `model_diameter` across.

    Returns
    -------
    x : (M', N', 3) ndarray of float32
    labels : (M', N') ndarray of int32
    """
    x = normalize_image(image)
    if not np.isfinite(diameter) or diameter <= 0:
        return x, np.asarray(labels, np.int32)
    factor = model_diameter / diameter
    if abs(factor - 1) > 0.02:
        x = rescale(x, factor, order=1, channel_axis=-1, anti_aliasing=factor < 1,
                    preserve_range=True).astype(np.float32)
        labels = resize(labels, x.shape[:2], order=0, preserve_range=True,
                        anti_aliasing=False)
    return x, np.asarray(labels, np.int32)


def load_items(dataset, ids, model_diameter: float = 20.0) -> list[tuple]:
    """``(set name, id, x, labels)`` per item of `dataset` at model scale.

    Each image is rescaled by the median diameter of its own ground-truth nuclei.

    Raises
    ------
    ValueError
        When an item has no instance labels.
    """
    out = []
    for ident in ids:
        labels = dataset.instances(ident)
        if labels is None:
            raise ValueError(f"`ids`: item {ident!r} of {dataset.name} has no instance labels "
                             "(the nucleus model trains on instances)")
        x, lab = to_model_scale(dataset.image(ident), labels, median_diameter(labels),
                                model_diameter)
        out.append((dataset.name, ident, x, lab))
    return out


def split_validation(ids, fraction: float, rng=None) -> tuple[list, list]:
    """(train ids, validation ids): a seeded `fraction` (at least one) held out.

    Examples
    --------
    >>> split_validation(["a", "b", "c", "d"], 0.25, rng=0)
    (['a', 'b', 'd'], ['c'])
    """
    ids = list(ids)
    if len(ids) < 2:
        raise ValueError(f"`ids` must hold at least 2 items (one for validation), got "
                         f"{len(ids)}")
    rng = np.random.default_rng(rng)
    order = list(rng.permutation(len(ids)))
    n_val = min(len(ids) - 1, max(1, int(round(fraction * len(ids)))))
    val = sorted(order[:n_val])
    train = sorted(order[n_val:])
    return [ids[i] for i in train], [ids[i] for i in val]


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


def augment_intensity(x, rng):
    """Colour balance, gray, gamma, contrast, brightness, blur and noise, at random."""
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


def sample_crop(item, crop: int, scale_range=(0.75, 1.33), rng=None):
    """One augmented ``(x (3, crop, crop), target (crop, crop))`` pair from an item.

    Half the crops are centred near a nucleus; then rescale, rot90, flip and
    :func:`augment_intensity`. Targets are :func:`~.nuclei.nucleus_targets`.
    """
    rng = np.random.default_rng(rng)
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
        lc = resize(lc, (crop, crop), order=0, preserve_range=True,
                    anti_aliasing=False).astype(np.int32)
    k = int(rng.integers(4))
    xc, lc = np.rot90(xc, k), np.rot90(lc, k)
    if rng.random() < 0.5:
        xc, lc = xc[:, ::-1], lc[:, ::-1]
    xc = augment_intensity(np.ascontiguousarray(xc, np.float32), rng)
    return np.moveaxis(xc, -1, 0), nucleus_targets(np.ascontiguousarray(lc))


def augmentation_preview(items, n: int = 8, crop: int = 128, rng=0,
                         scale_range=(0.75, 1.33)) -> list[tuple[np.ndarray, np.ndarray]]:
    """`n` augmented training crops as the network sees them, to look at before training.

    Returns
    -------
    list of (image (crop, crop, 3) float32 in [0, 1], target (crop, crop) uint8)
        Target classes 0 background, 1 interior, 2 boundary.

    Examples
    --------
    >>> lab = np.zeros((40, 40), int); lab[10:20, 10:20] = 1
    >>> crops = augmentation_preview([("toy", "0", np.zeros((40, 40, 3), np.float32), lab)],
    ...                              n=2, crop=32)
    >>> len(crops), crops[0][0].shape, crops[0][1].dtype
    (2, (32, 32, 3), dtype('uint8'))
    """
    if not items:
        raise ValueError("`items` is empty: nothing to preview")
    rng = np.random.default_rng(rng)
    out = []
    for _ in range(int(n)):
        x, target = sample_crop(items[int(rng.integers(len(items)))], crop, scale_range, rng)
        out.append((np.clip(np.moveaxis(x, 0, -1), 0, 1), target))
    return out


# --- training (PyTorch) ---------------------------------------------------------------------

def _predict_torch(torch, net, x, multiple: int):
    """(M, N, 3) probabilities of a whole image at model scale."""
    m, n = x.shape[:2]
    pm, pn = (-m) % multiple, (-n) % multiple
    xp = np.pad(x, ((0, pm), (0, pn), (0, 0)), mode="symmetric")
    with torch.no_grad():
        logits = net(torch.from_numpy(np.moveaxis(xp, -1, 0)[None].copy()))
        prob = torch.softmax(logits, 1)[0].numpy()
    return np.moveaxis(prob, 0, -1)[:m, :n]


def validate(net, items, diameter: float = 20.0) -> tuple[float, dict]:
    """Mean per-set validation F1 at IoU 0.5 (default thresholds), and per set.

    Decoded as new files are (:data:`~.nuclei.DECODE`); `diameter` is the model's.
    """
    import torch

    multiple = 2 ** (len(net.widths) - 1)
    net.eval()
    per_set = {}
    for name, _, x, lab in items:
        inst = probabilities_to_instances(_predict_torch(torch, net, x, multiple),
                                          decode=DECODE["decode"], diameter=diameter)
        per_set.setdefault(name, []).append(match_instances(inst, lab)["f1"])
    net.train()
    scores = {k: float(np.mean(v)) for k, v in per_set.items()}
    return float(np.mean(list(scores.values()))), scores


def tune_thresholds(net, items, diameter: float = 20.0) -> dict:
    """Marker and foreground thresholds with the best mean validation F1 (per-set means),
    decoded as new files are (:data:`~.nuclei.DECODE`); `diameter` is the model's."""
    import torch

    multiple = 2 ** (len(net.widths) - 1)
    net.eval()
    probs = [(name, _predict_torch(torch, net, x, multiple), lab) for name, _, x, lab in items]
    best = (-1.0, 0.5, 0.5)
    for marker in (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9):
        for fg in (0.3, 0.4, 0.5, 0.6):
            per_set = {}
            for name, p, lab in probs:
                inst = probabilities_to_instances(p, marker_threshold=marker,
                                                  foreground_threshold=fg,
                                                  decode=DECODE["decode"], diameter=diameter)
                per_set.setdefault(name, []).append(match_instances(inst, lab)["f1"])
            score = float(np.mean([np.mean(v) for v in per_set.values()]))
            best = max(best, (score, marker, fg))
    return {"val_f1_tuned": round(best[0], 4), "marker_threshold": best[1],
            "foreground_threshold": best[2]}


def export_onnx(net, path, meta: dict) -> Path:
    """Write `net` as an ONNX file :class:`~.nuclei.NucleusModel` reads, with `meta`
    (marker/foreground thresholds, diameter, ...) in its metadata. Needs onnx."""
    import onnx
    import torch

    path = Path(path)
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
    return path


def _build(settings: NucleusTrainingSettings, n_out: int = 3):
    """(net, settings with the init file's widths and diameter)."""
    import torch

    init = settings.init_path
    if init is None:
        return network_class()(tuple(settings.widths), n_out=n_out), settings
    if not init.is_file():
        raise ValueError(f"`init`: no weights file at {init}")
    try:
        state = torch.load(init, map_location="cpu", weights_only=True)
        widths = tuple(int(w) for w in state["widths"])
        net = network_class()(widths, n_out=n_out)
        net.load_state_dict(state["state_dict"])
    except Exception as exc:  # torch raises many types for a bad file
        raise ValueError(f"`init`: {init.name} is not a nucleus network's weights "
                         f"({type(exc).__name__})") from None
    return net, replace(settings, widths=widths, diameter=float(state["diameter"]))


def _three_class_loss(out, classes: np.ndarray, settings: NucleusTrainingSettings):
    """Weighted cross-entropy of (B, 3, H, W) logits against the 3-class crops."""
    import torch

    weights = torch.tensor([float(w) for w in settings.class_weights])
    return torch.nn.functional.cross_entropy(
        out, torch.from_numpy(classes.astype(np.int64)), weight=weights)


@dataclass(frozen=True)
class TrainingTarget:
    """What a nucleus network learns, for :func:`fit_nucleus_net`.

    Attributes
    ----------
    n_out : int
        Output channels of the network.
    loss : callable
        ``loss(out, classes, settings)``: a scalar torch tensor from the (B, n_out,
        H, W) outputs and the (B, H, W) 3-class crops (0 background, 1 interior,
        2 boundary: :func:`~.nuclei.nucleus_targets`) they were drawn with.
    validate : callable
        ``validate(net, val_items, diameter)``: (mean per-set F1, per-set F1).
    """

    n_out: int
    loss: object
    validate: object


#: The built-in model's target: background / interior / boundary (class weights from
#: the settings), validated by decoding as new model files do.
THREE_CLASSES = TrainingTarget(n_out=3, loss=_three_class_loss, validate=validate)


def fit_nucleus_net(train_items, val_items, settings: NucleusTrainingSettings | None = None,
                    *, progress=None, checkpoint=None, target: TrainingTarget = THREE_CLASSES):
    """Train the nucleus U-Net; returns the best-validation network and the log.

    Parameters
    ----------
    train_items, val_items : list of (set name, id, x, labels)
        From :func:`load_items` at ``settings.diameter`` (the init file's diameter when
        fine-tuning: read it with :func:`initial_settings` first). Crops are drawn
        from every set equally, and within a set in proportion to image area; the
        validation score is the mean over sets of the mean per-image F1.
    settings : NucleusTrainingSettings
    progress : callable, optional
        ``progress(event)`` with a dict: ``{"kind": "step", "epoch", "step", "steps",
        "loss"}`` after each step and ``{"kind": "epoch", "epoch", "loss", "val_f1",
        "val_f1_per_set", "lr", "seconds", "best_epoch"}`` after each epoch. A true
        return value stops training there (the best network so far is kept).
    checkpoint : path, optional
        Where to save the best network (``{"state_dict", "widths", "diameter"}``).
    target : TrainingTarget
        What the network learns and how it is validated; :data:`THREE_CLASSES` (the
        built-in model's) unless an experiment gives another.

    Returns
    -------
    net : torch.nn.Module
        With the best validation weights, in eval mode.
    log : dict
        ``settings``, ``epochs`` (one record per epoch), ``best`` ({epoch, val_f1}),
        ``stopped`` ("early stop", "time limit", "stopped", "epochs"), ``wall_seconds``.
    """
    import torch

    settings = settings or NucleusTrainingSettings()
    if not train_items or not val_items:
        raise ValueError("`train_items` and `val_items` must both be non-empty")
    start = time.time()
    torch.set_num_threads(int(settings.threads))
    torch.manual_seed(int(settings.seed))
    rng = np.random.default_rng(settings.seed)
    net, settings = _build(settings, target.n_out)
    by_set = {}
    for item in train_items:
        by_set.setdefault(item[0], []).append(item)
    names = sorted(by_set)
    area = {k: np.array([it[3].size for it in v], float) for k, v in by_set.items()}
    opt = torch.optim.Adam(net.parameters(), lr=float(settings.lr))
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="max", factor=0.5,
                                                       patience=int(settings.lr_patience))
    log = {"settings": {k: (str(v) if isinstance(v, Path) else v)
                        for k, v in asdict(settings).items()},
           "epochs": [], "best": {"epoch": -1, "val_f1": -1.0}, "stopped": "epochs"}
    best_state, best, best_epoch = None, -1.0, -1
    net.train()
    for epoch in range(int(settings.epochs)):
        losses, stop = [], False
        for step in range(int(settings.steps)):
            batch = []
            for _ in range(int(settings.batch)):
                name = names[rng.integers(len(names))]
                k = rng.choice(len(by_set[name]), p=area[name] / area[name].sum())
                batch.append(sample_crop(by_set[name][k], int(settings.crop),
                                         settings.scale_range, rng))
            xb = torch.from_numpy(np.stack([b[0] for b in batch]))
            loss = target.loss(net(xb), np.stack([b[1] for b in batch]), settings)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
            if progress is not None and progress({"kind": "step", "epoch": epoch,
                                                  "step": step + 1, "steps": settings.steps,
                                                  "loss": losses[-1]}):
                stop = True
                break
        score, per_set = target.validate(net, val_items, settings.diameter)
        sched.step(score)
        if score > best:
            best, best_epoch = score, epoch
            best_state = copy.deepcopy(net.state_dict())
            if checkpoint is not None:
                torch.save({"state_dict": best_state, "widths": tuple(settings.widths),
                            "diameter": settings.diameter}, checkpoint)
        record = {"epoch": epoch, "loss": float(np.mean(losses)), "val_f1": score,
                  "val_f1_per_set": per_set, "lr": opt.param_groups[0]["lr"],
                  "seconds": round(time.time() - start, 1), "best_epoch": best_epoch}
        log["epochs"].append(record)
        log["best"] = {"epoch": best_epoch, "val_f1": best}
        if progress is not None and progress({"kind": "epoch", **record}):
            stop = True
        if stop:
            log["stopped"] = "stopped"
            break
        if epoch - best_epoch >= int(settings.patience):
            log["stopped"] = "early stop"
            break
        if settings.minutes and time.time() - start > settings.minutes * 60:
            log["stopped"] = "time limit"
            break
    net.load_state_dict(best_state)
    net.eval()
    log["wall_seconds"] = round(time.time() - start, 1)
    return net, log


def initial_settings(settings: NucleusTrainingSettings) -> NucleusTrainingSettings:
    """`settings` with the widths and diameter of its init file (fine-tuning); as is
    from scratch. Needs PyTorch when there is an init file."""
    if settings.init_path is None:
        return settings
    return _build(settings)[1]


def onnx_metadata(settings: NucleusTrainingSettings, log: dict, tuned: dict,
                  trained_on: str) -> dict:
    """The metadata :class:`~.nuclei.NucleusModel` reads from an exported file."""
    return {"marker_threshold": tuned["marker_threshold"],
            "foreground_threshold": tuned["foreground_threshold"],
            "cellseg_format": FORMAT, "cellseg_format_version": FORMAT_VERSION, **DECODE,
            "diameter": settings.diameter, "classes": "background,interior,boundary",
            "normalize_percentiles": "1,99.8", "multiple": 2 ** (len(settings.widths) - 1),
            "seed": settings.seed, "best_epoch": log["best"]["epoch"],
            "val_f1": round(log["best"]["val_f1"], 4), "trained_on": trained_on,
            "init": "builtin" if str(settings.init) == "builtin" else
                    ("scratch" if settings.init is None else Path(settings.init).name)}


def train_nucleus_model(dataset, ids, out, settings: NucleusTrainingSettings | None = None,
                        *, progress=None, checkpoint=None) -> dict:
    """Fine-tune (or train from scratch) the nucleus model on a dataset; write ONNX.

    A seeded ``settings.val_fraction`` of `ids` is held out for validation; the rest
    is trained on (:func:`fit_nucleus_net`), the thresholds are tuned on the
    validation images and the network is written to `out` (an ``.onnx`` file for
    ``--model`` and :class:`~.nuclei.NucleusModel`).

    Parameters
    ----------
    dataset : Dataset
        With instance labels (``dataset.instances(id)``).
    ids : list of str
    out : path
        The ONNX file to write.
    settings : NucleusTrainingSettings
    progress : callable, optional
        As :func:`fit_nucleus_net`; also ``{"kind": "load", "done", "total"}`` while
        images are read and ``{"kind": "export"}`` before the export.
    checkpoint : path, optional
        Also save the best network's PyTorch weights there (``init`` of a later run).

    Returns
    -------
    dict
        The training log plus ``tuned`` thresholds, ``train_ids``, ``val_ids``, ``out``.
    """
    settings = initial_settings(settings or NucleusTrainingSettings())
    train_ids, val_ids = split_validation(ids, settings.val_fraction, rng=settings.seed)
    items = {}
    for k, ident in enumerate([*train_ids, *val_ids]):
        if progress is not None:
            progress({"kind": "load", "done": k, "total": len(train_ids) + len(val_ids)})
        items[ident] = load_items(dataset, [ident], settings.diameter)[0]
    net, log = fit_nucleus_net([items[i] for i in train_ids], [items[i] for i in val_ids],
                               settings, progress=progress, checkpoint=checkpoint)
    if progress is not None:
        progress({"kind": "export"})
    tuned = tune_thresholds(net, [items[i] for i in val_ids], settings.diameter)
    export_onnx(net, out, onnx_metadata(settings, log, tuned, dataset.name))
    return {**log, "tuned": tuned, "train_ids": train_ids, "val_ids": val_ids, "out": str(out)}
