"""``lightning-siamese baseline``: a fixed baseline (mhd, pixel, knn, chance) through the networks' evaluation.

``lightning-siamese baseline mhd --runs_dir data/omniglot`` scores it on Lake's 20 runs;
``lightning-siamese baseline pixel --config experiments/omniglot.yaml`` on the episodes that
config's end-of-run report scores a network on (same split, task, number of tasks and seed).
"""

from __future__ import annotations

import argparse
import time
from typing import cast

from lightning_siamese.cli.tool import Tool, UsageError
from lightning_siamese.data.samplers.episodes import Episodes
from lightning_siamese.data.sources.omniglot import load_lake_runs
from lightning_siamese.evaluation.baselines import BASELINES, make_baseline
from lightning_siamese.evaluation.oneshot import (
    format_named_tasks,
    named_task_record,
    summarize,
)
from lightning_siamese.inference.config import (
    baseline_images,
    data_module_from_config,
    report_settings,
)
from lightning_siamese.inference.files import write_json


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "name",
        choices=BASELINES,
        help="mhd: Lake et al.'s modified Hausdorff distance between ink pixels; pixel: nearest neighbour "
        "in pixel space (Euclidean; K shots by mean distance); knn: scikit-learn's 1-nearest-neighbour classifier on "
        "raw pixels, fitted on each episode's support set (K shots: the nearest shot); chance: random scores (--seed)",
    )
    parser.add_argument(
        "--runs_dir",
        help="Lake's runs: a folder holding run01/..., a folder with all_runs/ or all_runs.zip, or the zip",
    )
    parser.add_argument(
        "--config", help="a `lightning` YAML config whose data module supplies the episodes (and the image size)"
    )
    parser.add_argument(
        "--split",
        choices=("val", "test"),
        help="which split's episodes (default: the config's oneshot_report, else val)",
    )
    parser.add_argument(
        "--tasks", type=int, help="number of episodes (default: the config's oneshot_report, else 1000)"
    )
    parser.add_argument(
        "--seed",
        type=int,
        help="seed of the episodes and of the chance scores (default: the config's oneshot_report, else 1234)",
    )
    parser.add_argument("--n_way", type=int, help="ways per task (default: the data module's)")
    parser.add_argument("--k_shot", type=int, help="shots per way (default: the data module's)")
    parser.add_argument(
        "--image_size",
        type=int,
        help="load the images at this size (default: the config's image_size; 105, Omniglot's own, for runs without a config). "
        "MHD is defined on full-resolution binary images: Lake's 38.8%% error is at 105 px",
    )
    parser.add_argument(
        "--download", action="store_true", help="fetch Lake's all_runs.zip into --runs_dir when it is not there"
    )
    parser.add_argument("--output", help="write the result as JSON to this file")


def run(args: argparse.Namespace) -> dict:
    """Score one baseline as ``args`` say; print the result and return its JSON record."""
    if args.runs_dir is None and args.config is None:
        raise UsageError("baseline needs --runs_dir (Lake's runs) or --config (a config's episodes)")
    start = time.time()
    data, report = (None, {}) if args.config is None else data_module_from_config(args.config, args.image_size)
    settings = report_settings(args, report)
    baseline = make_baseline(args.name, settings["seed"])
    if args.runs_dir is not None or data is None:  # data is None only without --config, so with --runs_dir
        # Lake's runs are Omniglot images: a config given with them is an Omniglot one, its image_size one side.
        image_size = args.image_size or (cast(int, data.image_size) if data is not None else 105)
        ink_fill = getattr(data, "ink_fill", None)  # the config's preparation of Omniglot's images, if it has one
        collection, episodes = load_lake_runs(
            args.runs_dir, image_size, invert=True, download=args.download, ink_fill=ink_fill
        )
        per_task = baseline.accuracies(collection.images, episodes)
        record = named_task_record(per_task, collection.group_names, episodes)
        record |= {"baseline": args.name, "runs_dir": str(args.runs_dir), "image_size": image_size}
        print(format_named_tasks(f"{args.name} baseline on Lake's runs ({args.runs_dir}, {image_size} px)", record))
    else:
        evaluation = data.evaluation_set(
            settings["split"],
            n_way=settings["n_way"],
            k_shot=settings["k_shot"],
            tasks=settings["tasks"],
            seed=settings["seed"],
        )
        images = baseline_images(data, evaluation.collection.images)
        episodes = cast(Episodes, evaluation.episodes)  # drawn for an N-way K-shot task: it has episodes
        result = summarize(baseline.accuracies(images, episodes), episodes)
        record = {"baseline": args.name, "config": str(args.config), "split": settings["split"], **result.as_dict()}
        record["image_size"] = data.image_size
        print(
            f"{args.name} baseline on the {settings['split']} split of {args.config} ({data.image_size} px): {result}"
        )
    print(f"  ({time.time() - start:.1f} s)")
    write_json(args.output, record)
    return record


TOOL = Tool(
    name="baseline",
    help="score a baseline (mhd, pixel, knn, chance) on Lake's 20 runs or on a config's episodes",
    description=(
        "Score a fixed baseline with the same N-way K-shot evaluation as the networks: on Lake's 20 "
        "runs (--runs_dir) or on the val/test episodes of a config's data module (--config; by default "
        "the split, task, tasks and seed of its end-of-run report, so the numbers compare with "
        "oneshot_<split>.json). Prints accuracy +- 95% CI."
    ),
    add_arguments=add_arguments,
    run=run,
)
