"""Baselines through the evaluation code: MHD against hand-made point sets and a brute-force loop, pixel NN, chance."""

from __future__ import annotations

import math

import pytest
import torch

from lightning_siamese.data.samplers.episodes import Episodes
from lightning_siamese.evaluation.baselines import (
    ChanceSimilarity,
    ink_points,
    make_baseline,
    mhd_similarity,
    modified_hausdorff,
    pairwise_mhd,
)


def image(points: list[tuple[int, int]], size: int = 12) -> torch.Tensor:
    """A uint8 ``[1, size, size]`` image, ink (255) at the given (row, column) points."""
    out = torch.zeros(1, size, size, dtype=torch.uint8)
    for r, c in points:
        out[0, r, c] = 255
    return out


def sets(*images: torch.Tensor) -> torch.Tensor:
    return ink_points(torch.stack(images))


def lake_mhd(a: list[tuple[int, int]], b: list[tuple[int, int]]) -> float:
    """Lake's ModHausdorffDistance on centred point lists, as plain loops."""

    def centred(points):
        my, mx = sum(p[0] for p in points) / len(points), sum(p[1] for p in points) / len(points)
        return [(y - my, x - mx) for y, x in points]

    a, b = centred(a), centred(b)
    mean_a = sum(min(math.dist(p, q) for q in b) for p in a) / len(a)
    mean_b = sum(min(math.dist(p, q) for p in a) for q in b) / len(b)
    return max(mean_a, mean_b)


def test_ink_points_are_centred_and_padded() -> None:
    points = sets(image([(2, 3), (4, 3), (6, 3)]), image([(0, 0)]), image([]))
    assert points.shape == (3, 3, 3)
    assert points[0, :, 2].tolist() == [1, 1, 1] and points[1, :, 2].tolist() == [1, 0, 0]
    assert points[0, :, :2].tolist() == [[-2, 0], [0, 0], [2, 0]]
    assert points[2, :, 2].sum() == 0
    faint = torch.full((1, 1, 12, 12), 127, dtype=torch.uint8)
    assert ink_points(faint)[0, :, 2].sum() == 0  # below the threshold: no ink


def test_known_distances() -> None:
    line = [(5, c) for c in range(2, 7)]
    shape = [(1, 1), (1, 2), (2, 2), (3, 4)]
    shifted = [(r + 5, c + 3) for r, c in shape]
    ends = [(5, 2), (5, 6)]
    cost = modified_hausdorff(
        sets(image(shape), image(shape), image(ends)), sets(image(shape), image(shifted), image(line))
    )
    # Identical shapes cost 0, a shifted copy too (each set is centred); the two ends of a
    # 5-point line: ends to line 0, line to ends (0 + 1 + 2 + 1 + 0) / 5 = 0.8.
    assert cost.tolist() == pytest.approx([0.0, 0.0, 0.8])


def test_matches_a_brute_force_loop_and_is_symmetric() -> None:
    g = torch.Generator().manual_seed(0)
    point_lists = [
        sorted({(int(r), int(c)) for r, c in torch.randint(0, 16, (int(n), 2), generator=g)})
        for n in torch.randint(1, 40, (12,), generator=g)
    ]
    images = torch.stack([image(p, 16) for p in point_lists])
    points = ink_points(images)
    i, j = torch.randint(12, (40,), generator=g), torch.randint(12, (40,), generator=g)
    expected = torch.tensor([lake_mhd(point_lists[a], point_lists[b]) for a, b in zip(i, j)])
    assert torch.allclose(pairwise_mhd(points, points, i, j), expected.float(), atol=1e-5)
    assert torch.allclose(pairwise_mhd(points, points, j, i), expected.float(), atol=1e-5)
    # Tiny chunks (one pair each) give the same as one big chunk.
    assert torch.allclose(
        pairwise_mhd(points, points, i, j, budget=1), pairwise_mhd(points, points, i, j, budget=1 << 30)
    )


def test_empty_images() -> None:
    blank, dot = image([]), image([(3, 3)])
    cost = modified_hausdorff(sets(blank, blank, dot), sets(blank, dot, blank))
    assert cost[0] == 0 and cost[1] > 1000 and cost[2] > 1000


def test_similarity_broadcasts_like_a_head() -> None:
    g = torch.Generator().manual_seed(1)
    images = (torch.rand(6, 1, 10, 10, generator=g) > 0.8).to(torch.uint8) * 255
    rows = ink_points(images).flatten(1)
    scores = mhd_similarity(rows[:2].reshape(2, 1, -1), rows[2:].reshape(1, 4, -1))
    assert scores.shape == (2, 4)
    points = ink_points(images)
    for a in range(2):
        for b in range(4):
            assert scores[a, b] == pytest.approx(
                -float(modified_hausdorff(points[a : a + 1], points[2 + b : 3 + b])[0])
            )


def episodes_over(n_images: int, n_way: int, tasks: int, seed: int = 0) -> Episodes:
    """Random N-way 1-shot episodes over images ``2c`` (shot) and ``2c + 1`` (query) of class c."""
    g = torch.Generator().manual_seed(seed)
    classes = torch.stack([torch.randperm(n_images // 2, generator=g)[:n_way] for _ in range(tasks)])
    return Episodes(support=(2 * classes)[..., None], query=(2 * classes + 1)[..., None], classes=classes, seed=seed)


def test_pixel_nearest_neighbour_picks_the_identical_image() -> None:
    g = torch.Generator().manual_seed(2)
    images = torch.randint(0, 256, (10, 1, 8, 8), generator=g, dtype=torch.uint8).repeat_interleave(2, dim=0)
    assert make_baseline("pixel").accuracies(images, episodes_over(20, 5, 30)).tolist() == [100.0] * 30


def test_mhd_picks_the_shifted_copy() -> None:
    g = torch.Generator().manual_seed(3)
    shapes = [(torch.rand(1, 10, 10, generator=g) > 0.7).to(torch.uint8) * 255 for _ in range(8)]
    images = torch.stack(
        [
            torch.cat([torch.nn.functional.pad(s, (0, 6, 0, 6)), torch.nn.functional.pad(s, (6, 0, 3, 3))])
            for s in shapes
        ]
    )
    images = images.reshape(16, 1, 16, 16)  # image 2c is shape c at the top left, 2c + 1 the same shape moved
    assert make_baseline("mhd").accuracies(images, episodes_over(16, 4, 20)).tolist() == [100.0] * 20


def test_chance_is_repeatable_and_near_one_in_n() -> None:
    images = torch.zeros(100, 1, 4, 4, dtype=torch.uint8)
    episodes = episodes_over(100, 5, 4000)
    first = make_baseline("chance", seed=7).accuracies(images, episodes)
    assert torch.equal(first, make_baseline("chance", seed=7).accuracies(images, episodes))
    assert not torch.equal(first, make_baseline("chance", seed=8).accuracies(images, episodes))
    assert abs(float(first.mean()) - 20.0) < 1.5  # 1/N; the standard error is about 0.28
    scores = ChanceSimilarity(0)(torch.zeros(3, 1, 1), torch.zeros(1, 4, 1))
    assert scores.shape == (3, 4) and ((scores >= 0) & (scores < 1)).all()


def test_unknown_baseline_is_named() -> None:
    with pytest.raises(
        ValueError, match=r"unknown baseline 'hog'; expected one of \('mhd', 'pixel', 'knn', 'chance'\)"
    ):
        make_baseline("hog")
