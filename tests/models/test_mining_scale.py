"""Mining in O(B^2) memory and the cap on mined triplets, against the brute-force B x B x B form."""

import itertools

import pytest
import torch
import torch.nn.functional as F

from lightning_siamese.models import TripletHead
from lightning_siamese.models.distances import pairwise_distances
from lightning_siamese.models.losses import MinedTripletLoss
from lightning_siamese.models.miners import (
    SemiHardMiner,
    TripletCap,
    label_masks,
    triplet_miner,
)


def mined(margin: float, mining: str, max_triplets: int | None = None, seed: int | None = None) -> MinedTripletLoss:
    """The loss of ``TripletHead(margin, mining=mining, max_triplets=..., mining_seed=seed)``."""
    miner = triplet_miner(mining, margin)
    return MinedTripletLoss(margin, miner if max_triplets is None else TripletCap(miner, max_triplets, seed))


def batch(n_classes: int = 5, per_class: int = 4, dim: int = 6, seed: int = 0, grad: bool = False):
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n_classes).repeat_interleave(per_class)[torch.randperm(n_classes * per_class, generator=g)]
    return torch.randn(len(labels), dim, generator=g, dtype=torch.float64).requires_grad_(grad), labels


def cube_batch_all(emb: torch.Tensor, labels: torch.Tensor, margin: float) -> torch.Tensor:
    """The former implementation: every [a, p, n] term in one B x B x B tensor."""
    d = pairwise_distances(emb)
    positive, negative = label_masks(labels)
    terms = F.relu(d[:, :, None] - d[:, None, :] + margin)[positive[:, :, None] & negative[:, None, :]]
    return terms[terms > 1e-16].mean()


def active_terms(emb: torch.Tensor, labels: torch.Tensor, margin: float) -> list[float]:
    d = pairwise_distances(emb.detach())
    out = []
    for a, p, n in itertools.product(range(len(labels)), repeat=3):
        if a != p and labels[a] == labels[p] and labels[a] != labels[n]:
            term = float(d[a, p] - d[a, n] + margin)
            if term > 1e-16:
                out.append(term)
    return out


@pytest.mark.parametrize("seed", range(4))
def test_batch_all_value_and_gradient_match_the_cube(seed: int) -> None:
    emb, labels = batch(seed=seed, grad=True)
    emb.data[:3] = emb.data[3]  # ties in the sorted distances
    value = mined(1.0, "all")(emb, labels)
    (grad,) = torch.autograd.grad(value, emb)
    expected = cube_batch_all(emb, labels, 1.0)
    (expected_grad,) = torch.autograd.grad(expected, emb)
    torch.testing.assert_close(value, expected)
    torch.testing.assert_close(grad, expected_grad)


@pytest.mark.parametrize("chunk_elements", [1, 30, 1 << 22])
def test_semihard_in_chunks_matches_one_block(chunk_elements: int) -> None:
    emb, labels = batch(seed=2, grad=True)
    whole = mined(0.5, "semihard")(emb, labels)
    chunked = MinedTripletLoss(0.5, SemiHardMiner(chunk_elements))(emb, labels)
    assert chunked.item() == whole.item()
    torch.testing.assert_close(torch.autograd.grad(chunked, emb)[0], torch.autograd.grad(whole, emb)[0])


def test_a_cap_above_the_active_count_changes_nothing() -> None:
    emb, labels = batch(seed=1)
    n_active = len(active_terms(emb, labels, 1.0))
    full = mined(1.0, "all")(emb, labels)
    capped = mined(1.0, "all", max_triplets=n_active, seed=0)(emb, labels)
    torch.testing.assert_close(capped, full)


def test_a_cap_of_one_picks_one_active_triplet() -> None:
    emb, labels = batch(seed=1)
    terms = torch.tensor(active_terms(emb, labels, 1.0), dtype=torch.float64)
    for seed in range(5):
        value = mined(1.0, "all", max_triplets=1, seed=seed)(emb, labels)
        assert torch.isclose(terms, value.detach()).any()


def test_the_capped_subset_is_seeded_and_unbiased() -> None:
    emb, labels = batch(seed=3)
    full = float(mined(1.0, "all")(emb, labels))
    n_active = len(active_terms(emb, labels, 1.0))
    cap = n_active // 10

    def capped(seed: int) -> float:
        loss = mined(1.0, "all", max_triplets=cap, seed=seed)
        value = float(loss(emb, labels))
        assert loss.last_active_fraction == pytest.approx(n_active / loss_valid(labels))  # before the cap
        return value

    assert capped(7) == capped(7)
    draws = torch.tensor([capped(seed) for seed in range(300)])
    assert len(torch.unique(draws)) > 250  # different subsets
    # The mean of capped losses estimates the uncapped loss (a uniform subset is unbiased).
    assert float(draws.mean()) == pytest.approx(full, abs=3 * float(draws.std()) / 300**0.5)


def loss_valid(labels: torch.Tensor) -> int:
    positive, negative = label_masks(labels)
    return int((positive.sum(1) * negative.sum(1)).sum())


@pytest.mark.parametrize("seed", range(3))
def test_a_cap_one_below_the_count_leaves_out_exactly_one_active_triplet(seed: int) -> None:
    emb, labels = batch(seed=1)
    terms = torch.tensor(active_terms(emb, labels, 1.0), dtype=torch.float64)
    value = mined(1.0, "all", max_triplets=len(terms) - 1, seed=seed)(emb, labels).item()
    left_out = float(terms.sum()) - value * (len(terms) - 1)
    assert torch.isclose(terms, torch.tensor(left_out, dtype=torch.float64), atol=1e-9).any()


def test_successive_batches_draw_new_subsets() -> None:
    emb, labels = batch(seed=3)
    loss = mined(1.0, "all", max_triplets=5, seed=0)
    assert float(loss(emb, labels)) != float(loss(emb, labels))


@pytest.mark.parametrize("mining", ["hard", "semihard"])
def test_cap_on_hard_and_semihard_averages_a_subset_of_the_mined_terms(mining: str) -> None:
    emb, labels = batch(seed=4)
    full = mined(0.5, mining)
    value = mined(0.5, mining, max_triplets=len(labels) * 10, seed=0)(emb, labels)
    torch.testing.assert_close(value, full(emb, labels))  # cap above the count: unchanged
    one = mined(0.5, mining, max_triplets=1, seed=0)(emb, labels)
    d = pairwise_distances(emb.detach())
    positive, negative = label_masks(labels)
    if mining == "hard":
        terms = F.relu(d.masked_fill(~positive, -1e9).amax(1) - d.masked_fill(~negative, 1e9).amin(1) + 0.5)
    else:
        terms = []
        for a, p in positive.nonzero().tolist():
            farther = negative[a] & (d[a] > d[a, p])
            chosen = d[a][farther].min() if farther.any() else d[a][negative[a]].max()
            terms.append(F.relu(d[a, p] - chosen + 0.5))
        terms = torch.stack(terms)
    assert torch.isclose(terms, one.detach()).any()


def test_triplet_head_passes_the_cap_and_seed() -> None:
    head = TripletHead(6, mining="all", max_triplets=3, mining_seed=11)
    assert head.cap is not None and head.cap.max_triplets == 3 and head.cap.seed == 11
    emb, labels = batch(dim=6, seed=5)
    again = TripletHead(6, mining="all", max_triplets=3, mining_seed=11)
    assert float(head.batch_loss(emb, labels)) == float(again.batch_loss(emb, labels))


def test_unseeded_cap_follows_the_global_seed() -> None:
    emb, labels = batch(seed=5)
    torch.manual_seed(123)
    first = float(mined(1.0, "all", max_triplets=4)(emb, labels))
    torch.manual_seed(123)
    assert float(mined(1.0, "all", max_triplets=4)(emb, labels)) == first


@pytest.mark.parametrize("cap", [0, -3])
def test_bad_caps_are_rejected(cap: int) -> None:
    with pytest.raises(ValueError, match=f"max_triplets must be >= 1.*got {cap}"):
        mined(0.2, "all", max_triplets=cap)
    with pytest.raises(ValueError, match=f"max_triplets must be >= 1.*got {cap}"):
        TripletHead(4, max_triplets=cap)


def test_a_checkpointed_module_resumes_drawing_the_subsets_where_it_stopped() -> None:
    from lightning_siamese.models import ConvNetEncoder, SiameseModule

    emb, labels = batch(seed=3)

    def module() -> SiameseModule:
        encoder = ConvNetEncoder(input_size=28, channels=[4, 4, 4, 4], embedding_dim=6)
        return SiameseModule(encoder, TripletHead(6, margin=1.0, mining="all", max_triplets=5, mining_seed=None))

    torch.manual_seed(0)
    running = module()
    running.head.mined_loss(emb, labels)  # a first step, then a checkpoint
    checkpoint: dict = {}
    running.on_save_checkpoint(checkpoint)
    uninterrupted = [float(running.head.mined_loss(emb, labels)) for _ in range(3)]

    torch.manual_seed(0)  # a resumed run is seeded as the first was
    resumed = module()
    resumed.on_load_checkpoint(checkpoint)
    assert [float(resumed.head.mined_loss(emb, labels)) for _ in range(3)] == uninterrupted
    restarted = module()  # without the saved state the draws start over
    torch.manual_seed(0)
    assert [float(restarted.head.mined_loss(emb, labels)) for _ in range(3)] != uninterrupted
