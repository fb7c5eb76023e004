"""Run folders written by ``lightning fit``: TensorBoard events, the best checkpoint, the monitored metric."""

from __future__ import annotations

from pathlib import Path

import torch


class ReportError(ValueError):
    """A folder that is not a run, or a run without what a report needs."""


def check_run_dir(run_dir: str | Path) -> Path:
    """The run folder, or a clear error when ``run_dir`` is not one."""
    path = Path(run_dir)
    if not path.is_dir():
        raise ReportError(f"{run_dir}: no such folder; expected a run folder such as logs/<experiment>/version_N")
    missing = [
        what
        for what, found in (
            ("config.yaml", (path / "config.yaml").is_file()),
            ("TensorBoard events", any(path.glob("events.out.tfevents.*"))),
        )
        if not found
    ]
    if missing:
        raise ReportError(
            f"{run_dir} is not a run folder: it has no {' and no '.join(missing)} "
            f"(`lightning fit` writes both into logs/<experiment>/version_N)"
        )
    return path


def read_events(run_dir: Path) -> tuple[dict[str, list[tuple[int, float, float]]], dict[str, str]]:
    """A run's scalars (``tag -> [(step, value, wall time)]``) and text summaries (``tag -> last text``)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_dir), size_guidance={"scalars": 0, "tensors": 0})
    events.Reload()
    scalars = {tag: [(e.step, e.value, e.wall_time) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}
    texts = {}
    for tag in events.Tags()["tensors"]:
        plugin = events.summary_metadata[tag].plugin_data.plugin_name if tag in events.summary_metadata else ""
        if plugin == "text":
            value = events.Tensors(tag)[-1].tensor_proto.string_val
            texts[tag.removesuffix("/text_summary")] = value[0].decode() if value else ""
    return scalars, texts


def best_checkpoint(run_dir: Path) -> Path | None:
    """The best checkpoint that ``last.ckpt``'s ModelCheckpoint state names (else ``last.ckpt``), found in the run folder."""
    last = run_dir / "checkpoints" / "last.ckpt"
    if not last.is_file():
        return None
    state = torch.load(last, map_location="cpu", weights_only=True, mmap=True)
    for key, value in (state.get("callbacks") or {}).items():
        if "Checkpoint" in str(key) and isinstance(value, dict) and value.get("best_model_path"):
            best = run_dir / "checkpoints" / Path(value["best_model_path"]).name  # the folder may have moved
            if best.is_file():
                return best
    return last


def monitored(config: dict) -> tuple[str, str]:
    """The metric that selected checkpoints, and ``max`` or ``min``."""
    checkpoint = config.get("checkpoint") or {}
    return checkpoint.get("monitor") or "val/oneshot_acc", checkpoint.get("mode") or "max"


def epoch_of_steps(scalars: dict) -> dict[int, int]:
    return {step: int(value) for step, value, _ in scalars.get("epoch", [])}


def checkpoint_name(path: Path) -> str:
    """A checkpoint in ``<experiment>/version_N/checkpoints`` is named ``experiment/version_N``, others by their file name."""
    run = path.resolve().parent.parent
    return f"{run.parent.name}/{run.name}" if path.parent.name == "checkpoints" else path.stem


def run_folder(ckpt: Path) -> Path:
    """``<run>`` for ``<run>/checkpoints/x.ckpt``, else the checkpoint's own folder."""
    return ckpt.parent.parent if ckpt.parent.name == "checkpoints" else ckpt.parent
