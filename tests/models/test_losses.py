"""Each loss against a brute-force loop over all pairs or triplets."""

import itertools
import math

import pytest
import torch

from lightning_siamese.models.losses import (
    ContrastiveLoss,
    MinedContrastiveLoss,
    MinedTripletLoss,
    PrototypicalLoss,
    TripletLoss,
)
from lightning_siamese.models.miners import pair_miner, triplet_miner

DTYPES = [torch.float32, torch.float64]


def mined_triplet(margin: float, mining: str, squared: bool = False) -> MinedTripletLoss:
    """The loss a ``TripletHead(margin, mining=...)`` trains with."""
    return MinedTripletLoss(margin, triplet_miner(mining, margin), squared)


def mined_contrastive(margin: float, mining: str = "all") -> MinedContrastiveLoss:
    """The loss a ``ContrastiveHead(margin, mining=...)`` trains with."""
    return MinedContrastiveLoss(margin, pair_miner(mining))


def dist(a: torch.Tensor, b: torch.Tensor, squared: bool = False) -> float:
    d2 = sum((float(x) - float(y)) ** 2 for x, y in zip(a, b))
    return d2 if squared else math.sqrt(d2)


def batch(dtype: torch.dtype, n_classes: int = 4, per_class: int = 3, dim: int = 5, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n_classes).repeat_interleave(per_class)
    return torch.randn(len(labels), dim, generator=g, dtype=dtype), labels


@pytest.mark.parametrize("dtype", DTYPES)
def test_contrastive_matches_the_formula(dtype: torch.dtype) -> None:
    g = torch.Generator().manual_seed(1)
    a, b = torch.randn(8, 4, generator=g, dtype=dtype), torch.randn(8, 4, generator=g, dtype=dtype)
    same = torch.tensor([1, 0, 1, 0, 0, 1, 0, 0])
    m = 2.0
    expected = sum(dist(x, y) ** 2 if s else max(0.0, m - dist(x, y)) ** 2 for x, y, s in zip(a, b, same)) / 8
    assert ContrastiveLoss(m)(a, b, same).item() == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("squared", [False, True])
def test_triplet_matches_the_formula(dtype: torch.dtype, squared: bool) -> None:
    g = torch.Generator().manual_seed(2)
    a, p, n = (torch.randn(10, 3, generator=g, dtype=dtype) for _ in range(3))
    m = 0.4
    expected = sum(max(0.0, dist(x, y, squared) - dist(x, z, squared) + m) for x, y, z in zip(a, p, n)) / 10
    assert TripletLoss(m, squared)(a, p, n).item() == pytest.approx(expected, rel=1e-5)


def brute_triplets(emb: torch.Tensor, labels: torch.Tensor, squared: bool = False):
    """All valid (a, p, n) with their distances."""
    out = []
    for a, p, n in itertools.product(range(len(labels)), repeat=3):
        if a != p and labels[a] == labels[p] and labels[a] != labels[n]:
            out.append((a, p, n, dist(emb[a], emb[p], squared), dist(emb[a], emb[n], squared)))
    return out


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("squared", [False, True])
def test_batch_all_matches_brute_force(dtype: torch.dtype, squared: bool) -> None:
    emb, labels = batch(dtype)
    m = 1.0
    terms = [max(0.0, ap - an + m) for *_, ap, an in brute_triplets(emb, labels, squared)]
    active = [t for t in terms if t > 0]
    loss = mined_triplet(m, "all", squared)
    assert loss(emb, labels).item() == pytest.approx(sum(active) / len(active), rel=1e-5)
    assert loss.last_active_fraction == pytest.approx(len(active) / len(terms))


@pytest.mark.parametrize("dtype", DTYPES)
def test_batch_hard_matches_brute_force(dtype: torch.dtype) -> None:
    emb, labels = batch(dtype)
    m = 0.5
    terms = []
    for a in range(len(labels)):
        pos = [dist(emb[a], emb[p]) for p in range(len(labels)) if p != a and labels[p] == labels[a]]
        neg = [dist(emb[a], emb[n]) for n in range(len(labels)) if labels[n] != labels[a]]
        terms.append(max(0.0, max(pos) - min(neg) + m))
    assert mined_triplet(m, "hard")(emb, labels).item() == pytest.approx(sum(terms) / len(terms), rel=1e-5)


@pytest.mark.parametrize("dtype", DTYPES)
def test_semihard_matches_brute_force(dtype: torch.dtype) -> None:
    emb, labels = batch(dtype, seed=3)
    m = 0.5
    terms = []
    for a, p in itertools.permutations(range(len(labels)), 2):
        if labels[a] != labels[p]:
            continue
        ap = dist(emb[a], emb[p])
        negs = [dist(emb[a], emb[n]) for n in range(len(labels)) if labels[n] != labels[a]]
        farther = [x for x in negs if x > ap]
        chosen = min(farther) if farther else max(negs)
        terms.append(max(0.0, ap - chosen + m))
    assert mined_triplet(m, "semihard")(emb, labels).item() == pytest.approx(sum(terms) / len(terms), rel=1e-5)


def semihard_negative(emb: torch.Tensor, labels: torch.Tensor, a: int, p: int) -> int:
    """FaceNet's semi-hard negative of (a, p): the nearest negative farther than p, else the farthest."""
    negs = [n for n in range(len(labels)) if labels[n] != labels[a]]
    farther = [n for n in negs if dist(emb[a], emb[n]) > dist(emb[a], emb[p])]
    return (
        min(farther, key=lambda n: dist(emb[a], emb[n])) if farther else max(negs, key=lambda n: dist(emb[a], emb[n]))
    )


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mining", ["all", "hard", "semihard"])
def test_mined_contrastive_matches_brute_force(dtype: torch.dtype, mining: str) -> None:
    emb, labels = batch(dtype, seed=4)
    m = 3.0
    n = len(labels)
    if mining == "all":
        pos = [dist(emb[i], emb[j]) for i, j in itertools.combinations(range(n), 2) if labels[i] == labels[j]]
        neg = [dist(emb[i], emb[j]) for i, j in itertools.combinations(range(n), 2) if labels[i] != labels[j]]
    elif mining == "hard":
        pos = [max(dist(emb[a], emb[p]) for p in range(n) if p != a and labels[p] == labels[a]) for a in range(n)]
        neg = [min(dist(emb[a], emb[q]) for q in range(n) if labels[q] != labels[a]) for a in range(n)]
    else:  # every positive pair (a, p), and per positive pair its semi-hard negative
        pairs = [(a, p) for a, p in itertools.permutations(range(n), 2) if labels[a] == labels[p]]
        pos = [dist(emb[a], emb[p]) for a, p in pairs]
        neg = [dist(emb[a], emb[semihard_negative(emb, labels, a, p)]) for a, p in pairs]
    expected = sum(d**2 for d in pos) / len(pos) + sum(max(0.0, m - d) ** 2 for d in neg) / len(neg)
    loss = mined_contrastive(m, mining)
    assert loss(emb, labels).item() == pytest.approx(expected, rel=1e-5)
    assert float(loss.last_active_fraction) == pytest.approx(sum(d < m for d in neg) / len(neg))


def test_contrastive_semihard_negatives_are_not_the_hardest() -> None:
    """Semi-hard pairs skip negatives nearer than the positive when a farther one exists."""
    labels = torch.tensor([0, 0, 1, 1])
    emb = torch.tensor([[0.0], [2.0], [1.2], [3.5]], dtype=torch.float64)  # points on a line
    # Positive pairs (0, 1), (1, 0) are 2 apart, (2, 3), (3, 2) 2.3 apart. Their semi-hard negatives:
    # 3.5 away (the nearest beyond 2), 1.5 (none beyond 2: the farthest), 1.2 (likewise), 3.5.
    assert [semihard_negative(emb, labels, a, p) for a, p in [(0, 1), (1, 0), (2, 3), (3, 2)]] == [3, 3, 0, 0]
    positives = (2.0**2 + 2.0**2 + 2.3**2 + 2.3**2) / 4
    semihard = mined_contrastive(5.0, "semihard")(emb, labels).item()
    assert semihard == pytest.approx(
        positives + ((5 - 3.5) ** 2 + (5 - 1.5) ** 2 + (5 - 1.2) ** 2 + (5 - 3.5) ** 2) / 4
    )
    hard = mined_contrastive(5.0, "hard")(emb, labels).item()  # nearest negatives: 1.2, 0.8, 0.8, 1.5 away
    assert hard == pytest.approx(positives + ((5 - 1.2) ** 2 + (5 - 0.8) ** 2 + (5 - 0.8) ** 2 + (5 - 1.5) ** 2) / 4)


def test_zero_loss_when_classes_are_far_apart() -> None:
    labels = torch.arange(3).repeat_interleave(2)
    emb = (labels[:, None].double() * 100.0) * torch.ones(1, 4, dtype=torch.float64)
    for mining in ("all", "hard", "semihard"):
        loss = mined_triplet(0.2, mining)
        assert loss(emb, labels).item() == 0.0
        assert loss.last_active_fraction == 0.0
    for mining in ("all", "hard", "semihard"):
        assert mined_contrastive(1.0, mining)(emb, labels).item() == pytest.approx(
            0.0, abs=1e-9
        )  # d = sqrt(eps) for twins


def test_all_active_when_everything_collapses() -> None:
    labels = torch.arange(3).repeat_interleave(2)
    emb = torch.zeros(6, 4, requires_grad=True)
    loss = mined_triplet(0.3, "all")
    value = loss(emb, labels)
    assert value.item() == pytest.approx(0.3, abs=1e-5)
    assert loss.last_active_fraction == 1.0
    value.backward()
    assert torch.isfinite(emb.grad).all()  # the epsilon keeps sqrt differentiable at 0
    pair = ContrastiveLoss(1.0)(emb[:2], emb[2:4], torch.zeros(2))
    assert pair.item() == pytest.approx(1.0, abs=1e-5)


def test_batches_without_valid_triplets_give_zero_with_a_graph() -> None:
    emb = torch.randn(4, 3, requires_grad=True)
    for mining in ("all", "hard", "semihard"):
        value = mined_triplet(0.2, mining)(emb, torch.arange(4))  # no positives
        assert value.item() == 0.0 and value.requires_grad


def test_bad_margins_and_mining_are_rejected() -> None:
    for make in (lambda: ContrastiveLoss(0.0), lambda: TripletLoss(-1.0), lambda: MinedTripletLoss(-0.1)):
        with pytest.raises(ValueError, match="margin"):
            make()
    # A triplet margin of 0 is a loss (the MNIST seed's sweep starts there): only the order of distances counts.
    a, p, n = torch.zeros(2, 3), torch.tensor([[1.0, 0, 0], [2.0, 0, 0]]), torch.tensor([[2.0, 0, 0], [1.0, 0, 0]])
    assert TripletLoss(0.0)(a, p, n).item() == pytest.approx(0.5) and MinedTripletLoss(0.0).margin == 0.0
    with pytest.raises(ValueError, match="mining must be one of"):
        triplet_miner("random", 0.2)
    with pytest.raises(ValueError, match=r"mining must be one of.*contrastive"):
        pair_miner("random")
    # Batch-all's closed form takes its triplets as active: the miner's margin must be the loss's.
    with pytest.raises(ValueError, match=r"margin 0.5 differs from the loss's 0.2"):
        MinedTripletLoss(0.2, triplet_miner("all", 0.5))(*batch(torch.float64))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shots", [1, 2])
def test_prototypical_loss_matches_a_loop(dtype: torch.dtype, shots: int) -> None:
    embeddings, labels = batch(dtype, n_classes=4, per_class=3)
    perm = torch.randperm(len(labels), generator=torch.Generator().manual_seed(2))
    embeddings, labels = embeddings[perm], labels[perm]  # classes interleaved in the batch
    classes = sorted(set(labels.tolist()))
    members = {c: [i for i in range(len(labels)) if labels[i] == c] for c in classes}
    prototypes = {c: embeddings[members[c][:shots]].mean(0) for c in classes}
    terms, correct = [], 0
    for c in classes:
        for q in members[c][shots:]:
            logits = [-dist(embeddings[q], prototypes[o], squared=True) for o in classes]
            log_z = math.log(sum(math.exp(v) for v in logits))
            terms.append(log_z - logits[classes.index(c)])
            correct += max(range(len(classes)), key=lambda i: logits[i]) == classes.index(c)
    loss_fn = PrototypicalLoss(shots)
    assert loss_fn(embeddings, labels).item() == pytest.approx(sum(terms) / len(terms), rel=1e-5)
    assert loss_fn.last_accuracy == pytest.approx(correct / len(terms))


def test_prototypical_loss_needs_equal_classes_with_queries() -> None:
    embeddings = torch.randn(7, 3)
    with pytest.raises(ValueError, match=r"counts \[4, 3\]"):
        PrototypicalLoss()(embeddings, torch.tensor([0, 0, 0, 0, 1, 1, 1]))
    with pytest.raises(ValueError, match="more than shots=3"):
        PrototypicalLoss(3)(embeddings[:6], torch.tensor([0, 0, 0, 1, 1, 1]))
    with pytest.raises(ValueError, match="shots must be >= 1"):
        PrototypicalLoss(0)
