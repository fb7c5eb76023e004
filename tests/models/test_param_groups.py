"""Koch's optimiser: per-layer parameter groups, and the momentum ramp (also across a resume)."""

from pathlib import Path
from types import SimpleNamespace

import lightning.pytorch as pl
import pytest
import torch

from lightning_siamese.callbacks.schedules import MomentumRamp
from lightning_siamese.models import KochHead, SiameseModule
from lightning_siamese.models.optim import resolve_param_groups
from tests.tiny import tiny_data, tiny_encoder


def test_groups_take_the_named_modules_and_the_rest_keeps_the_defaults() -> None:
    module = SiameseModule(tiny_encoder(), head=KochHead)
    groups = resolve_param_groups(
        module.named_parameters(),
        [
            {"params": "encoder.features.0", "lr": 0.1, "momentum": 0.8, "weight_decay": 0.01},
            {"params": ["encoder.fc", "head"], "lr": 0.2, "name": "top"},
        ],
    )
    assert [g["name"] for g in groups] == ["encoder.features.0", "top", "other"]
    named = dict(module.named_parameters())
    assert [id(p) for p in groups[0]["params"]] == [
        id(named["encoder.features.0.weight"]),
        id(named["encoder.features.0.bias"]),
    ]
    assert {id(p) for p in groups[1]["params"]} == {
        id(named[n]) for n in named if n.startswith(("encoder.fc.", "head."))
    }
    assert len(groups[2]["params"]) == 6 and "lr" not in groups[2]  # convs 2-4 keep the optimizer's defaults
    optimizer = torch.optim.SGD(groups, lr=0.5, momentum=0.0)
    assert [(g["lr"], g["momentum"], g["weight_decay"]) for g in optimizer.param_groups] == [
        (0.1, 0.8, 0.01),
        (0.2, 0.0, 0.0),
        (0.5, 0.0, 0.0),
    ]


def test_bad_groups_are_named() -> None:
    named = list(SiameseModule(tiny_encoder(), head=KochHead).named_parameters())
    with pytest.raises(
        ValueError, match=r"param_groups\[0\]: 'encoder.f' matches no parameter; modules with parameters: .*encoder.fc"
    ):
        resolve_param_groups(named, [{"params": "encoder.f"}])  # whole names only, never a prefix of a name
    with pytest.raises(ValueError, match=r"encoder.fc.weight is in param_groups\[0\] and param_groups\[1\]"):
        resolve_param_groups(named, [{"params": "encoder"}, {"params": "encoder.fc"}])
    with pytest.raises(ValueError, match="has no 'params'"):
        resolve_param_groups(named, [{"lr": 0.1}])
    with pytest.raises(ValueError, match="matches no parameter"):  # at construction, before any data loads
        SiameseModule(tiny_encoder(), head=KochHead, param_groups=[{"params": "encoder.conv1"}])


def test_configure_optimizers_builds_the_groups() -> None:
    module = SiameseModule(
        tiny_encoder(),
        head=KochHead,
        optimizer=lambda p: torch.optim.SGD(p, lr=0.01, momentum=0.9),
        param_groups=[{"params": "head", "lr": 0.001, "weight_decay": 0.1}],
    )
    optimizer = module.configure_optimizers()
    assert [g["name"] for g in optimizer.param_groups] == ["head", "other"]
    assert [(g["lr"], g["momentum"], g["weight_decay"]) for g in optimizer.param_groups] == [
        (0.001, 0.9, 0.1),
        (0.01, 0.9, 0.0),
    ]


class MomentumLog(pl.Callback):
    def __init__(self) -> None:
        self.seen: list[list[float]] = []

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.seen.append([round(g["momentum"], 6) for g in trainer.optimizers[0].param_groups])


def test_momentum_ramps_per_group_to_its_own_final_value_and_resumes_on_schedule(
    tiny_omniglot: Path, tmp_path: Path
) -> None:
    data = tiny_data(tiny_omniglot)

    def module() -> SiameseModule:
        return SiameseModule(
            tiny_encoder(),
            head=KochHead,
            optimizer=lambda p: torch.optim.SGD(p, lr=0.01, momentum=0.9),
            param_groups=[{"params": "head", "momentum": 0.3}],
        )

    def trainer(epochs: int, log: MomentumLog) -> pl.Trainer:
        return pl.Trainer(
            max_epochs=epochs,
            accelerator="cpu",
            default_root_dir=tmp_path,
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            callbacks=[MomentumRamp(start=0.5, epochs=4), log],
        )

    first = MomentumLog()
    run = trainer(2, first)
    run.fit(module(), datamodule=data)
    run.save_checkpoint(tmp_path / "two.ckpt")
    second = MomentumLog()
    trainer(6, second).fit(module(), datamodule=data, ckpt_path=tmp_path / "two.ckpt", weights_only=False)
    # [head (final 0.3), other (final 0.9)], epoch by epoch; after epoch 4 the final values
    assert first.seen == [[0.5, 0.5], [0.45, 0.6]]
    assert second.seen == [[0.4, 0.7], [0.35, 0.8], [0.3, 0.9], [0.3, 0.9]]


def test_momentum_ramp_needs_momentum() -> None:
    with pytest.raises(ValueError, match="start"):
        MomentumRamp(start=1.5)
    ramp = MomentumRamp()
    adam = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))])
    with pytest.raises(ValueError, match="not Adam"):
        ramp.on_fit_start(SimpleNamespace(optimizers=[adam]), None)
