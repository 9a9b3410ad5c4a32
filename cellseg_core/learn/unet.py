"""A small U-Net (the course's Lab 06 architecture), an optional extra that needs PyTorch.

Install it with ``pip install .[deep]``. Everything else in :mod:`cellseg_core` works
without PyTorch: this module imports it only when a U-Net is built, trained or loaded,
and says ``install the deep extra: pip install .[deep]`` when it is missing.

Architecture: two encoder levels (32 and 64 channels, each two 3x3 convolutions with
BatchNorm and ReLU, then 2x2 max-pooling), a 128-channel bottleneck, two decoder levels
(transposed convolution, skip connection, two convolutions), a 1x1 convolution to the
three classes. Loss: cross-entropy + (1 - mean soft Dice over classes). Augmentation:
random flips and 90-degree rotations. The network works at a reduced scale
(``scale=0.25`` by default: VocEd images are upsampled about 4x from the microscope),
on targets that are the class fractions of each working-scale pixel; probabilities are
upsampled back, optionally averaged over the 8 flips/rotations (test-time
augmentation), then argmax and the engine's clean-up, as for
:class:`~cellseg_core.learn.PixelClassifier`.

Model files use the container of :mod:`cellseg_core.learn.modelfile` (magic line, JSON header
with kind ``UNetModel``, payload checksum); the payload is a ``torch.save`` state dict
read back with ``torch.load(weights_only=True)`` (tensors only, no arbitrary pickle).
:func:`cellseg_core.learn.load_model` recognises these files.
"""
from __future__ import annotations

import importlib.util
import io as _io
import time

import numpy as np
from scipy import ndimage as ndi

from ..io import as_float_image
from ..params import CleanupParams, Params
from ..pipeline import Segmentation
from .base import DEFAULT_CLEANUP, _check_pairs, _learned_segmentation
from .features import _resize, _working_shape
from .modelfile import ModelFile, _checked_payload, _container, read_model_file
from .progress import stage_message

__all__ = ["KIND", "INSTALL_HINT", "MissingDeepExtra", "torch_available", "UNetModel"]

#: The ``kind`` of U-Net model files.
KIND = "UNetModel"
#: What to do when PyTorch is missing.
INSTALL_HINT = "install the deep extra: pip install .[deep]"


class MissingDeepExtra(ImportError, ValueError):
    """PyTorch is not installed (an ImportError, and a ValueError for callers that
    report bad model files as ValueError: the CLI and the app's upload)."""


def torch_available() -> bool:
    """Whether PyTorch can be imported (without importing it when it is absent)."""
    try:
        return importlib.util.find_spec("torch") is not None
    except (ImportError, ValueError):
        return False


def _torch():
    try:
        import torch
    except ImportError:
        raise MissingDeepExtra(f"the U-Net needs PyTorch, which is not installed; "
                               f"{INSTALL_HINT}") from None
    return torch


def _build_network(in_channels: int = 3, n_classes: int = 3, widths=(32, 64, 128)):
    """The Lab 06 U-Net as a ``torch.nn.Module``."""
    torch = _torch()
    nn = torch.nn

    def block(cin, cout):
        return nn.Sequential(
            nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
            nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True))

    w1, w2, w3 = widths

    class UNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.enc1, self.enc2 = block(in_channels, w1), block(w1, w2)
            self.pool = nn.MaxPool2d(2)
            self.bottleneck = block(w2, w3)
            self.up2, self.dec2 = nn.ConvTranspose2d(w3, w2, 2, stride=2), block(2 * w2, w2)
            self.up1, self.dec1 = nn.ConvTranspose2d(w2, w1, 2, stride=2), block(2 * w1, w1)
            self.head = nn.Conv2d(w1, n_classes, 1)

        def forward(self, x):
            e1 = self.enc1(x)
            e2 = self.enc2(self.pool(e1))
            b = self.bottleneck(self.pool(e2))
            d2 = self.dec2(torch.cat([self.up2(b), e2], 1))
            d1 = self.dec1(torch.cat([self.up1(d2), e1], 1))
            return self.head(d1)

    return UNet()


def _rgb(image: np.ndarray) -> np.ndarray:
    image = as_float_image(image)
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=-1)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"`image` must be (M, N) or (M, N, 3), got shape {image.shape}")
    return image


def _pad4(array: np.ndarray) -> tuple:
    """Pad the first two axes (edge mode) to multiples of 4; return (padded, (M, N))."""
    m, n = array.shape[:2]
    pm, pn = (-m) % 4, (-n) % 4
    if pm or pn:
        array = np.pad(array, ((0, pm), (0, pn)) + ((0, 0),) * (array.ndim - 2), mode="edge")
    return array, (m, n)


def _augment(torch, x, y, rng: np.random.Generator):
    """Random flips / 90-degree rotations, one per sample, applied to input and target."""
    xs, ys = [], []
    for k in range(x.shape[0]):
        xi, yi = x[k], y[k]
        turns = int(rng.integers(4))
        if turns:
            xi, yi = torch.rot90(xi, turns, (1, 2)), torch.rot90(yi, turns, (1, 2))
        if rng.random() < 0.5:
            xi, yi = torch.flip(xi, (2,)), torch.flip(yi, (2,))
        xs.append(xi)
        ys.append(yi)
    return torch.stack(xs), torch.stack(ys)


class UNetModel(ModelFile):
    """A small U-Net segmenter (background / cytoplasm / nucleus) with ``.segment``.

    Parameters
    ----------
    scale : float
        Working scale (0 < scale <= 1); 0.25 by default.
    epochs : int
        Passes over the training images.
    batch_size : int
    learning_rate : float
        Adam's learning rate (cosine-annealed to 5 % of it over the epochs).
    tta : bool
        Average the probabilities over the 8 flips / rotations at prediction.
    probability_sigma : float
        Gaussian blur of the upsampled probabilities (full-scale pixels).
    cleanup : CleanupParams, optional
        The engine's clean-up after the argmax (default: learn.DEFAULT_CLEANUP).
    n_threads : int
        PyTorch threads (at most 2 on the course laptop).
    max_seconds : float, optional
        Stop training after the epoch that crosses this wall-clock budget.
    """

    kind = KIND

    def __init__(self, *, scale: float = 0.25, epochs: int = 60, batch_size: int = 16,
                 learning_rate: float = 2e-3, tta: bool = True, probability_sigma: float = 1.0,
                 cleanup: CleanupParams | None = None, n_threads: int = 2,
                 max_seconds: float | None = None):
        if not 0 < scale <= 1:
            raise ValueError(f"`scale` must be in (0, 1], got {scale!r}")
        if epochs < 1:
            raise ValueError(f"`epochs` must be >= 1, got {epochs!r}")
        if batch_size < 1:
            raise ValueError(f"`batch_size` must be >= 1, got {batch_size!r}")
        if not learning_rate > 0:
            raise ValueError(f"`learning_rate` must be > 0, got {learning_rate!r}")
        if not probability_sigma >= 0:
            raise ValueError(f"`probability_sigma` must be >= 0, got {probability_sigma!r}")
        self.scale = float(scale)
        self.epochs = int(epochs)
        self.batch_size = int(batch_size)
        self.learning_rate = float(learning_rate)
        self.tta = bool(tta)
        self.probability_sigma = float(probability_sigma)
        self.cleanup = DEFAULT_CLEANUP if cleanup is None else cleanup
        self.n_threads = int(n_threads)
        self.max_seconds = max_seconds
        self.net_ = None
        self.mean_ = self.std_ = None
        self.fit_seconds_ = None
        self.epochs_run_ = None
        _torch()  # fail early, with the install hint

    def __repr__(self) -> str:
        state = "fitted" if self.net_ is not None else "not fitted"
        return f"UNetModel(scale={self.scale}, epochs={self.epochs}, {state})"

    @property
    def config(self) -> dict:
        """The constructor's arguments as JSON types (stored in model files)."""
        return {"scale": self.scale, "epochs": self.epochs, "batch_size": self.batch_size,
                "learning_rate": self.learning_rate, "tta": self.tta,
                "probability_sigma": self.probability_sigma}

    # --- data ----------------------------------------------------------------------------
    def _small(self, image: np.ndarray) -> np.ndarray:
        image = _rgb(image)
        return _resize(image, _working_shape(image.shape, self.scale))

    def _targets(self, mask: np.ndarray, shape) -> np.ndarray:
        """Class fractions (M', N', 3) of each working-scale pixel."""
        onehot = (np.asarray(mask)[..., None] == np.arange(3)).astype(np.float32)
        small = np.clip(_resize(onehot, shape), 0, None)
        return small / np.maximum(small.sum(-1, keepdims=True), 1e-6)

    # --- training ------------------------------------------------------------------------
    def fit(self, images, masks, *, rng=None, progress=None) -> "UNetModel":
        """Train on `images` with class masks `masks` (0/1/2), all of one shape.

        Parameters
        ----------
        images : sequence of (M, N[, 3]) ndarray
        masks : sequence of (M, N) ndarray of uint8
        rng : int, optional
            Seeds the weights, the batch order and the augmentation.
        progress : callable, optional
            ``progress(fraction, message)`` once per epoch.
        """
        torch = _torch()
        start = time.perf_counter()
        images, masks = _check_pairs(images, masks)
        smalls = [self._small(im) for im in images]
        shapes = {s.shape for s in smalls}
        if len(shapes) != 1:
            raise ValueError(f"`images` must all have one shape for the U-Net, got {shapes}")
        if any(np.any(np.asarray(m) > 2) for m in masks):
            raise ValueError("`masks` must hold classes 0, 1, 2 only (no unlabelled pixels: "
                             "the U-Net needs full masks)")
        x = np.stack(smalls)
        y = np.stack([self._targets(m, x.shape[1:3]) for m in masks])
        x, _ = _pad4(x.transpose(1, 2, 0, 3))
        y, _ = _pad4(y.transpose(1, 2, 0, 3))
        x, y = x.transpose(2, 0, 1, 3), y.transpose(2, 0, 1, 3)
        self.mean_ = x.reshape(-1, 3).mean(0).astype(np.float32)
        self.std_ = np.maximum(x.reshape(-1, 3).std(0), 1e-6).astype(np.float32)
        gen = np.random.default_rng(rng)
        torch.manual_seed(int(gen.integers(2**31 - 1)))
        old_threads = torch.get_num_threads()
        torch.set_num_threads(max(1, min(self.n_threads, 2)))
        try:
            xt = torch.from_numpy(((x - self.mean_) / self.std_).transpose(0, 3, 1, 2).copy())
            yt = torch.from_numpy(y.transpose(0, 3, 1, 2).copy())
            net = _build_network()
            opt = torch.optim.Adam(net.parameters(), lr=self.learning_rate)
            sched = torch.optim.lr_scheduler.CosineAnnealingLR(
                opt, self.epochs, eta_min=0.05 * self.learning_rate)
            net.train()
            n = len(xt)
            epochs_run = 0
            for epoch in range(self.epochs):
                order = gen.permutation(n)
                for b in range(0, n, self.batch_size):
                    idx = torch.from_numpy(order[b:b + self.batch_size])
                    if len(idx) < 2:  # BatchNorm needs two samples
                        continue
                    xb, yb = _augment(torch, xt[idx], yt[idx], gen)
                    logits = net(xb)
                    logp = torch.log_softmax(logits, 1)
                    ce = -(yb * logp).sum(1).mean()
                    p = logp.exp()
                    inter = (p * yb).sum((0, 2, 3))
                    dice = (2 * inter + 1) / (p.sum((0, 2, 3)) + yb.sum((0, 2, 3)) + 1)
                    loss = ce + (1 - dice.mean())
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
                sched.step()
                epochs_run = epoch + 1
                if progress is not None:
                    progress(epochs_run / self.epochs,
                             stage_message("training the U-Net", epochs_run, self.epochs,
                                           "epochs", time.perf_counter() - start)
                             + f" (loss {float(loss.detach()):.3f})")
                if self.max_seconds is not None and time.perf_counter() - start > self.max_seconds:
                    break
            net.eval()
        finally:
            torch.set_num_threads(old_threads)
        self.net_ = net
        self.epochs_run_ = epochs_run
        self.fit_seconds_ = time.perf_counter() - start
        if progress is not None:
            progress(1.0, "fitted")
        return self

    # --- prediction ----------------------------------------------------------------------
    def _check_fitted(self):
        if self.net_ is None:
            raise ValueError("this UNetModel is not fitted: call fit() or load_model()")

    def predict_small(self, image: np.ndarray) -> np.ndarray:
        """Class probabilities (M', N', 3) at the working scale."""
        self._check_fitted()
        torch = _torch()
        small = self._small(image)
        padded, (m, n) = _pad4((small - self.mean_) / self.std_)
        x = torch.from_numpy(np.ascontiguousarray(padded.transpose(2, 0, 1)[None]))
        old_threads = torch.get_num_threads()
        torch.set_num_threads(max(1, min(self.n_threads, 2)))
        try:
            with torch.no_grad():
                if self.tta:
                    views = [torch.rot90(x, k, (2, 3)) for k in range(4)]
                    views += [torch.flip(v, (3,)) for v in views]
                    if x.shape[2] == x.shape[3]:  # one batch of the 8 views
                        p = list(torch.softmax(self.net_(torch.cat(views)), 1).split(1))
                    else:  # rotated views of a non-square image differ in shape
                        p = [torch.softmax(self.net_(v), 1) for v in views]
                    out = sum(torch.rot90(p[k], -k, (2, 3)) for k in range(4))
                    out = out + sum(torch.rot90(torch.flip(p[4 + k], (3,)), -k, (2, 3))
                                    for k in range(4))
                    p = out / 8
                else:
                    p = torch.softmax(self.net_(x), 1)
        finally:
            torch.set_num_threads(old_threads)
        return p[0].numpy().transpose(1, 2, 0)[:m, :n].astype(np.float32)

    def predict_proba(self, image: np.ndarray) -> np.ndarray:
        """Class probabilities (M, N, 3) at full scale (upsampled, blurred, normalised)."""
        image = _rgb(image)
        full = _resize(self.predict_small(image), image.shape[:2])
        if self.probability_sigma > 0:
            full = ndi.gaussian_filter(full, (self.probability_sigma, self.probability_sigma, 0))
        full = np.clip(full, 0, None)
        return full / np.maximum(full.sum(-1, keepdims=True), 1e-12)

    def segment(self, image: np.ndarray) -> Segmentation:
        """Segment like :func:`cellseg_core.segment` (see PixelClassifier.segment)."""
        proba = self.predict_proba(image)
        raw = proba.argmax(-1).astype(np.uint8)
        return _learned_segmentation(proba, raw, self.cleanup, self.kind)

    # --- files ---------------------------------------------------------------------------
    def to_bytes(self) -> bytes:
        """One model file: learn's container, a torch state dict as payload."""
        self._check_fitted()
        torch = _torch()
        buffer = _io.BytesIO()
        torch.save({k: v.detach().clone() for k, v in self.net_.state_dict().items()}, buffer)
        payload = buffer.getvalue()
        return _container(KIND, payload, {
            "torch_version": torch.__version__, "config": self.config,
            "cleanup": Params(cleanup=self.cleanup).to_dict()["cleanup"],
            "mean": self.mean_.tolist(), "std": self.std_.tolist(),
            "fit_seconds": self.fit_seconds_, "epochs_run": self.epochs_run_})

    @classmethod
    def load(cls, path) -> "UNetModel":
        """Read a file written by :meth:`save`; ValueError for anything else."""
        header, payload, name = read_model_file(path)
        if header.get("kind") != cls.kind:
            raise ValueError(f"{path}: holds a {header.get('kind')}, not a {cls.__name__}")
        return _load_unet(header, payload, name)


def _load_unet(header: dict, payload: bytes, name: str, *,
               trust_pickle: bool = False) -> UNetModel:
    """Build a :class:`UNetModel` from a file's header and payload (called by
    :func:`cellseg_core.learn.load_model` once the container is checked; a state dict
    holds no pickle, so `trust_pickle` changes nothing)."""
    payload = _checked_payload(header, payload, name)
    torch = _torch()
    try:
        state = torch.load(_io.BytesIO(payload), weights_only=True, map_location="cpu")
        model = UNetModel(cleanup=Params.from_dict({"cleanup": header["cleanup"]}).cleanup,
                          **header["config"])
        net = _build_network()
        net.load_state_dict(state)
        net.eval()
        model.mean_ = np.asarray(header["mean"], np.float32).reshape(3)
        model.std_ = np.asarray(header["std"], np.float32).reshape(3)
    except (KeyError, TypeError, RuntimeError, ValueError, EOFError) as err:
        if isinstance(err, MissingDeepExtra):
            raise
        raise ValueError(f"{name}: corrupted U-Net model file ({err})") from None
    except Exception as err:  # torch's weights-only unpickler raises its own errors
        raise ValueError(f"{name}: corrupted U-Net model file ({err})") from None
    model.net_ = net
    model.fit_seconds_ = header.get("fit_seconds")
    model.epochs_run_ = header.get("epochs_run")
    return model
