"""Distances and similarities between embeddings, for heads, losses and miners."""

from __future__ import annotations

import torch
import torch.nn.functional as F

EPS = 1e-12  # keeps sqrt differentiable at zero distance


def euclidean(first: torch.Tensor, second: torch.Tensor, squared: bool = False) -> torch.Tensor:
    """Row-wise (broadcasting) Euclidean distance, or its square."""
    d2 = (first - second).pow(2).sum(-1)
    return d2 if squared else (d2 + EPS).sqrt()


def pairwise_distances(embeddings: torch.Tensor, squared: bool = False) -> torch.Tensor:
    """All distances ``[B, B]`` within a batch (exact differences, not the Gram trick)."""
    return euclidean(embeddings[:, None, :], embeddings[None, :, :], squared)


def pairwise_euclidean(queries: torch.Tensor, keys: torch.Tensor, squared: bool = False) -> torch.Tensor:
    """``euclidean(queries[..., :, None, :], keys[..., None, :, :], squared)`` as ``[..., Q, C]``, from a matrix product.

    ``||q||^2 + ||k||^2 - 2 q.k`` is computed in float64: in float32 its cancellation leaves
    up to ~1e-4 in the squared distance of identical 128-d vectors (~1e-2 after the square root);
    in float64 it stays far below float32 rounding, so the scores match the broadcast form's.
    """
    q, k = queries.double(), keys.double()
    d2 = (q.pow(2).sum(-1)[..., :, None] + k.pow(2).sum(-1)[..., None, :] - 2 * q @ k.transpose(-1, -2)).clamp(min=0)
    return (d2 if squared else (d2 + EPS).sqrt()).to(torch.result_type(queries, keys))


def pairwise_cosine(queries: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
    """``F.cosine_similarity(queries[..., :, None, :], keys[..., None, :, :], dim=-1)`` as ``[..., Q, C]``, with its eps (1e-8) per norm."""
    return F.normalize(queries, dim=-1, eps=1e-8) @ F.normalize(keys, dim=-1, eps=1e-8).transpose(-1, -2)
