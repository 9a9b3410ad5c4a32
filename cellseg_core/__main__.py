"""``python -m cellseg_core``: the same as the ``cellseg`` command."""
from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())
