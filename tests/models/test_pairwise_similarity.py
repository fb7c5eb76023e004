"""Every head's ``pairwise_similarity`` gives the scores of its broadcast ``similarity``."""

from __future__ import annotations

import inspect

import pytest
import torch

from lightning_siamese.models import heads
from lightning_siamese.models.heads import (
    ClassifierHead,
    ContrastiveHead,
    CosFaceHead,
    KochHead,
    PairHead,
    PrototypicalHead,
    TripletHead,
)

# Every head of heads.py, with each option that changes its score (normalize, squared, metric).
ALL_HEADS = {
    "koch": lambda dim: KochHead(dim).eval(),
    "contrastive": lambda dim: ContrastiveHead(dim),
    "contrastive_normalized": lambda dim: ContrastiveHead(dim, normalize=True),
    "triplet": lambda dim: TripletHead(dim),
    "triplet_squared": lambda dim: TripletHead(dim, squared=True),
    "triplet_normalized": lambda dim: TripletHead(dim, normalize=True),
    "triplet_normalized_squared": lambda dim: TripletHead(dim, normalize=True, squared=True),
    "prototypical": lambda dim: PrototypicalHead(dim),
    "cosface": lambda dim: CosFaceHead(dim, num_classes=4),
    "classifier_cosine": lambda dim: ClassifierHead(dim, num_classes=4),
    "classifier_euclidean": lambda dim: ClassifierHead(dim, num_classes=4, similarity="euclidean"),
}


def broadcast(head: PairHead, queries: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
    return head.similarity(queries[:, None], keys[None])


def test_every_head_of_heads_py_is_covered() -> None:
    defined = {
        cls
        for _, cls in inspect.getmembers(heads, inspect.isclass)
        if issubclass(cls, PairHead) and cls.__module__ == heads.__name__ and cls.__subclasses__() == []
    }
    assert defined == {type(make(16)) for make in ALL_HEADS.values()}


@pytest.mark.parametrize("name", sorted(ALL_HEADS))
@pytest.mark.parametrize("scale", [0.01, 1.0, 30.0])
def test_pairwise_equals_broadcast_similarity(name: str, scale: float) -> None:
    head = ALL_HEADS[name](128)
    g = torch.Generator().manual_seed(3)
    queries = scale * torch.randn(7, 128, generator=g)
    # Identical vectors (where ||q||^2 + ||k||^2 - 2 q.k cancels to ~0: in float32, ~1e-2 off after
    # the square root), a zero vector and others.
    keys = torch.cat([queries[[4, 0]], torch.zeros(1, 128), scale * torch.randn(9, 128, generator=g)])
    with torch.no_grad():
        expected, got = broadcast(head, queries, keys), head.pairwise_similarity(queries, keys)
    assert got.shape == (7, 12) and got.dtype == expected.dtype
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", sorted(ALL_HEADS))
def test_pairwise_broadcasts_leading_dimensions(name: str) -> None:
    # Test-time alignment scores a batch of view sets at once: [B, S, V, D] x [B, S, V, D] -> [B, S, V, V].
    head = ALL_HEADS[name](16)
    g = torch.Generator().manual_seed(4)
    queries, keys = torch.randn(3, 2, 5, 16, generator=g), torch.randn(3, 2, 4, 16, generator=g)
    with torch.no_grad():
        batched = head.pairwise_similarity(queries, keys)
        one_by_one = torch.stack(
            [torch.stack([head.pairwise_similarity(q, k) for q, k in zip(qs, ks)]) for qs, ks in zip(queries, keys)]
        )
    assert batched.shape == (3, 2, 5, 4)
    torch.testing.assert_close(batched, one_by_one, rtol=1e-5, atol=1e-5)
