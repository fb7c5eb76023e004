"""EnsembleEncoder: members trained independently side by side, scored by their summed cosine."""

from __future__ import annotations

import json
import subprocess
import sys
from functools import partial
from pathlib import Path
from types import SimpleNamespace

import lightning.pytorch as pl
import pytest
import torch
import torch.nn.functional as F
import yaml

from lightning_siamese.inference.model import Embedder
from lightning_siamese.models import (
    ContrastiveHead,
    ConvNetEncoder,
    EnsembleEncoder,
    KochHead,
    SiameseModule,
    TripletHead,
)
from lightning_siamese.models.distances import pairwise_cosine
from tests.conftest import REPO
from tests.models.test_module import quiet_trainer, tiny_task
from tests.test_cli import fit_shrunk
from tests.tiny import tiny_recipe_data

MEMBER = partial(ConvNetEncoder, input_size=28, channels=(4, 8), embedding_dim=6)


def test_members_are_fresh_nets_whose_unit_embeddings_sit_side_by_side() -> None:
    torch.manual_seed(0)
    ensemble = EnsembleEncoder(MEMBER, members=3)
    assert ensemble.embedding_dim == 18 and ensemble.member_dim == 6 and ensemble.input_size == 28
    first, second = (dict(m.named_parameters())["fc.weight"] for m in ensemble.members[:2])
    assert not torch.equal(first, second)  # each member is built anew: its own initial weights

    images = torch.rand(5, 1, 28, 28)
    ensemble.eval()
    embeddings = ensemble(images)
    slices = ensemble.member_embeddings(embeddings)
    assert len(slices) == 3
    for member, part in zip(ensemble.members, slices):
        torch.testing.assert_close(part, F.normalize(member(images), dim=-1))
    # A Euclidean head on the concatenation ranks pairs by the members' summed cosine similarity.
    head = TripletHead(18, normalize=True)
    summed = sum(pairwise_cosine(part, part) for part in slices)
    torch.testing.assert_close(
        head.pairwise_similarity(embeddings, embeddings),
        -(2 - 2 * summed / 3).clamp_min(0).sqrt(),
        atol=1e-5,
        rtol=1e-5,
    )


BATCHES = {
    "pairs": (
        partial(ContrastiveHead, normalize=True),
        lambda: {"first": torch.rand(8, 1, 28, 28), "second": torch.rand(8, 1, 28, 28), "same": torch.arange(8) % 2},
    ),
    "triplets": (
        partial(TripletHead, normalize=True),
        lambda: {key: torch.rand(6, 1, 28, 28) for key in ("anchor", "positive", "negative")},
    ),
    "classes": (
        partial(TripletHead, normalize=True, mining="hard"),
        lambda: {"images": torch.rand(12, 1, 28, 28), "labels": torch.arange(4).repeat_interleave(3)},
    ),
}


@pytest.mark.parametrize("kind", sorted(BATCHES))
def test_each_member_trains_on_its_own_slice_as_if_alone(kind: str) -> None:
    torch.manual_seed(0)
    head, make_batch = BATCHES[kind]
    ensemble = EnsembleEncoder(MEMBER, members=2)
    module = SiameseModule(ensemble, head=head)
    batch = make_batch()
    module.training_loss(batch).backward()
    ensemble_active = float(module.head.last_active_fraction)

    active = []
    for member in ensemble.members:
        alone = SiameseModule(member, head=head(6))  # the same member object: compare its gradients
        grads = [p.grad.clone() for p in member.parameters()]
        member.zero_grad()
        (alone.training_loss(batch) / 2).backward()  # the ensemble's loss is the members' mean
        for grad, p in zip(grads, member.parameters()):
            torch.testing.assert_close(grad, p.grad)
        active.append(float(alone.head.last_active_fraction))
    assert ensemble_active == pytest.approx(sum(active) / 2)  # what the training-health check reads


def test_the_validation_loss_is_the_members_mean_too() -> None:
    torch.manual_seed(0)
    module = SiameseModule(EnsembleEncoder(MEMBER, members=2), head=partial(ContrastiveHead, normalize=True))
    table = torch.randn(10, 12)
    pairs = {"first": torch.arange(5), "second": torch.arange(5, 10), "same": torch.tensor([1, 0, 1, 0, 0])}
    loss = module._pair_loss(table, SimpleNamespace(pairs=pairs, triplets=None))
    member_head = ContrastiveHead(6, normalize=True)
    expected = [member_head.loss(part[:5], part[5:], pairs["same"]) for part in table.split(6, dim=-1)]
    torch.testing.assert_close(loss, sum(expected) / 2)
    assert not torch.allclose(loss, ContrastiveHead(12, normalize=True).loss(table[:5], table[5:], pairs["same"]))


def test_an_ensemble_learns_the_tiny_task_and_beats_chance(tiny_omniglot: Path, tmp_path: Path) -> None:
    pl.seed_everything(0)
    module = SiameseModule(
        EnsembleEncoder(MEMBER, members=2),
        head=partial(TripletHead, normalize=True, mining="hard"),
        optimizer=lambda p: torch.optim.Adam(p, lr=3e-3),
    )
    data = tiny_task(tiny_omniglot, "classes")
    trainer = quiet_trainer(tmp_path, max_epochs=3)
    before = trainer.validate(module, datamodule=data, verbose=False)[0]
    trainer.fit(module, datamodule=data)
    assert trainer.callback_metrics["val/loss"] < before["val/loss"]
    assert trainer.callback_metrics["val/oneshot_acc"] > 60.0  # 5-way: chance is 20%


def test_heads_with_weights_sized_to_the_whole_embedding_are_refused() -> None:
    with pytest.raises(ValueError, match=r"KochHead has learned weights.*TripletHead"):
        SiameseModule(EnsembleEncoder(MEMBER, members=2), head=KochHead)


def test_members_without_an_embedding_width_or_fewer_than_one_are_refused() -> None:
    with pytest.raises(ValueError, match="members must be at least 1, got 0"):
        EnsembleEncoder(MEMBER, members=0)
    with pytest.raises(TypeError, match="ensemble member Sequential must expose `embedding_dim`"):
        EnsembleEncoder(lambda: torch.nn.Sequential(torch.nn.Flatten()), members=2)


def test_an_exported_ensemble_embeds_with_every_member() -> None:
    torch.manual_seed(0)
    model = SiameseModule(EnsembleEncoder(MEMBER, members=2), head=partial(TripletHead, normalize=True)).eval()
    images = torch.rand(3, 1, 28, 28)
    traced = torch.jit.trace(Embedder(model).eval(), images[:1])
    exported = traced(images)
    assert exported.shape == (3, 12)
    torch.testing.assert_close(exported, model.embed(images))
    with torch.no_grad():
        model.encoder.members[1].fc.weight.mul_(-1)  # the second member's half of the embedding is its own
    torch.testing.assert_close(model.embed(images)[:, :6], exported[:, :6])
    assert not torch.allclose(model.embed(images)[:, 6:], exported[:, 6:], atol=1e-3)


@pytest.mark.slow
def test_the_ensemble_trial_config_trains_reports_aligned_and_scores_its_members(
    tmp_path: Path, tiny_omniglot: Path
) -> None:
    config = REPO / "benchmarks" / "omniglot_cpu_ensemble3.yaml"
    member = {"input_size": 28, "channels": [4, 8, 8, 16], "embedding_dim": 16}
    shrink = {
        "trainer": {"max_time": "00:00:00:10"},
        "model": {"init_args": {"encoder": {"init_args": {"member": {"init_args": member}}}}},
        "data": {"init_args": tiny_recipe_data(tiny_omniglot, pairs_per_epoch=32)},
        "oneshot_report": {"tasks": 10},
    }
    fit_shrunk(tmp_path, config, shrink)
    run_dir = tmp_path / "logs" / "omniglot_cpu_ensemble3" / "version_0"
    report = json.loads((run_dir / "oneshot_val.json").read_text())
    assert report["align"]["views"] == 31 * 8 and 0 <= report["without_align"]["accuracy"] <= 100
    state = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)["state_dict"]
    assert {key.split(".")[2] for key in state if key.startswith("encoder.members.")} == {"0", "1", "2"}

    # The benchmark scores each member alone and the ensemble on the report's tasks.
    merged = yaml.safe_load(config.read_text())
    merged["data"]["init_args"].update(shrink["data"]["init_args"])
    merged["oneshot_report"].update(tasks=10, align={"shifts": [0], "scales": [1.0], "angles": []})
    (tmp_path / "merged.yaml").write_text(yaml.safe_dump(merged))
    scored = subprocess.run(
        [
            sys.executable,
            str(REPO / "benchmarks" / "ensemble_members.py"),
            str(tmp_path / "merged.yaml"),
            str(run_dir / "checkpoints" / "last.ckpt"),
            "--precision",
            "32",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    assert [line.split(":")[0] for line in scored.stdout.splitlines() if line.startswith(("member", "ensemble"))] == [
        "member 1",
        "member 2",
        "member 3",
        "ensemble",
    ]
