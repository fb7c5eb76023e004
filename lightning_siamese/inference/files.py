"""Files the tools read and write: ``torch.load`` with an error that names the file, JSON records."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch


def load_torch_file(path: str | Path, what: str, missing: str, broken: str, expected: str) -> Any:
    """``torch.load(path, weights_only=True)`` on the CPU (no pickled code runs), or an error naming the file.

    A missing file raises ``FileNotFoundError("{what} {path}{missing}")``; one that torch cannot
    read (truncated, foreign) ``ValueError("{what} {path} {broken} (ErrorType: reason); expected
    {expected}")``. Callers check the loaded object's own structure themselves.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} {path}{missing}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types for truncated or foreign files
        raise ValueError(f"{what} {path} {broken} ({type(err).__name__}: {err}); expected {expected}") from err


def write_json(path: str | Path | None, record: dict) -> None:
    """Write ``record`` as indented JSON to ``path`` (its folder created) and say so; nothing when ``path`` is None."""
    if path is None:
        return
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(record, indent=2) + "\n")
    print(f"  written to {path}")
