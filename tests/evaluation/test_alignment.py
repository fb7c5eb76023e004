"""Test-time alignment: the views, the best-over-view-pairs similarity, and the report that uses them."""

from __future__ import annotations

import json
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
import torch.nn.functional as F

from lightning_siamese.callbacks.report import OneShotReport, StageRecords
from lightning_siamese.data.samplers.episodes import Episodes
from lightning_siamese.data.transforms.views import AlignmentViews
from lightning_siamese.evaluation.oneshot import (
    AlignedSimilarity,
    episode_accuracies,
    evaluate_episodes,
)
from lightning_siamese.models import KochHead, SiameseModule
from lightning_siamese.models.distances import pairwise_cosine
from lightning_siamese.models.embedding import embed_aligned, embed_all
from tests.tiny import tiny_data, tiny_encoder


def cosine(first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
    return (F.normalize(first, dim=-1) * F.normalize(second, dim=-1)).sum(-1)


def test_the_default_views_are_the_shift_grid_at_three_scales_and_four_rotations() -> None:
    views = AlignmentViews()
    matrices = views.matrices()
    assert len(views) == 31 and matrices.shape == (31, 2, 3)
    identity = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    assert sum(torch.allclose(m, identity) for m in matrices) == 1
    shifts = {(float(m[0, 2]), float(m[1, 2])) for m in matrices}
    assert shifts == {(x, y) for x in (-1.0, 0.0, 1.0) for y in (-1.0, 0.0, 1.0)}
    rotations = matrices[27:]  # about the centre, unscaled
    assert torch.allclose(torch.linalg.det(rotations[:, :, :2]), torch.ones(4), atol=1e-6)
    assert torch.rad2deg(torch.atan2(rotations[:, 1, 0], rotations[:, 0, 0])).round().tolist() == [-8, -4, 4, 8]


def test_views_move_the_image_and_the_identity_view_keeps_it() -> None:
    images = torch.rand(2, 1, 12, 12)
    views = AlignmentViews(shifts=(0, 1), scales=(1.0,), angles=())
    out = views.apply(images)  # order: (dx, dy) = (0, 0), (1, 0), (0, 1), (1, 1)
    assert len(out) == 4
    torch.testing.assert_close(out[0], images, atol=1e-5, rtol=0)
    right = torch.zeros_like(images)
    right[..., 1:] = images[..., :-1]  # moved 1 px right; pixels from outside are 0
    torch.testing.assert_close(out[1], right, atol=1e-5, rtol=0)
    down = torch.zeros_like(images)
    down[..., 1:, :] = images[..., :-1, :]
    torch.testing.assert_close(out[2], down, atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"shifts": (1, 2)}, r"must include the image itself: shifts need 0 and scales 1.0, got shifts \[1, 2\]"),
        ({"scales": (0.9, 1.1)}, r"scales 1.0, got shifts \[-1, 0, 1\] and scales \[0.9, 1.1\]"),
        ({"scales": (1.0, -1.0)}, r"scales must be > 0, got \[1.0, -1.0\]"),
    ],
)
def test_views_without_the_image_itself_or_with_a_bad_scale_are_refused(options: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        AlignmentViews(**options)


def brute_aligned(first: torch.Tensor, second: torch.Tensor, symmetries: int, v: int) -> torch.Tensor:
    """Every row of ``first`` against every row of ``second``: the mean over symmetries of the best view pair, by loops."""
    d = first.shape[-1] // (symmetries * v)

    def view(row: torch.Tensor, s: int, i: int) -> torch.Tensor:
        return row[(s * v + i) * d : (s * v + i + 1) * d]

    return torch.tensor(
        [
            [
                sum(
                    max(float(cosine(view(a, s, i), view(b, s, j))) for i in range(v) for j in range(v))
                    for s in range(symmetries)
                )
                / symmetries
                for b in second
            ]
            for a in first
        ]
    )


@pytest.mark.parametrize("symmetries", [1, 2])
def test_aligned_similarity_averages_the_best_pair_of_views_over_symmetries_and_broadcasts(symmetries: int) -> None:
    torch.manual_seed(0)
    v, d = 3, 5
    first, second = torch.randn(4, symmetries * v * d), torch.randn(6, symmetries * v * d)
    brute = brute_aligned(first, second, symmetries, v)
    for block in (1 << 25, 1):  # all pairs at once, and one pair per block
        aligned = AlignedSimilarity(pairwise_cosine, v, symmetries, max_elements=block)
        torch.testing.assert_close(aligned(first[:, None], second[None]), brute)
        episode_shaped = aligned(first.reshape(2, 2, 1, -1), second.reshape(2, 1, 3, -1))  # [T, M, 1, .] x [T, 1, N, .]
        torch.testing.assert_close(episode_shaped, torch.stack([brute[:2, :3], brute[2:, 3:]]))


def test_symmetries_turn_and_mirror_the_image_before_its_views() -> None:
    images = torch.rand(2, 1, 12, 12)
    views = AlignmentViews(shifts=(0, 1), scales=(1.0,), angles=(), rotations=True, mirrors=True)
    assert (views.views, views.symmetries, len(views)) == (4, 8, 32)
    assert str(views) == "4 views x 8 symmetries" and str(AlignmentViews()) == "31 views"
    out = views.apply(
        images
    )  # symmetry by symmetry (upright, then 1-3 quarter-turns; then the same mirrored), 4 views each
    assert len(out) == 32
    torch.testing.assert_close(out[0], images, atol=1e-5, rtol=0)
    torch.testing.assert_close(out[4], torch.rot90(images, 1, (-2, -1)), atol=1e-5, rtol=0)
    torch.testing.assert_close(out[16], images.flip(-1), atol=1e-5, rtol=0)
    torch.testing.assert_close(out[28], torch.rot90(images.flip(-1), 3, (-2, -1)), atol=1e-5, rtol=0)
    torch.testing.assert_close(
        out[5], views.apply(torch.rot90(images, 1, (-2, -1)))[1], atol=1e-5, rtol=0
    )  # then shifted
    assert len(AlignmentViews(rotations=True)) == 4 * 31 and len(AlignmentViews(mirrors=True)) == 2 * 31


@pytest.mark.parametrize("views", [AlignmentViews(), AlignmentViews(mirrors=True), AlignmentViews(rotations=True)])
def test_alignment_needs_square_images(views: AlignmentViews) -> None:
    with pytest.raises(ValueError, match="test-time alignment needs square images, got 12x10"):
        views.apply(torch.rand(1, 1, 12, 10))


@pytest.mark.parametrize(
    "views",
    [
        AlignmentViews(),
        AlignmentViews(shifts=(0, 1, 2), scales=(0.9, 1.0), angles=(5.0,), mirrors=True),
        AlignmentViews(shifts=(-2, -1, 0), scales=(1.0, 1.1), angles=()),
    ],
)
def test_identity_is_the_index_of_the_unmoved_upright_view(views: AlignmentViews) -> None:
    images = torch.rand(2, 1, 12, 12)
    out = views.apply(images)
    unmoved = [i for i, view in enumerate(out) if torch.allclose(view, images, atol=1e-5)]
    assert unmoved == [views.identity]
    embedded = views.embed(lambda x: x.flatten(1), images)  # the views side by side
    assert embedded.shape == (2, len(views) * 144)
    torch.testing.assert_close(
        embedded.unflatten(-1, (len(views), 144))[:, views.identity], images.flatten(1), atol=1e-5, rtol=0
    )


def test_alignment_matches_a_shifted_drawing_that_plain_pixels_confuse() -> None:
    # Way 0 is an L, way 1 a reversed L; each query is its way's drawing moved 1 px right. The
    # first query shares its whole bar with way 1 and so picks it on raw pixels; aligned, each
    # query meets its own drawing exactly.
    images = torch.zeros(4, 1, 12, 12)
    images[0, 0, 3, 2:8] = images[0, 0, 3:9, 2] = 1.0  # way 0
    images[1, 0, 3, 3:9] = images[1, 0, 3:9, 8] = 1.0  # way 1
    images[2, 0, 3, 3:9] = images[2, 0, 3:9, 3] = 1.0  # query of way 0
    images[3, 0, 3, 4:10] = images[3, 0, 3:9, 9] = 1.0  # query of way 1
    episodes = Episodes(
        support=torch.tensor([[[0], [1]]]), query=torch.tensor([[[2], [3]]]), classes=torch.tensor([[0, 1]]), seed=0
    )
    views = AlignmentViews(scales=(1.0,), angles=())
    table = torch.cat([view.flatten(1) for view in views.apply(images)], -1)
    assert episode_accuracies(images.flatten(1), episodes, cosine).tolist() == [50.0]
    assert episode_accuracies(table, episodes, AlignedSimilarity.of(pairwise_cosine, views)).tolist() == [100.0]


def test_the_report_scores_aligned_and_plain_on_the_same_episodes(tiny_omniglot: Path, tmp_path: Path) -> None:
    torch.manual_seed(0)
    data = tiny_data(tiny_omniglot)
    module = SiameseModule(tiny_encoder(), head=KochHead)
    views = AlignmentViews(scales=(1.0,), angles=(-5.0, 5.0), rotations=True)
    report = OneShotReport(tasks=30, seed=5, use_best=False, align=views)
    trainer = pl.Trainer(
        max_epochs=1,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        callbacks=[report],
        default_root_dir=tmp_path,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(module, datamodule=data)
    record = json.loads((tmp_path / "oneshot_val.json").read_text())
    assert record["align"] == {
        "views": 44,
        "shifts": [-1, 0, 1],
        "scales": [1.0],
        "angles": [-5.0, 5.0],
        "rotations": True,
        "mirrors": False,
    }

    evaluation = data.evaluation_set("val", tasks=30, seed=5)
    plain = evaluate_episodes(
        embed_all(module, evaluation.collection.images), evaluation.episodes, module.head.similarity
    )
    table = embed_aligned(module, evaluation.collection.images, views)
    assert table.shape == (len(evaluation.collection.images), 44 * module.encoder.embedding_dim)
    aligned = evaluate_episodes(table, evaluation.episodes, AlignedSimilarity(module.head.pairwise_similarity, 11, 4))
    assert record["without_align"] == {"accuracy": plain.accuracy, "ci95": plain.ci95}
    assert record["accuracy"] == aligned.accuracy and record["tasks"] == 30
    assert module.training  # embedding the views put the module back in training mode


def test_the_report_takes_one_test_time_scheme() -> None:
    with pytest.raises(ValueError, match=r"eval_shift \(1\) or align \(31 views\), not both"):
        OneShotReport(eval_shift=1, align=AlignmentViews())


@pytest.mark.parametrize(("precision", "autocast"), [("32-true", False), ("bf16-mixed", True)])
def test_the_report_embeds_at_the_trainers_precision(
    tiny_omniglot: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, precision: str, autocast: bool
) -> None:
    import lightning_siamese.callbacks.report as callbacks

    seen = []

    def spy(embed):
        def wrapped(*args, **kwargs):
            seen.append(torch.is_autocast_enabled("cpu"))
            return embed(*args, **kwargs)

        return wrapped

    monkeypatch.setattr(callbacks, "embed_all", spy(callbacks.embed_all))
    monkeypatch.setattr(callbacks, "embed_aligned", spy(callbacks.embed_aligned))
    report = OneShotReport(
        tasks=10, seed=5, use_best=False, align=AlignmentViews(shifts=(0,), scales=(1.0,), angles=(), mirrors=True)
    )
    trainer = pl.Trainer(
        max_epochs=1,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        callbacks=[report],
        default_root_dir=tmp_path,
        enable_progress_bar=False,
        enable_model_summary=False,
        precision=precision,
    )
    trainer.fit(SiameseModule(tiny_encoder(), head=KochHead), datamodule=tiny_data(tiny_omniglot))
    assert seen == [autocast, autocast]  # the plain and the aligned embeddings
    record = json.loads((tmp_path / "oneshot_val.json").read_text())
    assert 0.0 <= record["accuracy"] <= 100.0 and record["align"]["views"] == 2


@pytest.mark.parametrize("lake", [False, True], ids=["test episodes", "lake runs"])
def test_lightning_test_with_test_align_scores_aligned_and_keeps_the_plain_numbers(
    lake: bool, tiny_omniglot: Path, tmp_path: Path
) -> None:
    from tests.data.test_lake_runs import make_lake_runs

    runs = make_lake_runs(tmp_path / "all_runs") if lake else None
    views = AlignmentViews(shifts=(0, 1), scales=(1.0,), angles=(6.0,), mirrors=True)  # 5 views x 2 symmetries
    torch.manual_seed(0)
    module = SiameseModule(tiny_encoder(), KochHead)
    data = tiny_data(tiny_omniglot, runs_dir=str(runs) if lake else None, eval_batch_size=16)  # 2 or more test batches
    name = "lake_runs" if lake else "oneshot"

    def test(test_align: AlignmentViews | None, **limits) -> tuple[dict[str, float], pl.Trainer]:
        module.test_align = test_align
        trainer = pl.Trainer(
            accelerator="cpu",
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            default_root_dir=tmp_path / str(test_align is not None),
            callbacks=[StageRecords()],
            **limits,
        )
        trainer.test(module, datamodule=data, verbose=False)
        return {k: float(v) for k, v in trainer.callback_metrics.items()}, trainer

    plain, _ = test(None)
    aligned, trainer = test(views)
    # Images the test steps leave out (limit_test_batches) are embedded under the same views at the epoch's end.
    limited, _ = test(views, limit_test_batches=1)
    assert limited == pytest.approx(aligned, abs=1e-5)
    dataset = trainer.test_dataloaders.dataset
    # The headline is the aligned score of the same episodes, computed here by hand.
    embeddings = embed_aligned(module, dataset.collection.images, views)
    per_task = episode_accuracies(
        embeddings, dataset.episodes, AlignedSimilarity.of(module.head.pairwise_similarity, views)
    )
    assert aligned[f"test/{name}_acc"] == pytest.approx(float(per_task.double().mean()), abs=1e-4)
    # The unaligned accuracy, loss and pair AUROC come from the unmoved view: the plain run's.
    assert aligned[f"test/{name}_acc_unaligned"] == pytest.approx(plain[f"test/{name}_acc"], abs=1e-4)
    assert aligned[f"test/{name}_ci95_unaligned"] == pytest.approx(plain[f"test/{name}_ci95"], abs=1e-4)
    for key in ("test/loss", "test/pair_auroc"):
        assert aligned[key] == pytest.approx(plain[key], abs=1e-5)
    assert module.last_embeddings["test"].shape[-1] == module.encoder.embedding_dim
    assert f"test/{name}_acc_unaligned" not in plain
    if lake:  # Lake's runs' record says how it was scored
        (record,) = (tmp_path / "True").rglob("lake_runs.json")
        written = json.loads(record.read_text())
        assert written["align"] == {
            "views": 10,
            "shifts": [0, 1],
            "scales": [1.0],
            "angles": [6.0],
            "rotations": False,
            "mirrors": True,
        }
        assert written["without_align"]["accuracy"] == pytest.approx(plain["test/lake_runs_acc"], abs=1e-4)
        assert written["accuracy"] == pytest.approx(aligned["test/lake_runs_acc"], abs=1e-4)


def test_test_align_on_a_verification_data_module_is_an_error_at_setup(tmp_path: Path) -> None:
    from lightning_siamese.data import LFWDataModule
    from tests.data.test_lfw_datamodule import write_lfw

    data = LFWDataModule(
        root=str(write_lfw(tmp_path / "lfw")), image_size=28, batch_size=4, eval_batch_size=8, val_fraction=0.5
    )
    trainer = pl.Trainer(
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    module = SiameseModule(tiny_encoder(), KochHead, test_align=AlignmentViews())
    with pytest.raises(
        ValueError, match="test_align is set, but the data module LFWDataModule is a verification benchmark"
    ):
        trainer.test(module, datamodule=data, verbose=False)
