"""The ``lightning-siamese`` command (also ``python -m lightning_siamese.commands``): tools beside ``lightning``.

``lightning-siamese baseline mhd --runs_dir data/omniglot`` scores a baseline on Lake's 20
runs; ``lightning-siamese baseline pixel --config experiments/omniglot.yaml`` scores it on
the episodes that config's end-of-run report scores a network on (same split, task, number
of tasks and seed), through the same evaluation code.
"""

from __future__ import annotations

import argparse
import inspect
import json
import time
from pathlib import Path

import yaml
from jsonargparse import ArgumentParser

from lightning_siamese.callbacks import OneShotReport
from lightning_siamese.data.datamodules import SiameseDataModule
from lightning_siamese.data.sources import load_lake_runs
from lightning_siamese.evaluation.baselines import BASELINES, make_baseline
from lightning_siamese.evaluation.oneshot import format_named_tasks, named_task_record, summarize

REPORT_DEFAULTS = {
    name: p.default for name, p in inspect.signature(OneShotReport).parameters.items() if name != "use_best"
}


def data_module_from_config(path: str | Path, image_size: int | None = None) -> tuple[SiameseDataModule, dict]:
    """The data module of a ``lightning`` config (its ``data`` section), and the config's ``oneshot_report`` section."""
    config = yaml.safe_load(Path(path).read_text()) or {}
    data = config.get("data")
    if not isinstance(data, dict) or "class_path" not in data:
        raise ValueError(f"{path} has no data section with a class_path: expected data: {{class_path: ..., init_args: ...}}")
    if image_size is not None:
        data = {**data, "init_args": {**(data.get("init_args") or {}), "image_size": image_size}}
    parser = ArgumentParser()
    parser.add_subclass_arguments(SiameseDataModule, "data")
    instantiate = getattr(parser, "instantiate", None) or parser.instantiate_classes  # renamed in jsonargparse 4.49
    module = instantiate(parser.parse_object({"data": data})).data
    return module, config.get("oneshot_report") or {}


def run_baseline(args: argparse.Namespace) -> dict:
    """Score one baseline as ``args`` say; print the result and return its JSON record."""
    start = time.time()
    data, report = (None, {}) if args.config is None else data_module_from_config(args.config, args.image_size)
    settings = {k: getattr(args, k) if getattr(args, k) is not None else report.get(k, d) for k, d in REPORT_DEFAULTS.items()}
    baseline = make_baseline(args.name, settings["seed"])
    if args.runs_dir is not None:
        image_size = args.image_size or (data.image_size if data is not None else 105)
        collection, episodes = load_lake_runs(args.runs_dir, image_size, invert=True, download=args.download)
        per_task = baseline.accuracies(collection.images, episodes)
        record = named_task_record(per_task, collection.group_names, episodes)
        record |= {"baseline": args.name, "runs_dir": str(args.runs_dir), "image_size": image_size}
        print(format_named_tasks(f"{args.name} baseline on Lake's runs ({args.runs_dir}, {image_size} px)", record))
    else:
        evaluation = data.evaluation_set(
            settings["split"], n_way=settings["n_way"], k_shot=settings["k_shot"], tasks=settings["tasks"], seed=settings["seed"]
        )
        images = evaluation.collection.images
        if not getattr(data, "invert", True):  # baselines take strokes bright, as Omniglot loads by default
            images = 255 - images
        result = summarize(baseline.accuracies(images, evaluation.episodes), evaluation.episodes)
        record = {"baseline": args.name, "config": str(args.config), "split": settings["split"], **result.as_dict()}
        record["image_size"] = data.image_size
        print(f"{args.name} baseline on the {settings['split']} split of {args.config} ({data.image_size} px): {result}")
    print(f"  ({time.time() - start:.1f} s)")
    if args.output is not None:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(json.dumps(record, indent=2) + "\n")
        print(f"  written to {args.output}")
    return record


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lightning-siamese", description="Tools beside the `lightning` command.")
    commands = parser.add_subparsers(dest="command", required=True)
    baseline = commands.add_parser(
        "baseline",
        help="score a baseline (mhd, pixel, chance) on Lake's 20 runs or on a config's episodes",
        description=(
            "Score a fixed baseline with the same N-way K-shot evaluation as the networks: on Lake's 20 "
            "runs (--runs_dir) or on the val/test episodes of a config's data module (--config; by default "
            "the split, task, tasks and seed of its end-of-run report, so the numbers compare with "
            "oneshot_<split>.json). Prints accuracy +- 95% CI."
        ),
    )
    baseline.add_argument(
        "name",
        choices=BASELINES,
        help="mhd: Lake et al.'s modified Hausdorff distance between ink pixels; pixel: nearest neighbour "
        "in pixel space (Euclidean); chance: random scores (--seed)",
    )
    baseline.add_argument("--runs_dir", help="Lake's runs: a folder holding run01/..., a folder with all_runs/ or all_runs.zip, or the zip")
    baseline.add_argument("--config", help="a `lightning` YAML config whose data module supplies the episodes (and the image size)")
    baseline.add_argument("--split", choices=("val", "test"), help="which split's episodes (default: the config's oneshot_report, else val)")
    baseline.add_argument("--tasks", type=int, help="number of episodes (default: the config's oneshot_report, else 1000)")
    baseline.add_argument("--seed", type=int, help="seed of the episodes and of the chance scores (default: the config's oneshot_report, else 1234)")
    baseline.add_argument("--n_way", type=int, help="ways per task (default: the data module's)")
    baseline.add_argument("--k_shot", type=int, help="shots per way (default: the data module's)")
    baseline.add_argument(
        "--image_size",
        type=int,
        help="load the images at this size (default: the config's image_size; 105, Omniglot's own, for runs without a config). "
        "MHD is defined on full-resolution binary images: Lake's 38.8%% error is at 105 px",
    )
    baseline.add_argument("--download", action="store_true", help="fetch Lake's all_runs.zip into --runs_dir when it is not there")
    baseline.add_argument("--output", help="write the result as JSON to this file")
    return parser


def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.runs_dir is None and args.config is None:
        parser.error("baseline needs --runs_dir (Lake's runs) or --config (a config's episodes)")
    run_baseline(args)


if __name__ == "__main__":
    main()
