"""Checkpoint files: find a run's last one, check that a file is a checkpoint of the configured model."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from jsonargparse import Namespace

from lightning_siamese.inference.files import load_torch_file

SPECIAL_CKPT_PATHS = ("last", "best", "hpc", "registry")


def find_last_checkpoint(checkpoint_dir: Path) -> Path | None:
    """``last.ckpt`` (or the newest ``last-v*.ckpt``) in a checkpoint folder."""
    candidates = sorted(checkpoint_dir.glob("last*.ckpt"), key=lambda p: p.stat().st_mtime)
    return candidates[-1] if candidates else None


def find_latest_run(save_dir: str | Path, name: str) -> tuple[int, Path] | None:
    """The highest ``version_N`` under ``save_dir/name`` that holds a last checkpoint."""
    runs = []
    for folder in Path(save_dir, name).glob("version_*"):
        match = re.fullmatch(r"version_(\d+)", folder.name)
        if match is None:
            continue
        last = find_last_checkpoint(folder / "checkpoints")
        if last is not None:
            runs.append((int(match.group(1)), last))
    return max(runs) if runs else None


def check_checkpoint_file(path: str | Path) -> dict:
    """The checkpoint at ``path`` (loaded on the CPU), or a clear error when it is missing or not a readable checkpoint."""
    checkpoint = load_torch_file(
        path,
        "--ckpt_path",
        ": no such checkpoint file",
        "is not a readable Lightning checkpoint",
        "a .ckpt file written by `lightning fit`",
    )
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise ValueError(f"--ckpt_path {path} holds no model state_dict: not a Lightning checkpoint")
    return checkpoint


def _component(value: Any) -> tuple[str, dict]:
    """Class name and init args of a model part given as ``{class_path, init_args}``."""
    if isinstance(value, Mapping) and "class_path" in value:
        return str(value["class_path"]).rsplit(".", 1)[-1], dict(value.get("init_args") or {})
    return type(value).__name__, {}


def _same(a: Any, b: Any) -> bool:
    return json.dumps(a, sort_keys=True, default=str) == json.dumps(b, sort_keys=True, default=str)


def describe_model_difference(saved: Mapping, configured: Mapping) -> str:
    """How a checkpoint's model (saved hyper-parameters) differs from a config's ``model`` section.

    Compares the model class and the class and init args of its encoder and head; an init
    arg only one side knows (added to the code since) is no difference.
    """
    parts = []
    saved_class = str(saved.get("_class_path", "?")).rsplit(".", 1)[-1]
    configured_class = str(configured.get("class_path", "?")).rsplit(".", 1)[-1]
    if saved_class != configured_class:
        parts.append(f"model {saved_class} (checkpoint) vs {configured_class} (config)")
    init_args = configured.get("init_args") or {}
    for key in ("encoder", "head"):
        (name_s, args_s), (name_c, args_c) = _component(saved.get(key)), _component(init_args.get(key))
        changed = sorted(k for k in args_s.keys() & args_c.keys() if not _same(args_s[k], args_c[k]))
        if name_s != name_c:
            parts.append(f"{key} {name_s} (checkpoint) vs {name_c} (config)")
        elif changed:
            values = ", ".join(f"{k}={args_s[k]!r} vs {args_c[k]!r}" for k in changed)
            parts.append(f"{key} {name_s} with {values} (checkpoint vs config)")
    return "; ".join(parts)


def check_checkpoint_model(path: str | Path, model_config: Namespace | Mapping) -> None:
    """Fail when a checkpoint was saved from another model than the config's ``model`` describes.

    The config's model is the one built (``SiameseCLI._parse_ckpt_path``), so without this
    check loading would fail on a stack of missing and unexpected keys, or, for options that
    own no weights (a head's margin or normalisation), quietly score another model.
    The message names the checkpoint, how the two models differ and the run's own config.
    """
    path = Path(path)
    saved = torch.load(path, map_location="cpu", weights_only=True, mmap=True).get("hyper_parameters") or {}
    if "_class_path" not in saved:
        return  # not written by this CLI: nothing to compare with
    configured = model_config.as_dict() if isinstance(model_config, Namespace) else dict(model_config)
    difference = describe_model_difference(saved, configured)
    if not difference:
        return
    own_config = path.resolve().parent.parent / "config.yaml"
    hint = f"its run's config, {own_config}" if own_config.is_file() else "the config it was trained with"
    raise ValueError(
        f"--ckpt_path {path} holds another model than the config describes: {difference}. "
        f"Use {hint}, or a checkpoint of this config's model."
    )
