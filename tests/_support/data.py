"""The shared data sets (``<repo>/../shared/data/<set>``) for tests that need them."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"


def missing(reason: str):
    """Skip for `reason`; under CI (env ``CI`` set) a missing resource is a failure."""
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


def shared_set(name: str, needs: str = "split.json") -> Path:
    """The folder of data set `name`; skips (fails under CI) when `needs` is not in it."""
    folder = DATA / name
    if not (folder / needs).exists():
        missing(f"data set {name} not found at {folder} (no {needs})")
    return folder
