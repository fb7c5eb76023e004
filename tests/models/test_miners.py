"""Each miner's choice against a brute-force loop, and the mined losses' gradients against losses
built triplet by triplet (or pair by pair) with autograd."""

import itertools

import pytest
import torch

from lightning_siamese.models.distances import euclidean, pairwise_distances
from lightning_siamese.models.losses import MinedContrastiveLoss, MinedTripletLoss
from lightning_siamese.models.miners import (
    ActiveTriplets,
    AllPairsMiner,
    BatchAllMiner,
    BatchHardMiner,
    CappedTriplets,
    HardPairsMiner,
    SemiHardMiner,
    TripletCap,
    TripletPairsMiner,
    Triplets,
    pair_miner,
    triplet_miner,
)


def batch(seed: int = 0, n_classes: int = 4, per_class: int = 3, dim: int = 5, single: bool = False):
    """Shuffled labels (``single`` adds a class of one image: an anchor without positives)."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n_classes).repeat_interleave(per_class)
    if single:
        labels = torch.cat([labels, torch.tensor([n_classes])])
    labels = labels[torch.randperm(len(labels), generator=g)]
    return torch.randn(len(labels), dim, generator=g, dtype=torch.float64), labels


def loop_distances(emb: torch.Tensor) -> list[list[float]]:
    return [[float(euclidean(x, y)) for y in emb] for x in emb]


def positives(labels: torch.Tensor, a: int) -> list[int]:
    return [p for p in range(len(labels)) if p != a and labels[p] == labels[a]]


def negatives(labels: torch.Tensor, a: int) -> list[int]:
    return [n for n in range(len(labels)) if labels[n] != labels[a]]


def as_list(triplets: Triplets) -> list[tuple[int, int, int]]:
    return list(zip(triplets.anchor.tolist(), triplets.positive.tolist(), triplets.negative.tolist()))


def loop_semihard(d: list[list[float]], labels: torch.Tensor) -> list[tuple[int, int, int]]:
    out = []
    for a in range(len(labels)):
        negs = negatives(labels, a)
        for p in positives(labels, a):
            if not negs:
                continue
            farther = [n for n in negs if d[a][n] > d[a][p]]
            out.append((a, p, min(farther, key=lambda n: d[a][n]) if farther else max(negs, key=lambda n: d[a][n])))
    return out


# --- miners against loops ------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("margin", [0.0, 0.5, 2.0])
def test_batch_all_counts_exactly_the_active_triplets(seed: int, margin: float) -> None:
    emb, labels = batch(seed, single=True)
    d = loop_distances(emb)
    valid = [(a, p, n) for a in range(len(labels)) for p in positives(labels, a) for n in negatives(labels, a)]
    active = [(a, p, n) for a, p, n in valid if d[a][n] < d[a][p] + margin]
    # Ranked by (a, p), then a's negatives nearest first.
    active.sort(key=lambda t: (t[0], t[1], d[t[0]][t[2]]))
    mined = BatchAllMiner(margin)(pairwise_distances(emb), labels)
    assert isinstance(mined, ActiveTriplets)
    assert mined.valid == len(valid) and len(mined) == len(active)
    assert as_list(mined.decode(torch.arange(len(mined)))) == active
    dist = pairwise_distances(emb)
    expected = sum(float(dist[a, p] - dist[a, n]) for a, p, n in active)
    assert float(mined.sum_of_differences(dist)) == pytest.approx(expected, rel=1e-12, abs=1e-12)


@pytest.mark.parametrize("seed", range(3))
def test_batch_hard_picks_the_farthest_positive_and_nearest_negative(seed: int) -> None:
    emb, labels = batch(seed, single=True)
    d = loop_distances(emb)
    expected = [
        (a, max(positives(labels, a), key=lambda p: d[a][p]), min(negatives(labels, a), key=lambda n: d[a][n]))
        for a in range(len(labels))
        if positives(labels, a) and negatives(labels, a)
    ]
    assert as_list(BatchHardMiner()(pairwise_distances(emb), labels)) == expected


@pytest.mark.parametrize("seed", range(3))
def test_semihard_picks_facenets_negative_per_positive_pair(seed: int) -> None:
    emb, labels = batch(seed, single=True)
    assert as_list(SemiHardMiner()(pairwise_distances(emb), labels)) == loop_semihard(loop_distances(emb), labels)


@pytest.mark.parametrize("seed", range(3))
def test_pair_miners_match_loops(seed: int) -> None:
    emb, labels = batch(seed, single=True)
    d, n = loop_distances(emb), len(labels)
    pairs = AllPairsMiner()(pairwise_distances(emb), labels)
    upper = list(itertools.combinations(range(n), 2))
    assert list(zip(pairs.positive_anchor.tolist(), pairs.positive.tolist())) == [
        (i, j) for i, j in upper if labels[i] == labels[j]
    ]
    assert list(zip(pairs.negative_anchor.tolist(), pairs.negative.tolist())) == [
        (i, j) for i, j in upper if labels[i] != labels[j]
    ]
    hard = HardPairsMiner()(pairwise_distances(emb), labels)
    assert list(zip(hard.positive_anchor.tolist(), hard.positive.tolist())) == [
        (a, max(positives(labels, a), key=lambda p: d[a][p])) for a in range(n) if positives(labels, a)
    ]
    assert list(zip(hard.negative_anchor.tolist(), hard.negative.tolist())) == [
        (a, min(negatives(labels, a), key=lambda q: d[a][q])) for a in range(n)
    ]
    semi = pair_miner("semihard")(pairwise_distances(emb), labels)
    triplets = loop_semihard(d, labels)
    assert list(zip(semi.positive_anchor.tolist(), semi.positive.tolist())) == [(a, p) for a, p, _ in triplets]
    assert list(zip(semi.negative_anchor.tolist(), semi.negative.tolist())) == [(a, q) for a, _, q in triplets]


def test_batch_all_triplets_spell_out_as_pairs() -> None:
    emb, labels = batch(1)
    d = pairwise_distances(emb)
    mined = BatchAllMiner(1.0)(d, labels)
    pairs = TripletPairsMiner(BatchAllMiner(1.0))(d, labels)
    assert as_list(Triplets(pairs.positive_anchor, pairs.positive, pairs.negative)) == as_list(
        mined.decode(torch.arange(len(mined)))
    )


# --- the cap composes with any miner -------------------------------------------------------------


@pytest.mark.parametrize("miner", [BatchAllMiner(1.0), BatchHardMiner(), SemiHardMiner()], ids=type)
def test_the_cap_samples_distinct_triplets_of_any_miner(miner) -> None:
    emb, labels = batch(2)
    d = pairwise_distances(emb)
    mined = miner(d, labels)
    everything = set(as_list(mined.decode(torch.arange(len(mined))) if isinstance(mined, ActiveTriplets) else mined))
    capped = TripletCap(miner, 4, seed=0)(d, labels)
    assert isinstance(capped, CappedTriplets) and len(capped.mined) == len(everything)
    sample = as_list(capped.sample)
    assert len(sample) == len(set(sample)) == 4 and set(sample) <= everything
    kept = TripletCap(miner, len(everything), seed=0)(d, labels)  # a cap at the count keeps them all
    assert type(kept) is type(mined) and len(kept) == len(mined)


def test_a_cap_of_a_cap_samples_the_inner_sample() -> None:
    emb, labels = batch(2)
    d = pairwise_distances(emb)
    inner = TripletCap(SemiHardMiner(), 10, seed=1)
    outer = TripletCap(TripletCap(SemiHardMiner(), 10, seed=1), 3, seed=2)
    inner_sample = set(as_list(inner(d, labels).sample))
    capped = outer(d, labels)
    assert len(capped.sample) == 3
    assert set(as_list(capped.sample)) <= inner_sample
    assert len(capped.mined) == len(SemiHardMiner()(d, labels))  # the active fraction is of all mined


def test_capped_semihard_pairs_are_pairs_of_the_sample() -> None:
    emb, labels = batch(3)
    d = pairwise_distances(emb)
    sample = TripletCap(SemiHardMiner(), 5, seed=4)(d, labels).sample
    pairs = TripletPairsMiner(TripletCap(SemiHardMiner(), 5, seed=4))(d, labels)
    assert torch.equal(pairs.positive_anchor, sample.anchor) and torch.equal(pairs.negative, sample.negative)


# --- the mined losses' values and gradients against autograd loops ---------------------------------


def looped_triplet_loss(emb: torch.Tensor, triplets: list[tuple[int, int, int]], margin: float) -> torch.Tensor:
    terms = [torch.relu(euclidean(emb[a], emb[p]) - euclidean(emb[a], emb[n]) + margin) for a, p, n in triplets]
    return torch.stack(terms).mean()


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("mining", ["all", "hard", "semihard"])
def test_mined_triplet_gradients_match_a_loop(seed: int, mining: str) -> None:
    emb, labels = batch(seed, single=True)
    emb.requires_grad_()
    margin = 1.0
    d = loop_distances(emb.detach())
    if mining == "all":  # the mean over the active triplets
        triplets = [
            (a, p, n)
            for a in range(len(labels))
            for p in positives(labels, a)
            for n in negatives(labels, a)
            if d[a][n] < d[a][p] + margin
        ]
    elif mining == "hard":
        triplets = [
            (a, max(positives(labels, a), key=lambda p: d[a][p]), min(negatives(labels, a), key=lambda n: d[a][n]))
            for a in range(len(labels))
            if positives(labels, a)
        ]
    else:
        triplets = loop_semihard(d, labels)
    expected = looped_triplet_loss(emb, triplets, margin)
    value = MinedTripletLoss(margin, triplet_miner(mining, margin))(emb, labels)
    torch.testing.assert_close(value, expected)
    torch.testing.assert_close(torch.autograd.grad(value, emb)[0], torch.autograd.grad(expected, emb)[0])


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("mining", ["all", "hard", "semihard"])
def test_mined_contrastive_gradients_match_a_loop(seed: int, mining: str) -> None:
    emb, labels = batch(seed, single=True)
    emb.requires_grad_()
    margin, n = 3.0, len(labels)
    d = loop_distances(emb.detach())
    if mining == "all":
        upper = list(itertools.combinations(range(n), 2))
        pos = [(i, j) for i, j in upper if labels[i] == labels[j]]
        neg = [(i, j) for i, j in upper if labels[i] != labels[j]]
    elif mining == "hard":
        pos = [(a, max(positives(labels, a), key=lambda p: d[a][p])) for a in range(n) if positives(labels, a)]
        neg = [(a, min(negatives(labels, a), key=lambda q: d[a][q])) for a in range(n)]
    else:
        triplets = loop_semihard(d, labels)
        pos, neg = [(a, p) for a, p, _ in triplets], [(a, q) for a, _, q in triplets]
    expected = (
        torch.stack([euclidean(emb[i], emb[j]) ** 2 for i, j in pos]).mean()
        + torch.stack([torch.relu(margin - euclidean(emb[i], emb[j])) ** 2 for i, j in neg]).mean()
    )
    value = MinedContrastiveLoss(margin, pair_miner(mining))(emb, labels)
    torch.testing.assert_close(value, expected)
    torch.testing.assert_close(torch.autograd.grad(value, emb)[0], torch.autograd.grad(expected, emb)[0])
