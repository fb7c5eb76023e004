"""Embedding whole image tensors with a trained module, in evaluation mode and in batches."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch

from lightning_siamese.data.transforms.views import AlignmentViews, to_float

if TYPE_CHECKING:  # module.py imports this file
    from lightning_siamese.models.module import SiameseModule

Prepare = Callable[[torch.Tensor], torch.Tensor]


@torch.no_grad()
def embed_all(
    module: SiameseModule, images: torch.Tensor, batch_size: int = 256, prepare: Prepare = to_float
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
    module: SiameseModule,
    images: torch.Tensor,
    views: AlignmentViews,
    batch_size: int = 256,
    prepare: Prepare = to_float,
) -> torch.Tensor:
    """Embed uint8 images under every alignment view, in eval mode: ``[N, len(views) * D]``, the embeddings
    side by side; ``prepare`` as in :func:`embed_all`."""
    was_training = module.training
    module.eval()
    out = [views.embed(module.embed, prepare(chunk.to(module.device))) for chunk in images.split(batch_size)]
    module.train(was_training)
    return torch.cat(out)


def embedding_table(
    module: SiameseModule,
    outputs: list[tuple[torch.Tensor, torch.Tensor]],
    dataset: Any,
    embed: Callable[[torch.Tensor], torch.Tensor],
) -> torch.Tensor:
    """Every image of ``dataset`` embedded, in dataset order and float32, from a stage's ``(embeddings, index)``
    outputs on all ranks. Images no step saw (``limit_*_batches``, ``fast_dev_run``) are embedded here with
    ``embed``, at the trainer's precision, so a stage's episodes are always scored in full."""
    embeddings = torch.cat([e for e, _ in outputs]).float()
    index = torch.cat([i for _, i in outputs])
    trainer = module.trainer
    if trainer.world_size > 1:
        embeddings = module.all_gather(embeddings).flatten(0, 1)  # type: ignore[union-attr]  # a tensor in, a tensor out
        index = module.all_gather(index).flatten()  # type: ignore[union-attr]  # likewise
    table = embeddings.new_zeros(len(dataset), embeddings.shape[-1])
    seen = torch.zeros(len(dataset), dtype=torch.bool, device=embeddings.device)
    table[index], seen[index] = embeddings, True
    missing = (~seen).nonzero().flatten()
    with trainer.precision_plugin.forward_context():
        for chunk in missing.split(256) if len(missing) else ():
            images = torch.stack([dataset[int(i)][0] for i in chunk]).to(module.device)
            table[chunk] = embed(images).float()
    return table
