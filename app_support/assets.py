"""Long help texts, kept as Markdown files in ``assets/``."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

__all__ = ["ASSETS", "read_asset"]

ASSETS = Path(__file__).resolve().parent.parent / "assets"


@lru_cache(maxsize=32)
def read_asset(name: str) -> str:
    """The text of ``assets/<name>``; a missing file says so instead of failing."""
    path = ASSETS / name
    if path.parent != ASSETS or not path.is_file():
        return f"(help text {name!r} is missing)"
    return path.read_text(encoding="utf-8")
