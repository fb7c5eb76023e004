"""A ``lightning`` YAML config's data module and end-of-run report settings, for tools that score episodes."""

from __future__ import annotations

import argparse
import inspect
from pathlib import Path

import torch
import yaml
from jsonargparse import ArgumentParser

from lightning_siamese.callbacks.report import OneShotReport
from lightning_siamese.data.datamodules.base import SiameseDataModule

REPORT_DEFAULTS = {
    name: p.default for name, p in inspect.signature(OneShotReport).parameters.items() if name != "use_best"
}


def data_module_from_config(path: str | Path, image_size: int | None = None) -> tuple[SiameseDataModule, dict]:
    """The data module of a ``lightning`` config (its ``data`` section), and the config's ``oneshot_report`` section."""
    config = yaml.safe_load(Path(path).read_text()) or {}
    data = config.get("data")
    if not isinstance(data, dict) or "class_path" not in data:
        raise ValueError(
            f"{path} has no data section with a class_path: expected data: {{class_path: ..., init_args: ...}}"
        )
    if image_size is not None:
        data = {**data, "init_args": {**(data.get("init_args") or {}), "image_size": image_size}}
    parser = ArgumentParser()
    parser.add_subclass_arguments(SiameseDataModule, "data")
    instantiate = getattr(parser, "instantiate", None) or parser.instantiate_classes  # renamed in jsonargparse 4.49
    module = instantiate(parser.parse_object({"data": data})).data
    return module, config.get("oneshot_report") or {}


def with_checkpoint_state(module: SiameseDataModule, saved: dict) -> SiameseDataModule:
    """``module`` given the state its checkpoint saved (``load_trained``'s data settings), if it keeps any: the
    signature module's training pixel std, so that ``module.prepare`` prepares images as that checkpoint's
    validation did rather than with a std of its own training split."""
    state = {key: saved[key] for key in module.state_dict() if key in saved}
    if state:
        module.load_state_dict(state)
    return module


def report_settings(args: argparse.Namespace, report: dict) -> dict:
    """Split, task, number of tasks and seed: from ``args`` where given, else the config's
    ``oneshot_report``, else :class:`OneShotReport`'s defaults (so numbers compare with oneshot_<split>.json)."""
    return {
        k: getattr(args, k, None) if getattr(args, k, None) is not None else report.get(k, d)
        for k, d in REPORT_DEFAULTS.items()
    }


def baseline_images(data: SiameseDataModule, images: torch.Tensor) -> torch.Tensor:
    """A data module's uint8 images as baselines take them: strokes bright, as Omniglot loads by default."""
    return images if getattr(data, "invert", True) else 255 - images
