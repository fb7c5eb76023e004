"""Embedding whole image tensors with a trained module, in evaluation mode and in batches."""

from __future__ import annotations

import lightning.pytorch as pl
import torch

from lightning_siamese.data.transforms.views import AlignmentViews, to_float


@torch.no_grad()
def embed_all(module: pl.LightningModule, images: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """Embed uint8 images ``[N, C, H, W]`` in batches, in eval mode, on the module's device."""
    was_training = module.training
    module.eval()
    out = [
        module.embed(to_float(chunk.to(module.device)))
        for chunk in images.split(batch_size)
    ]
    module.train(was_training)
    return torch.cat(out)


@torch.no_grad()
def embed_aligned(module: pl.LightningModule, images: torch.Tensor, views: AlignmentViews, batch_size: int = 256) -> torch.Tensor:
    """Embed uint8 images under every alignment view, in eval mode: ``[N, len(views) * D]``, the embeddings side by side."""
    was_training = module.training
    module.eval()
    out = [views.embed(module.embed, to_float(chunk.to(module.device))) for chunk in images.split(batch_size)]
    module.train(was_training)
    return torch.cat(out)
