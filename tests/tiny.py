"""The tiny data module and encoder that many tests train on (the images: conftest's ``tiny_omniglot``)."""

from __future__ import annotations

from pathlib import Path

import lightning
import torch
from lightning.pytorch.cli import instantiate_module

from lightning_siamese.data.datamodules.omniglot import OmniglotDataModule
from lightning_siamese.models import KochEncoder, SiameseModule
from tests.conftest import character_image


def tiny_data(root: Path, **overrides) -> OmniglotDataModule:
    """The tiny set split by alphabet (train Alpha and Beta, val Gamma, test Delta), a few small batches an epoch."""
    settings = {
        "root": str(root),
        "sets": ["images_background"],
        "val_alphabets": ["Gamma"],
        "test_alphabets": ["Delta"],
        "image_size": 28,
        "batch_size": 8,
        "pairs_per_epoch": 16,
        "n_way": 5,
        "val_tasks": 4,
        "val_pairs": 8,
        "seed": 0,
    }
    return OmniglotDataModule(**(settings | overrides))


def tiny_encoder(**overrides) -> KochEncoder:
    """Koch's four convolutions at 28 px with a few channels: fast enough for many short fits."""
    settings = {
        "input_size": 28,
        "kernel_sizes": (3, 3, 2, 2),
        "channels": (4, 4, 4, 4),
        "embedding_dim": 8,
        "init": "default",
    }
    return KochEncoder(**(settings | overrides))


def tiny_recipe_data(root: Path, **overrides) -> dict:
    """A recipe's ``data.init_args`` shrunk to the tiny set (for a ``--config`` override): 5-way, no downloads or workers."""
    settings = {
        "root": str(root),
        "sets": ["images_background"],
        "val_alphabets": ["Gamma"],
        "test_alphabets": ["Delta"],
        "download": False,
        "image_size": 28,
        "batch_size": 16,
        "n_way": 5,
        "val_tasks": 4,
        "val_pairs": 8,
        "num_workers": 0,
    }
    return settings | overrides


TINY_MODEL = {
    "_class_path": "lightning_siamese.models.SiameseModule",
    "encoder": {
        "class_path": "lightning_siamese.models.KochEncoder",
        "init_args": {
            "input_size": 28,
            "kernel_sizes": [3, 3, 2, 2],
            "channels": [4, 8, 8, 16],
            "embedding_dim": 32,
            "init": "default",
        },
    },
    "head": {"class_path": "lightning_siamese.models.TripletHead", "init_args": {"normalize": True}},
}


def tiny_checkpoint(path: Path, seed: int = 0, threshold: float | None = -0.8) -> Path:
    """A checkpoint as `lightning fit` writes one (model hyper-parameters, data settings, threshold), untrained."""
    torch.manual_seed(seed)
    model = instantiate_module(SiameseModule, dict(TINY_MODEL))
    torch.save(
        {
            "state_dict": model.state_dict(),
            "pytorch-lightning_version": lightning.__version__,
            "hyper_parameters": {**TINY_MODEL, "_instantiator": "lightning.pytorch.cli.instantiate_module"},
            "datamodule_hyper_parameters": {"image_size": 28, "invert": True},
            "verification_threshold": threshold,
        },
        path,
    )
    return path


def write_characters(root: Path, classes: int, drawers: range) -> Path:
    """``root/charNN/dD.png``: the synthetic characters of tests/conftest.py, one folder per class."""
    for c in range(classes):
        (root / f"char{c:02d}").mkdir(parents=True, exist_ok=True)
        for d in drawers:
            character_image(1000 + c, d).save(root / f"char{c:02d}" / f"d{d}.png")
    return root
