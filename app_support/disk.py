"""Free disk space for what the app writes on the server: the Batch page's outputs.

A batch writes each image's label TIFFs into a private temporary folder and zips the
folder at the end, so a long batch of large uploads could fill the temporary file
system of a shared server. Before each image, :func:`check_free` makes sure that file
system keeps ``CELLSEG_MIN_FREE_MB`` free (default :data:`MIN_FREE_MB`: more than
one image's outputs take at the default pixel limit: 10⁸ pixels × 5 bytes
uncompressed); otherwise the batch stops with a message that names the limit, and
its folder is removed.
"""
from __future__ import annotations

import os
import shutil

__all__ = ["MIN_FREE_MB", "min_free_bytes", "check_free"]

MIN_FREE_MB = 1024


def min_free_bytes() -> int:
    """``CELLSEG_MIN_FREE_MB`` in bytes (default :data:`MIN_FREE_MB`).

    Raises
    ------
    ValueError
        When the variable is not a number >= 0.
    """
    raw = os.environ.get("CELLSEG_MIN_FREE_MB", "").strip()
    try:
        mb = float(raw) if raw else MIN_FREE_MB
    except ValueError:
        raise ValueError(f"CELLSEG_MIN_FREE_MB must be a number, got {raw!r}") from None
    if not mb >= 0:
        raise ValueError(f"CELLSEG_MIN_FREE_MB must be >= 0, got {raw!r}")
    return int(mb * 2**20)


def check_free(folder, done: int, total: int) -> None:
    """Refuse to write more into `folder` when its file system is short of space.

    Parameters
    ----------
    folder : path
        Where the outputs go.
    done, total : int
        Images written so far and in all, for the message.

    Raises
    ------
    ValueError
        When less than :func:`min_free_bytes` is free.

    Examples
    --------
    >>> import tempfile
    >>> check_free(tempfile.gettempdir(), 0, 1)  # nothing said: there is room
    """
    need = min_free_bytes()
    free = shutil.disk_usage(folder).free
    if free < need:
        raise ValueError(
            f"stopped after {done} of {total} image(s): the server's disk for temporary "
            f"files has {free / 2**20:,.0f} MB free, and this app keeps at least "
            f"{need / 2**20:,.0f} MB free (CELLSEG_MIN_FREE_MB); try fewer or smaller "
            "images, or ask the server's admin")
