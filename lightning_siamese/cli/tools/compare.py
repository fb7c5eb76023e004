"""``lightning-siamese compare``: baselines and trained checkpoints scored on one set of episodes.

The episodes are a config's (its data module, split and seed, by default those of its
end-of-run report), drawn once per task; every baseline and checkpoint is scored on them by
the same evaluation code, and one Markdown table (plus a JSON record) comes out. A
checkpoint trained at another image size gets the split loaded at its size; its episodes
are drawn again from the same seed and checked to be the very same tasks.
"""

from __future__ import annotations

import argparse
import json
import time
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Literal, cast

from lightning.pytorch.plugins.precision import MixedPrecision

from lightning_siamese.cli.tool import Tool
from lightning_siamese.data.datamodules.base import EvaluationSet, SiameseDataModule
from lightning_siamese.data.samplers.episodes import Episodes
from lightning_siamese.data.transforms.views import AlignmentViews
from lightning_siamese.evaluation.baselines import BASELINES, make_baseline
from lightning_siamese.evaluation.compare import (
    Row,
    check_same_episodes,
    markdown_table,
    task_label,
)
from lightning_siamese.evaluation.oneshot import (
    AlignedSimilarity,
    episode_accuracies,
    summarize,
)
from lightning_siamese.inference.config import (
    baseline_images,
    data_module_from_config,
    report_settings,
)
from lightning_siamese.inference.model import load_trained
from lightning_siamese.inference.runs import checkpoint_name
from lightning_siamese.models.embedding import embed_aligned, embed_all

FULL_PRECISION = ("32", "32-true")


def embedding_precision(precision: str) -> AbstractContextManager:
    """Lightning's autocast for a ``*-mixed`` precision, as a trainer at that precision embeds; nothing for 32."""
    if precision in FULL_PRECISION:
        return nullcontext()
    if precision not in ("bf16-mixed", "16-mixed"):
        raise ValueError(f"--precision must be 32, bf16-mixed or 16-mixed, got {precision!r}")
    return MixedPrecision(
        cast(Literal["bf16-mixed", "16-mixed"], precision), "cpu"
    ).forward_context()  # checked just above


def run_compare(args: argparse.Namespace) -> list[Row]:
    """Score ``args.baselines`` and ``args.ckpt`` on the config's episodes; print and write one table."""
    data, report = data_module_from_config(args.config)
    settings = report_settings(args, report)
    if args.align and args.eval_shift is not None:
        raise ValueError(f"give --eval_shift ({args.eval_shift}) or --align, not both")
    align = AlignmentViews(**(report.get("align") or {})) if args.align else None
    split, tasks, seed = settings["split"], settings["tasks"], settings["seed"]
    n_ways = args.n_way or [settings["n_way"] or data.n_way]
    k_shots = args.k_shot or [settings["k_shot"] or data.k_shot]
    modules = {data.image_size: data}

    def evaluation_sets(module: SiameseDataModule) -> dict[str, EvaluationSet]:
        return {
            task_label(n, k): module.evaluation_set(split, n_way=n, k_shot=k, tasks=tasks, seed=seed)
            for n in n_ways
            for k in k_shots
        }

    reference = evaluation_sets(data)
    images = next(iter(reference.values())).collection.images
    rows = []
    for name in args.baselines:
        start = time.time()
        row = Row(name, f"baseline, {data.image_size} px")
        for label, evaluation in reference.items():
            baseline = make_baseline(name, seed)  # afresh per task: each column as `baseline` scores it alone
            episodes = cast(Episodes, evaluation.episodes)  # drawn for an N-way K-shot task: it has episodes
            row.results[label] = summarize(baseline.accuracies(baseline_images(data, images), episodes), episodes)
        print(
            f"{name}: {', '.join(f'{k} {r.accuracy:.2f}%' for k, r in row.results.items())} ({time.time() - start:.1f} s)"
        )
        rows.append(row)
    for spec in args.ckpt:
        # Checkpoint file names hold "=" (epoch=3-step=...): NAME=PATH only when SPEC is no file.
        name, path = ("", Path(spec)) if Path(spec).is_file() else (spec.split("=", 1)[0], Path(spec.split("=", 1)[-1]))
        model, saved = load_trained(str(path))
        if args.eval_shift is not None:
            model.eval_shift = args.eval_shift
        size = saved["image_size"]
        if size not in modules:
            modules[size] = data_module_from_config(args.config, size)[0]
        own = reference if modules[size] is data else evaluation_sets(modules[size])
        for label, evaluation in own.items():
            check_same_episodes(
                cast(Episodes, reference[label].episodes),
                cast(Episodes, evaluation.episodes),
                f"checkpoint {path} ({size} px)",
            )
        images = next(iter(own.values())).collection.images
        with embedding_precision(args.precision):  # scored in float32 either way
            prepare = modules[size].prepare
            embeddings = (
                embed_aligned(model, images, align, prepare=prepare)
                if align is not None
                else embed_all(model, images, prepare=prepare)
            ).float()
        similarity = (
            AlignedSimilarity.of(model.head.pairwise_similarity, align) if align is not None else model.head.similarity
        )
        head = type(model.head).__name__
        views = f", eval_shift {model.eval_shift}" if model.eval_shift else ""
        views += f", aligned over {align}" if align is not None else ""
        views += f", embedded at {args.precision}" if args.precision not in FULL_PRECISION else ""
        row = Row(
            name or checkpoint_name(path), f"{type(model.encoder).__name__} + {head}, {size} px{views}, `{path.name}`"
        )
        for label, evaluation in own.items():
            episodes = cast(Episodes, evaluation.episodes)  # drawn for an N-way K-shot task: it has episodes
            per_task = episode_accuracies(
                embeddings, episodes, similarity, model.scoring.shot_reduction, model.scoring.hubness
            )
            row.results[label] = summarize(per_task, episodes)
        print(f"{row.name}: {', '.join(f'{k} {r.accuracy:.2f}%' for k, r in row.results.items())}")
        rows.append(row)
    caption = (
        f"Accuracy on the {split} split of {args.config} ({type(data).__name__}; "
        f"{tasks} episodes per task, seed {seed}, the same episodes for every row): mean % ± 95% CI."
    )
    table = markdown_table(rows, caption)
    print("\n" + table)
    if args.output is not None:
        output = Path(args.output)
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(table)
        record = {
            "config": str(args.config),
            "split": split,
            "tasks": tasks,
            "seed": seed,
            "rows": [r.as_dict() for r in rows],
        }
        output.with_suffix(".json").write_text(json.dumps(record, indent=2) + "\n")
        print(f"written to {output} and {output.with_suffix('.json')}")
    return rows


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config", required=True, help="a `lightning` YAML config whose data module supplies the episodes"
    )
    parser.add_argument("--ckpt", nargs="*", default=[], help="checkpoints to score, PATH or NAME=PATH")
    parser.add_argument(
        "--baselines",
        nargs="*",
        choices=BASELINES,
        default=list(BASELINES),
        help=f"baselines to score (default: all of {', '.join(BASELINES)}; mhd is slow, minutes per 1000 tasks)",
    )
    parser.add_argument(
        "--split",
        choices=("val", "test"),
        help="which split's episodes (default: the config's oneshot_report, else val)",
    )
    parser.add_argument("--tasks", type=int, help="episodes per task (default: the config's oneshot_report, else 1000)")
    parser.add_argument(
        "--seed",
        type=int,
        help="seed of the episodes and of the chance scores (default: the config's oneshot_report, else 1234)",
    )
    parser.add_argument("--n_way", type=int, nargs="+", help="one or more ways, e.g. 20 5 (default: the data module's)")
    parser.add_argument("--k_shot", type=int, nargs="+", help="one or more shot counts (default: the data module's)")
    parser.add_argument(
        "--eval_shift",
        type=int,
        help="score the checkpoints with these test-time shifts in px (default: each checkpoint's own)",
    )
    parser.add_argument(
        "--align",
        action="store_true",
        help="score the checkpoints with test-time alignment: the best similarity over pairs of views (the "
        "config's oneshot_report.align views, else AlignmentViews' 31 defaults)",
    )
    parser.add_argument(
        "--precision",
        default="32",
        help="embed the checkpoints at this Lightning precision: 32 (default), or bf16-mixed / 16-mixed as a "
        "trainer with that precision embeds (bf16-mixed: about half the time on a CPU with bf16)",
    )
    parser.add_argument("--output", help="write the table to this .md file (and the results to the same name .json)")


TOOL = Tool(
    name="compare",
    help="one table of baselines and checkpoints on the same episodes",
    description=(
        "Score baselines (chance, pixel, knn, mhd) and trained checkpoints (any head, e.g. Siamese models and the "
        "categorical CNN of experiments/omniglot_cnn_baseline.yaml) on the same N-way K-shot episodes of a config's "
        "data module (its oneshot_report's split, tasks and seed unless given), and print one Markdown table of mean "
        "accuracy +- 95% CI. A checkpoint trained at another image size is scored on the same tasks at its own size."
    ),
    add_arguments=add_arguments,
    run=run_compare,
)
