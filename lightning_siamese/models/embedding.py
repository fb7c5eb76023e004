"""Embedding whole image tensors with a trained module, in evaluation mode and in batches."""

from __future__ import annotations

from collections.abc import Callable

import lightning.pytorch as pl
import torch

from lightning_siamese.data.transforms.views import AlignmentViews, to_float

Prepare = Callable[[torch.Tensor], torch.Tensor]


@torch.no_grad()
def embed_all(
    module: pl.LightningModule, images: torch.Tensor, batch_size: int = 256, prepare: Prepare = to_float
) -> torch.Tensor:
    """Embed uint8 images ``[N, C, H, W]`` in batches, in eval mode, on the module's device.

    ``prepare`` turns each uint8 batch into what the model takes: pass the data module's
    (``data.prepare``), so the embeddings are those validation computes; :func:`to_float`
    ([0, 1]) by default.
    """
    was_training = module.training
    module.eval()
    out = [module.embed(prepare(chunk.to(module.device))) for chunk in images.split(batch_size)]
    module.train(was_training)
    return torch.cat(out)


@torch.no_grad()
def embed_aligned(
    module: pl.LightningModule, images: torch.Tensor, views: AlignmentViews, batch_size: int = 256,
    prepare: Prepare = to_float,
) -> torch.Tensor:
    """Embed uint8 images under every alignment view, in eval mode: ``[N, len(views) * D]``, the embeddings
    side by side; ``prepare`` as in :func:`embed_all`."""
    was_training = module.training
    module.eval()
    out = [views.embed(module.embed, prepare(chunk.to(module.device))) for chunk in images.split(batch_size)]
    module.train(was_training)
    return torch.cat(out)
