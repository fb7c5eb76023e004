"""The ``lightning`` command: LightningCLI with this project's callbacks and run folders.

Runs go to ``logs/<experiment>/version_N/`` (TensorBoard events, ``config.yaml`` and
``checkpoints/``). ``--ckpt_path last`` with ``fit`` resumes the latest run of the
experiment in its own folder, rather than opening a new version folder in which
Lightning would find no ``last.ckpt``. A checkpoint of another model than the config's
(model class, encoder, head or their init args) fails with one message that says how.
A run that stops before its first validation (``--trainer.max_steps 2``, a smoke test)
ends normally, with its last checkpoint and a note that nothing was validated.
"""

from __future__ import annotations

import re
import sys
import warnings
from pathlib import Path
from typing import Any

from jsonargparse import Namespace
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import EarlyStopping, LearningRateMonitor
from lightning.pytorch.cli import (
    LightningArgumentParser,
    LightningCLI,
    SaveConfigCallback,
)
from lightning.pytorch.utilities import rank_zero_warn

from lightning_siamese.callbacks.checkpoint import RunCheckpoint, StopOnNonFiniteLoss
from lightning_siamese.callbacks.health import TrainingHealth
from lightning_siamese.callbacks.report import OneShotReport, StageRecords
from lightning_siamese.callbacks.visuals import (
    EmbeddingProjector,
    EmbeddingWriter,
    PairGridLogger,
)
from lightning_siamese.data import trainer_state
from lightning_siamese.inference.checkpoints import (
    SPECIAL_CKPT_PATHS,
    check_checkpoint_file,
    check_checkpoint_model,
    find_last_checkpoint,
    find_latest_run,
)


class KeepingSaveConfigCallback(SaveConfigCallback):
    """Saves the resolved config in the run folder without ever overwriting an earlier one.

    A resumed run writes into the folder it resumes: if ``config.yaml`` is there already
    and differs, the new config goes to ``config.1.yaml``, ``config.2.yaml``, ...
    """

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if self.already_saved:
            return
        log_dir = trainer.log_dir  # a collective under DDP: every rank reads it exactly once
        if log_dir is None:
            return
        if trainer.is_global_zero:
            folder = Path(log_dir)
            folder.mkdir(parents=True, exist_ok=True)
            text = self.parser.dump(self.config, skip_none=False)
            target = folder / self.config_filename
            n = 0
            while target.exists() and target.read_text() != text:
                n += 1
                target = folder / f"{Path(self.config_filename).stem}.{n}.yaml"
            if not target.exists():
                target.write_text(text)
        self.already_saved = True
        trainer.strategy.barrier()


class EarlyStoppingAfterValidation(EarlyStopping):
    """Lightning's ``EarlyStopping`` that starts checking at the first validation.

    Before any validation has run there is no monitored metric to compare, and Lightning's
    ``EarlyStopping`` (``strict``) ends a run that stops inside its first epoch (e.g.
    ``--trainer.max_steps 2``) with ``RuntimeError: Early stopping conditioned on metric ...
    which is not available``. This one skips the check until a validation (not the sanity
    check) has run in this process; after one, a missing metric is still an error (a
    misspelled ``monitor``). A fit that ends without any validation says so: nothing was
    validated, no best checkpoint was chosen, the last checkpoint holds the final weights
    (which the end-of-run report then scores).
    """

    _validated = False

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not trainer.sanity_checking:
            self._validated = True
        super().on_validation_end(trainer, pl_module)

    def _run_early_stopping_check(self, trainer: Trainer) -> None:
        if self._validated:
            super()._run_early_stopping_check(trainer)

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not self._validated and not trainer_state.fast_dev_run(trainer):
            rank_zero_warn(
                f"The run stopped at step {trainer.global_step} before its first validation: nothing was validated, "
                f"so early stopping never checked {self.monitor} and no best checkpoint was chosen; the last "
                f"checkpoint holds the final weights"
            )


def _experiment_name(args: list[str] | None) -> str:
    """The stem of the first ``--config`` file, the default experiment (logger) name."""
    args = sys.argv[1:] if args is None else args
    for i, arg in enumerate(args):
        if arg in ("-c", "--config") and i + 1 < len(args):
            return Path(args[i + 1]).stem
        if arg.startswith("--config="):
            return Path(arg.split("=", 1)[1]).stem
    return "default"


class SiameseCLI(LightningCLI):
    """LightningCLI with checkpointing, early stopping, LR monitoring and one-shot reports."""

    def __init__(self, args: list[str] | None = None, **kwargs: Any) -> None:
        experiment = _experiment_name(args)
        trainer_defaults = {
            "logger": {
                "class_path": "lightning.pytorch.loggers.TensorBoardLogger",
                "init_args": {"save_dir": "logs", "name": experiment},
            },
            **kwargs.pop("trainer_defaults", {}),
        }
        kwargs.setdefault("save_config_callback", KeepingSaveConfigCallback)
        super().__init__(
            model_class=None,
            datamodule_class=None,
            trainer_defaults=trainer_defaults,
            auto_configure_optimizers=False,
            args=args,
            **kwargs,
        )

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_lightning_class_args(RunCheckpoint, "checkpoint")
        parser.set_defaults(
            {
                "checkpoint.monitor": "val/oneshot_acc",
                "checkpoint.mode": "max",
                "checkpoint.save_last": True,
                "checkpoint.filename": "epoch={epoch}-step={step}-oneshot_acc={val/oneshot_acc:.2f}",
                "checkpoint.auto_insert_metric_name": False,
            }
        )
        parser.add_lightning_class_args(EarlyStoppingAfterValidation, "early_stopping")
        parser.set_defaults(
            {"early_stopping.monitor": "val/oneshot_acc", "early_stopping.mode": "max", "early_stopping.patience": 20}
        )
        parser.add_lightning_class_args(LearningRateMonitor, "lr_monitor")
        parser.set_defaults({"lr_monitor.logging_interval": "epoch"})
        parser.add_lightning_class_args(StageRecords, "stage_records")
        parser.add_lightning_class_args(OneShotReport, "oneshot_report")
        parser.add_lightning_class_args(EmbeddingProjector, "projector")
        parser.add_lightning_class_args(PairGridLogger, "pair_grid")
        parser.add_lightning_class_args(EmbeddingWriter, "embedding_writer")
        parser.add_lightning_class_args(StopOnNonFiniteLoss, "finite_loss")
        parser.add_lightning_class_args(TrainingHealth, "health")

    def parse_arguments(self, parser: LightningArgumentParser, args: Any) -> None:
        super().parse_arguments(parser, args)
        subcommand = self.config.get("subcommand")
        if subcommand is None:
            return
        config = self.config[subcommand]
        ckpt_path = config.get("ckpt_path")
        if ckpt_path == "last" and subcommand == "fit":
            self._resolve_last(config)
        elif ckpt_path is not None and ckpt_path not in SPECIAL_CKPT_PATHS:
            check_checkpoint_file(ckpt_path)
            if subcommand == "fit":
                self._continue_in_run_folder(config, Path(ckpt_path))
        if config.get("ckpt_path") not in (None, *SPECIAL_CKPT_PATHS) and config.get("model") is not None:
            check_checkpoint_model(config.ckpt_path, config.model)

    def _parse_ckpt_path(self) -> None:
        """Keep the config's and the command line's model over the checkpoint's hyper-parameters.

        Lightning merges a checkpoint's saved hyper-parameters over the config and the command
        line (Lightning-AI/pytorch-lightning#21455), which silently drops evaluation switches
        such as ``--model.init_args.eval_flip true`` or ``threshold_rule``. ``parse_arguments``
        has already checked that the checkpoint holds the config's model class, encoder and
        head, so the parsed config stands as it is.
        """

    @staticmethod
    def _logger_location(config: Namespace) -> tuple[Namespace, str, str] | None:
        logger = config.trainer.get("logger")
        if not isinstance(logger, Namespace) or "init_args" not in logger:
            return None  # several loggers, or none: Lightning's own lookup applies
        init = logger.init_args
        if init.get("save_dir") is None or init.get("name") is None:
            return None
        return init, str(init.save_dir), str(init.name)

    def _resolve_last(self, config: Namespace) -> None:
        """Point ``--ckpt_path last`` at the latest run's last checkpoint, and log into that run."""
        dirpath = config.get("checkpoint", Namespace()).get("dirpath")
        location = self._logger_location(config)
        run: tuple[int | None, Path] | None
        if dirpath:
            last = find_last_checkpoint(Path(dirpath))
            run = None if last is None else (None, last)
            where = dirpath
        elif location is not None:
            run = find_latest_run(location[1], location[2])
            where = f"{location[1]}/{location[2]}/version_*/checkpoints"
        else:
            return  # Lightning resolves "last" itself
        if run is None:
            warnings.warn(f"--ckpt_path last: no last checkpoint under {where}; starting a new run", stacklevel=2)
            config.ckpt_path = None
            return
        version, last = run
        if version is not None and location is not None:
            location[0].version = version
        config.ckpt_path = str(last)
        print(f"Resuming from {last}")

    def _continue_in_run_folder(self, config: Namespace, ckpt: Path) -> None:
        """A checkpoint inside ``<save_dir>/<name>/version_N/checkpoints`` continues that run."""
        location = self._logger_location(config)
        match = re.fullmatch(r"version_(\d+)", ckpt.resolve().parent.parent.name)
        if location is None or match is None or ckpt.parent.name != "checkpoints":
            return
        if ckpt.resolve().parent.parent.parent == Path(location[1], location[2]).resolve():
            location[0].version = int(match.group(1))


def expand_resume(args: list[str]) -> list[str]:
    """``fit --resume RUN_DIR`` becomes ``fit --config RUN_DIR/config.yaml --ckpt_path RUN_DIR/checkpoints/last.ckpt``.

    The run's own saved config rebuilds the same model, data and logger, and a checkpoint
    inside the run folder continues that folder (see :meth:`SiameseCLI._continue_in_run_folder`);
    epoch, step, optimizer, scheduler and callback states come from the checkpoint. Further
    arguments after it still apply (e.g. ``--trainer.max_epochs 50``).
    """
    if "--resume" not in args:
        return args
    i = args.index("--resume")
    if i + 1 >= len(args):
        raise SystemExit("--resume needs a run folder, e.g. --resume logs/omniglot/version_3")
    run = Path(args[i + 1])
    config = run / "config.yaml"
    if not config.is_file():
        raise SystemExit(
            f"--resume {run}: not a run folder (no config.yaml in it); expected logs/<experiment>/version_N"
        )
    last = find_last_checkpoint(run / "checkpoints")
    if last is None:
        raise SystemExit(f"--resume {run}: no last checkpoint in {run / 'checkpoints'}; nothing to resume")
    print(f"Resuming {run} from {last}")
    return [*args[:i], "--config", str(config), *args[i + 2 :], "--ckpt_path", str(last)]


def main(args: list[str] | None = None) -> None:
    given = sys.argv[1:] if args is None else list(args)
    expanded: list[str] | None = expand_resume(given)
    if args is None and expanded == given:
        expanded = None  # let LightningCLI read sys.argv itself (passing both makes it warn)
    elif args is None:
        sys.argv = sys.argv[:1]  # the expanded arguments replace the command line
    SiameseCLI(args=expanded)
