"""Open-set evaluation through SiameseModule: logged, threshold fitted on validation and kept for test."""

import json
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch

from lightning_siamese.callbacks.report import OneShotReport
from lightning_siamese.data.datamodules.lfw import LFWDataModule
from lightning_siamese.models import KochEncoder, SiameseModule, TripletHead
from tests.tiny import tiny_data


def small_module(**kwargs) -> SiameseModule:
    encoder = KochEncoder(
        input_size=28,
        kernel_sizes=(3, 3, 2, 2),
        channels=(4, 8, 8, 8),
        embedding_dim=8,
        init="default",
        output="linear",
    )
    return SiameseModule(
        encoder,
        head=lambda d: TripletHead(d, mining="hard"),
        optimizer=lambda p: torch.optim.Adam(p, lr=3e-3),
        **kwargs,
    )


def test_a_tiny_fit_logs_openset_metrics_and_test_applies_the_validation_threshold(
    tiny_omniglot: Path, tmp_path: Path
) -> None:
    pl.seed_everything(0)
    data = tiny_data(
        tiny_omniglot,
        batch_kind="classes",
        batch_size=16,
        images_per_class=4,
        pairs_per_epoch=32,
        n_way=3,
        val_tasks=20,
        test_tasks=20,
        val_pairs=16,
    )
    module = small_module(openset=True, openset_fraction=0.25, openset_far=0.2)
    report = OneShotReport(tasks=15, seed=5, use_best=False)
    trainer = pl.Trainer(
        max_epochs=1,
        accelerator="cpu",
        default_root_dir=tmp_path,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[report],
    )
    trainer.fit(module, datamodule=data)
    val = trainer.callback_metrics
    for name in ("acc", "acc_ci95", "auc", "auc_ci95", "closed_acc", "threshold", "false_accept", "false_reject"):
        assert f"val/openset_{name}" in val, name
    assert float(val["val/openset_false_accept"]) <= 20.0  # fitted at this false-accept rate
    assert float(val["val/openset_closed_acc"]) == pytest.approx(float(val["val/oneshot_acc"]))  # same known queries
    assert 0.0 <= float(val["val/openset_auc"]) <= 1.0
    threshold = module.openset_threshold
    assert float(val["val/openset_threshold"]) == pytest.approx(threshold)

    # The end-of-run report scores its own episodes, open set included, at the validation threshold.
    record = json.loads((tmp_path / "oneshot_val.json").read_text())
    assert record["tasks"] == 15 and record["openset"]["threshold"] == pytest.approx(threshold)
    assert record["openset"]["closed_acc"] == pytest.approx(record["accuracy"]) and record["openset"]["seed"] == 5

    path = tmp_path / "model.ckpt"
    trainer.save_checkpoint(path)
    restored = small_module(openset=True, openset_fraction=0.25, openset_far=0.2)
    restored.on_load_checkpoint(torch.load(path, map_location="cpu", weights_only=False))
    assert restored.openset_threshold == threshold

    tested = trainer.test(module, datamodule=data, verbose=False)[0]
    assert {"test/openset_acc", "test/openset_auc"} <= set(tested)
    assert tested["test/openset_threshold"] == pytest.approx(threshold)  # not refitted on test
    result = module.last_openset["test"]
    assert result.unknown_fraction == pytest.approx(1 / 4) and result.tasks == 20


def test_without_openset_nothing_is_logged(tiny_omniglot: Path, tmp_path: Path) -> None:
    data = tiny_data(tiny_omniglot, batch_kind="classes", batch_size=16, images_per_class=4, n_way=3, val_tasks=5)
    trainer = pl.Trainer(
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    metrics = trainer.validate(small_module(), datamodule=data, verbose=False)[0]
    assert "val/oneshot_acc" in metrics and not any("openset" in k for k in metrics)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"openset_fraction": 0.0}, "unknown fraction of open-set queries must be strictly between 0 and 1, got 0.0"),
        ({"openset_fraction": 1.2}, "got 1.2"),
        ({"openset_far": 1.0}, "openset_far must be a false-accept rate strictly between 0 and 1.*got 1.0"),
        ({"openset_far": -0.05}, "openset_far .* got -0.05"),
    ],
)
def test_bad_openset_options_are_refused(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        small_module(openset=True, **kwargs)


@pytest.mark.parametrize("kind", ["lfw", "signatures"])
def test_openset_on_a_verification_data_module_is_an_error_at_setup(kind: str, tmp_path: Path) -> None:
    # A pair-list benchmark has no episodes to add unknown queries to: refused, not silently skipped.
    from tests.data.test_lfw_datamodule import write_lfw
    from tests.data.test_signatures import WRITERS, make_module, write_sign_data

    if kind == "lfw":
        data = LFWDataModule(
            root=str(write_lfw(tmp_path / "lfw")), image_size=28, batch_size=4, eval_batch_size=8, val_fraction=0.5
        )
    else:
        data = make_module(write_sign_data(tmp_path / "signs", WRITERS))
    trainer = pl.Trainer(
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    name = type(data).__name__
    with pytest.raises(ValueError, match=f"openset is on, but the data module {name} is a verification benchmark"):
        trainer.validate(small_module(openset=True), datamodule=data, verbose=False)
