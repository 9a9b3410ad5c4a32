"""Shared pytest fixtures: the VocEd data folder and small loaders over it.

`chromium_path` is Debian's Chromium for the browser tests (skipped without it, an
error under CI). `voced` is the path to the VocEd cytology set (``images/``, ``masks/``, ``split.json``):
the environment variable ``CELLSEG_VOCED`` if set, else ``<repo>/../shared/data/voced``.
When it is missing the test is skipped, except under CI (env ``CI`` set), where a
missing data set is an error, not a reason to pass.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import shutil

import numpy as np
import pytest
from _common import CHROMIUM

REPO = Path(__file__).resolve().parent.parent


def voced_path() -> Path:
    """Where the VocEd folder should be (it may not exist)."""
    env = os.environ.get("CELLSEG_VOCED")
    return Path(env) if env else REPO.parent / "shared" / "data" / "voced"


def _missing(reason: str):
    """Skip for `reason`; under CI (env ``CI`` set) a missing resource is a failure."""
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def voced() -> Path:
    """Path to the VocEd folder; skips (or fails under CI) when it is missing."""
    path = voced_path()
    if not (path / "images").is_dir() or not (path / "masks").is_dir():
        _missing(f"VocEd data not found at {path} (set CELLSEG_VOCED to the folder "
                 "holding images/, masks/ and split.json)")
    return path


@pytest.fixture(scope="session")
def voced_split(voced) -> dict:
    """The course's split: {'train': [int ids], 'test': [int ids]}."""
    return json.loads((voced / "split.json").read_text())


@pytest.fixture(scope="session")
def voced_arrays(voced) -> dict:
    """All VocEd images and masks as arrays: {id: (uint8 (M, N, 3) RGB, uint8 mask)}.

    Read with Pillow only (not through ``cellseg_core``), once per session.
    """
    from PIL import Image

    out = {}
    for image_path in sorted((voced / "images").glob("*.png")):
        ident = int(image_path.stem)
        with Image.open(image_path) as im:
            rgb = np.asarray(im.convert("RGB"))
        with Image.open(voced / "masks" / image_path.name) as im:
            mask = np.asarray(im)
        out[ident] = (rgb, mask)
    return out


@pytest.fixture(scope="session")
def voced_image_path(voced) -> Path:
    """Path to one VocEd image with both nucleus and cytoplasm (000.png)."""
    return voced / "images" / "000.png"


@pytest.fixture
def chromium_path() -> str:
    """Chromium for Playwright: ``CELLSEG_CHROMIUM`` (default /usr/bin/chromium) or the
    one on PATH; skips (or fails under CI) when there is none."""
    path = CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium")
    if not path:
        _missing(f"no Chromium at {CHROMIUM} (install Debian's `chromium` package or set "
                 "CELLSEG_CHROMIUM)")
    return path
