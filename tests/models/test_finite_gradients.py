"""Every head gives finite gradients at distance zero: identical pairs, triplets and batches."""

from __future__ import annotations

import inspect

import pytest
import torch

from lightning_siamese.models import heads
from lightning_siamese.models.heads import DistanceHead, PairHead

DIM = 8


def concrete_heads() -> list[type[PairHead]]:
    found, todo = [], [PairHead]
    while todo:
        cls = todo.pop()
        todo += cls.__subclasses__()
        if cls not in (PairHead, DistanceHead) and cls.__module__ == heads.__name__:
            found.append(cls)
    return sorted(found, key=lambda c: c.__name__)


def build(cls: type[PairHead], **options) -> PairHead:
    if "num_classes" in inspect.signature(cls).parameters:
        options["num_classes"] = 4
    return cls(DIM, **options)


# The head options that change how distances are computed.
VARIANTS = {
    "ContrastiveHead": [{}, {"normalize": True}, {"mining": "hard"}],
    "TripletHead": [{}, {"normalize": True}, {"squared": True}, {"mining": "all"}, {"mining": "semihard"}],
}


def cases() -> list:
    return [
        pytest.param(cls, options, id=f"{cls.__name__}{options or ''}")
        for cls in concrete_heads()
        for options in VARIANTS.get(cls.__name__, [{}])
    ]


def kinds(head: PairHead) -> list[str]:
    return ["similarity", *(k for k in ("pairs", "triplets", "classes") if k in head.trains_on)]


def at_distance_zero(head: PairHead, point: torch.Tensor, kind: str) -> torch.Tensor:
    """One of the head's losses, or its summed similarity, with every embedding equal to ``point``."""
    batch = point.expand(4, DIM)
    if kind == "pairs":
        return head.loss(batch, batch, torch.tensor([1, 0, 1, 0]))
    if kind == "triplets":
        return head.triplet_loss(batch, batch, batch)
    if kind == "classes":
        return head.batch_loss(batch, torch.tensor([0, 0, 1, 1]))
    return head.similarity(batch, batch).sum()


@pytest.mark.parametrize(("cls", "options"), cases())
@pytest.mark.parametrize("at_origin", [False, True], ids=["identical", "identical-zero"])
def test_identical_embeddings_give_finite_gradients(cls: type[PairHead], options: dict, at_origin: bool) -> None:
    torch.manual_seed(0)
    head = build(cls, **options)
    for kind in kinds(head):
        point = (torch.zeros(DIM) if at_origin else torch.randn(DIM)).requires_grad_(True)
        head.zero_grad()
        value = at_distance_zero(head, point, kind)
        value.backward()
        assert torch.isfinite(value), f"{kind} loss is {value}"
        assert torch.isfinite(point.grad).all(), f"{kind}: embedding gradient {point.grad}"
        for name, parameter in head.named_parameters():
            if parameter.grad is not None:
                assert torch.isfinite(parameter.grad).all(), f"{kind}: gradient of {name}"


def test_every_head_is_covered() -> None:
    names = {cls.__name__ for cls in concrete_heads()}
    assert {"KochHead", "ContrastiveHead", "TripletHead", "PrototypicalHead", "CosFaceHead"} <= names
