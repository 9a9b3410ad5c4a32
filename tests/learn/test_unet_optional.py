"""The U-Net is optional: cellseg_core and scikit-learn model files never import PyTorch,
and a U-Net file without PyTorch is refused with the install hint (no torch needed)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # starts interpreters that import the core: run by CI, not the quick loop

REPO = Path(__file__).resolve().parents[2]

_BLOCK_TORCH = """
import sys
class _NoTorch:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ImportError("No module named 'torch' (blocked by the test)")
sys.meta_path.insert(0, _NoTorch())
"""


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                          text=True, timeout=120)


def test_core_and_pixel_classifier_files_never_import_torch(tmp_path):
    path = tmp_path / "pc.model"
    code = f"""
import sys
import numpy as np
import cellseg_core
from cellseg_core import learn, cli, batch, evaluation, methods
from cellseg_core.learn import PixelClassifier, FeatureSettings, load_model
img = np.zeros((24, 24, 3), np.float32); img[6:18, 6:18] = 0.5; img[9:15, 9:15] = 0.1
mask = np.zeros((24, 24), np.uint8); mask[6:18, 6:18] = 1; mask[9:15, 9:15] = 2
PixelClassifier(FeatureSettings(scale=1, sigma_max=2), n_estimators=3).fit(
    [img], [mask], rng=0).save({str(path)!r})
model = load_model({str(path)!r})
model.segment(img)
for bad in (b"not a model", b"CELLSEG-MODEL\\n" + (5).to_bytes(8, "little") + b"{{}}xx"):
    try:
        load_model(bad)
    except ValueError:
        pass
assert "torch" not in sys.modules, "torch was imported"
print("ok")
"""
    done = _run(code)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


def test_unet_file_without_torch_is_refused_with_the_install_hint():
    header = json.dumps({"format": "cellseg-model", "format_version": 1, "kind": "UNetModel",
                         "payload_bytes": 3, "payload_sha256": ""}).encode()
    code = _BLOCK_TORCH + f"""
import hashlib, json
from cellseg_core.learn import load_model
from cellseg_core.learn import unet
assert not unet.torch_available()
header = json.loads({header.decode()!r})
header["payload_sha256"] = hashlib.sha256(b"abc").hexdigest()
head = json.dumps(header).encode()
data = b"CELLSEG-MODEL\\n" + len(head).to_bytes(8, "little") + head + b"abc"
try:
    load_model(data)
except ValueError as err:
    print(err)
try:
    unet.UNetModel()
except ImportError as err:
    print(err)
"""
    done = _run(code)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 2
    assert all("install the deep extra: pip install .[deep]" in line for line in lines)


def test_ensemble_with_a_unet_without_torch_is_refused_with_the_install_hint(tmp_path):
    # An ensemble file (pixel classifier + a U-Net member) built without torch: the
    # pixel classifier member loads, the U-Net member is refused with the hint.
    path = tmp_path / "ens.model"
    code = _BLOCK_TORCH + f"""
import hashlib, json
import numpy as np
from cellseg_core.learn import PixelClassifier, FeatureSettings, load_model
from cellseg_core.learn import MissingDeepExtra
img = np.zeros((24, 24, 3), np.float32); img[6:18, 6:18] = 0.5; img[9:15, 9:15] = 0.1
mask = np.zeros((24, 24), np.uint8); mask[6:18, 6:18] = 1; mask[9:15, 9:15] = 2
pc = PixelClassifier(FeatureSettings(scale=1, sigma_max=2), n_estimators=3).fit(
    [img], [mask], rng=0).to_bytes()
def container(header, payload):
    header.update(format="cellseg-model", format_version=2, payload_bytes=len(payload),
                  payload_sha256=hashlib.sha256(payload).hexdigest())
    head = json.dumps(header).encode()
    return b"CELLSEG-MODEL\\n" + len(head).to_bytes(8, "little") + head + payload
unet = container({{"kind": "UNetModel"}}, b"abc")
ens = container({{"kind": "ProbabilityEnsemble", "weights": [0.5, 0.5], "cleanup": {{}},
                 "members": [{{"kind": "PixelClassifier", "bytes": len(pc)}},
                             {{"kind": "UNetModel", "bytes": len(unet)}}]}}, pc + unet)
try:
    load_model(ens)
except MissingDeepExtra as err:
    print(err)
import sys
assert "torch" not in sys.modules
"""
    done = _run(code)
    assert done.returncode == 0, done.stderr
    out = done.stdout.strip()
    assert "member 2 (UNetModel)" in out and "install the deep extra: pip install .[deep]" in out
