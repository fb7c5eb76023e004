"""The training-health callback in real (tiny) runs, and the overfit-one-batch sanity check per head."""

from __future__ import annotations

import inspect
import warnings
from functools import partial
from pathlib import Path
from types import SimpleNamespace

import lightning.pytorch as pl
import pytest
import torch
import yaml
from lightning.pytorch.loggers import TensorBoardLogger
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from lightning_siamese.callbacks.health import TrainingHealth
from lightning_siamese.cli.lightning import SiameseCLI
from lightning_siamese.data import OmniglotDataModule
from lightning_siamese.evaluation.health import TrainingHealthWarning, binomial_ci95
from lightning_siamese.evaluation.verification import VerificationResult
from lightning_siamese.models import SiameseModule
from lightning_siamese.models.heads import ContrastiveHead, PairHead, TripletHead
from tests.models.test_finite_gradients import concrete_heads
from tests.test_cli import tiny_config
from tests.tiny import tiny_data, tiny_encoder

TRAIN_CLASSES = 12  # the tiny set's training alphabets: Alpha and Beta, 6 characters each


@pytest.fixture(autouse=True)
def one_thread():
    """These nets are tiny: one thread runs them fastest (several threads fight over a busy CPU)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def health_data(root: Path, **options) -> OmniglotDataModule:
    settings = {"batch_size": 16, "images_per_class": 4, "pairs_per_epoch": 64, "val_tasks": 8, "val_pairs": 16}
    return tiny_data(root, **(settings | options))


def tiny_module(head, lr: float = 1e-3) -> SiameseModule:
    encoder = tiny_encoder(channels=(4, 8, 8, 16), embedding_dim=32)
    return SiameseModule(encoder, head, optimizer=partial(torch.optim.Adam, lr=lr))


def trainer(tmp_path: Path, callbacks: list, **options) -> pl.Trainer:
    settings = {
        "accelerator": "cpu",
        "logger": TensorBoardLogger(tmp_path, name="run"),
        "enable_progress_bar": False,
        "enable_checkpointing": False,
        "enable_model_summary": False,
        "num_sanity_val_steps": 0,
    }
    return pl.Trainer(callbacks=callbacks, **(settings | options))


def health_warnings(caught: list[warnings.WarningMessage]) -> list[str]:
    return [str(w.message) for w in caught if issubclass(w.category, TrainingHealthWarning)]


class Collapse(pl.Callback):
    """Breaks a run on purpose: after every step the encoder's last layer maps everything to its bias."""

    @torch.no_grad()
    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        pl_module.encoder.fc.weight.zero_()


def test_health_logs_spread_active_fraction_empty_batches_and_score_histograms(
    tmp_path: Path, tiny_omniglot: Path
) -> None:
    health = TrainingHealth()
    run = trainer(tmp_path, [health], max_epochs=2, log_every_n_steps=1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run.fit(tiny_module(ContrastiveHead), datamodule=health_data(tiny_omniglot))
    events = EventAccumulator(str(tmp_path / "run" / "version_0"), size_guidance={"scalars": 0, "histograms": 0})
    events.Reload()
    logged = {tag: [e.value for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}
    for tag in (
        "health/embedding_spread",
        "health/embedding_std",
        "health/spread_ratio",
        "health/active_fraction",
        "health/empty_batches",
    ):
        assert len(logged.get(tag, [])) == 2, f"{tag}: {sorted(logged)}"
    assert all(0 <= v <= 1 for v in logged["health/active_fraction"])
    assert logged["health/empty_batches"] == [0.0, 0.0]  # balanced pairs: half are positives
    assert all(v > 0 for v in logged["health/embedding_spread"])
    assert {"health/scores_same", "health/scores_different"} <= set(events.Tags()["histograms"])
    assert health_warnings(caught) == []  # a healthy run warns of nothing
    assert health.monitor.reference_spread > 0  # taken before the first step


def test_a_collapsed_triplet_run_warns_of_collapse_margin_and_chance_once_each(
    tmp_path: Path, tiny_omniglot: Path
) -> None:
    health = TrainingHealth(margin_patience=2, warmup=1)
    run = trainer(tmp_path, [Collapse(), health], max_epochs=4)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run.fit(tiny_module(TripletHead), datamodule=health_data(tiny_omniglot, batch_kind="classes"))
    messages = health_warnings(caught)
    assert len(messages) == 3, messages
    collapse, margin, chance = messages  # in the order the conditions arise
    assert "embeddings have collapsed" in collapse and "of its first value" in collapse
    assert "sat at the margin (0.2 vs margin 0.2) for 2 validations" in margin
    assert "after 2 validations the 5-way 1-shot accuracy (20.00% +- 0.00)" in chance and "chance (20.00%)" in chance
    assert health.monitor.warned == ["collapse", "margin", "chance"]


def test_uniformly_random_pairs_warn_of_batches_without_positives(tmp_path: Path, tiny_omniglot: Path) -> None:
    run = trainer(tmp_path, [TrainingHealth()], max_epochs=2)
    data = health_data(tiny_omniglot, pair_sampling="darkshot_unbalanced", batch_size=8)  # ~(11/12)^8 = 50% empty
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run.fit(tiny_module(ContrastiveHead), datamodule=data)
    messages = health_warnings(caught)
    assert len(messages) == 1 and "held no positive pair" in messages[0] and "darkshot_unbalanced" in messages[0]


def test_health_is_on_by_default_in_the_cli_and_can_be_turned_off(
    tmp_path: Path, tiny_omniglot: Path, monkeypatch
) -> None:
    monkeypatch.chdir(tmp_path)
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(tiny_config(tiny_omniglot)))
    for extra, enabled, warmup in (([], True, 3), (["--health.enabled", "false", "--health.warmup", "5"], False, 5)):
        cli = SiameseCLI(args=["--config", str(config), *extra], run=False)
        (health,) = [c for c in cli.trainer.callbacks if isinstance(c, TrainingHealth)]
        assert health.enabled is enabled and health.monitor.warmup == warmup


def test_verification_accuracy_is_judged_against_50_percent_with_a_binomial_interval() -> None:
    result = VerificationResult(
        accuracy=52.0, threshold=0.5, auc=0.5, eer=50.0, eer_threshold=0.5, tar_at_far={}, n_pairs=400
    )
    module = SimpleNamespace(last_oneshot={}, last_verification={"val": result})
    accuracy = TrainingHealth._accuracy(module, SimpleNamespace(episodes=None))  # a pair benchmark such as LFW
    assert (accuracy.name, accuracy.value, accuracy.chance) == ("verification accuracy", 52.0, 50.0)
    assert accuracy.ci95 == pytest.approx(binomial_ci95(52.0, 400)) == pytest.approx(4.896, abs=1e-3)


def head_factory(cls: type[PairHead]):
    return partial(cls, num_classes=TRAIN_CLASSES) if "num_classes" in inspect.signature(cls).parameters else cls


# Below these, one batch is memorised (chance: BCE 0.69, 4-way cross-entropy 1.39; margins 0.2 and 1).
BOUND = {"KochHead": 0.2}


class StopBelow(pl.Callback):
    def __init__(self, bound: float) -> None:
        self.bound = bound
        self.losses: list[float] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        self.losses.append(float(outputs["loss"]))
        trainer.should_stop = self.losses[-1] < self.bound


@pytest.mark.parametrize("cls", concrete_heads(), ids=lambda c: c.__name__)
def test_overfit_batches_memorises_one_batch_with_every_head(
    cls: type[PairHead], tmp_path: Path, tiny_omniglot: Path
) -> None:
    pl.seed_everything(0)
    stop = StopBelow(BOUND.get(cls.__name__, 0.05))
    run = trainer(tmp_path, [stop], logger=False, overfit_batches=1, max_epochs=150, check_val_every_n_epoch=10**6)
    kind = "pairs" if "pairs" in cls.trains_on else "classes"
    run.fit(tiny_module(head_factory(cls), lr=3e-2), datamodule=health_data(tiny_omniglot, batch_kind=kind))
    assert stop.losses[-1] < stop.bound, (
        f"{cls.__name__}: loss {stop.losses[0]:.3f} -> {stop.losses[-1]:.3f} in {len(stop.losses)} steps"
    )
