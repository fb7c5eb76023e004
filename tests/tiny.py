"""The tiny data module and encoder that many tests train on (the images: conftest's ``tiny_omniglot``)."""

from __future__ import annotations

from pathlib import Path

from lightning_siamese.data.datamodules.omniglot import OmniglotDataModule
from lightning_siamese.models import KochEncoder


def tiny_data(root: Path, **overrides) -> OmniglotDataModule:
    """The tiny set split by alphabet (train Alpha and Beta, val Gamma, test Delta), a few small batches an epoch."""
    settings = dict(
        root=str(root), sets=["images_background"], val_alphabets=["Gamma"], test_alphabets=["Delta"],
        image_size=28, batch_size=8, pairs_per_epoch=16, n_way=5, val_tasks=4, val_pairs=8, seed=0,
    )
    return OmniglotDataModule(**(settings | overrides))


def tiny_encoder(**overrides) -> KochEncoder:
    """Koch's four convolutions at 28 px with a few channels: fast enough for many short fits."""
    settings = dict(input_size=28, kernel_sizes=(3, 3, 2, 2), channels=(4, 4, 4, 4), embedding_dim=8, init="default")
    return KochEncoder(**(settings | overrides))


def tiny_recipe_data(root: Path, **overrides) -> dict:
    """A recipe's ``data.init_args`` shrunk to the tiny set (for a ``--config`` override): 5-way, no downloads or workers."""
    settings = dict(
        root=str(root), sets=["images_background"], val_alphabets=["Gamma"], test_alphabets=["Delta"], download=False,
        image_size=28, batch_size=16, n_way=5, val_tasks=4, val_pairs=8, num_workers=0,
    )
    return settings | overrides
