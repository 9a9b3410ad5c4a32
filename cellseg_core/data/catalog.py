"""Which datasets a user may pick: configuration, never a path typed in a browser.

- the environment variable ``CELLSEG_DATA``: an ``os.pathsep``-separated list of
  dataset folders, or of folders whose sub-folders are datasets;
- a TOML file (the path in ``CELLSEG_CONFIG``, or passed to
  :func:`available_datasets`) with ``data = ["folder", ...]`` (same meaning as
  ``CELLSEG_DATA``) and/or a ``[datasets]`` table ``name = "folder"``; relative
  paths are relative to the file.

The command line names a dataset by folder or demo name (:func:`dataset_from_spec`).
"""
from __future__ import annotations

import os
from pathlib import Path

from .datasets import Dataset, _is_dsb, open_dataset
from .demo import DEMO_NAMES, demo_datasets

try:                                    # Python >= 3.11
    import tomllib
except ModuleNotFoundError:             # pragma: no cover - Python 3.10 with tomli
    import tomli as tomllib

__all__ = ["available_datasets", "dataset_from_spec"]


def dataset_from_spec(spec: str) -> Dataset:
    """The dataset a command names: a demo dataset's name or a dataset folder.

    Raises
    ------
    ValueError
        When `spec` is neither a demo name nor an existing folder, or the folder is
        not a dataset.

    Examples
    --------
    >>> dataset_from_spec("demo-fluorescence").kind
    'fluorescence'
    """
    if spec in DEMO_NAMES:
        return demo_datasets()[spec]
    if not Path(spec).exists():
        raise ValueError(f"{spec}: no such dataset folder")
    return open_dataset(spec)


def _is_dataset(path: Path) -> bool:
    return (path / "images").is_dir() or (path / "X").is_dir() \
        or (path.is_dir() and _is_dsb(path))


def _config_entries(config) -> list[tuple[str | None, Path]]:
    """(name or None, folder) pairs from a TOML path or an already parsed dict."""
    if config is None:
        return []
    base = Path.cwd()
    if not isinstance(config, dict):
        path = Path(config)
        try:
            with open(path, "rb") as fh:
                config = tomllib.load(fh)
        except FileNotFoundError:
            raise ValueError(f"config file {path} does not exist") from None
        except tomllib.TOMLDecodeError as err:
            raise ValueError(f"config file {path}: not valid TOML ({err})") from None
        base = path.resolve().parent
    unknown = sorted(set(config) - {"data", "datasets"})
    if unknown:
        raise ValueError(f"config: unknown key(s) {unknown}; valid: ['data', 'datasets']")
    entries = []
    data = config.get("data", [])
    if isinstance(data, str):
        data = [data]
    if not isinstance(data, list) or not all(isinstance(d, str) for d in data):
        raise ValueError("config: `data` must be a list of folder paths")
    entries += [(None, base / d) for d in data]
    named = config.get("datasets", {})
    if not isinstance(named, dict) or not all(isinstance(v, str) for v in named.values()):
        raise ValueError("config: `datasets` must be a table of name = \"folder\"")
    entries += [(name, base / folder) for name, folder in named.items()]
    return entries


def available_datasets(config=None) -> dict[str, Dataset]:
    """Every dataset a user may pick: the demo ones, ``CELLSEG_DATA`` and a config file.

    Parameters
    ----------
    config : str, Path or dict, optional
        A TOML file (or its parsed content) with ``data = [folders]`` and/or a
        ``[datasets]`` table of ``name = "folder"``. Defaults to the file named by
        the environment variable ``CELLSEG_CONFIG``, if set.

    Returns
    -------
    dict
        Name → :class:`Dataset`, demo datasets first. A folder listed in
        ``CELLSEG_DATA`` or ``data`` is a dataset itself or holds dataset folders.
        Folders that are missing or not datasets are skipped; a name used twice gets
        a ``-2``, ``-3`` suffix.

    Raises
    ------
    ValueError
        When the config file is missing or malformed.
    """
    if config is None and os.environ.get("CELLSEG_CONFIG"):
        config = os.environ["CELLSEG_CONFIG"]
    entries: list[tuple[str | None, Path]] = []
    for item in os.environ.get("CELLSEG_DATA", "").split(os.pathsep):
        if item.strip():
            entries.append((None, Path(item.strip()).expanduser()))
    entries += _config_entries(config)

    out = dict(demo_datasets())
    seen = set()
    for name, folder in entries:
        folder = folder.expanduser()
        if not folder.is_dir():
            continue
        folders = [folder] if (name or _is_dataset(folder)) else sorted(
            p for p in folder.iterdir() if p.is_dir() and _is_dataset(p))
        for path in folders:
            real = path.resolve()
            if real in seen:
                continue
            try:
                dataset = open_dataset(real, name=name)
            except ValueError:
                continue
            seen.add(real)
            base, k = dataset.name, 2
            while dataset.name in out:
                dataset.name = f"{base}-{k}"
                k += 1
            out[dataset.name] = dataset
    return out

