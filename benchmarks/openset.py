"""Open-set one-shot ("none of these") on a checkpoint's validation split: the table for the README.

    python benchmarks/openset.py --ckpt CKPT --config experiments/omniglot_cpu.yaml \
        [--fars 0.01 0.05 0.1 0.2] [--fractions 0.2 0.5] [--tasks 1000] [--seed 1234] [--out benchmarks/results/openset.md]

The same code as ``SiameseModule(openset=True)``: unknown queries and scores from
``score_with_unknowns``, the rejection threshold from ``rejection_threshold`` and the
metrics from ``evaluate_openset``. As in training, the
threshold is fitted on the validation episodes the data module draws for model selection
(its ``val_tasks`` and ``val_seed``); it is then applied to fresh episodes of the same
validation alphabets (``--tasks`` with ``--seed``, the seed of the final one-shot report), so
the reported false-accept rate is measured on episodes the threshold never saw.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from lightning_siamese.evaluation.openset import (
    evaluate_openset,
    rejection_threshold,
    score_with_unknowns,
)
from lightning_siamese.inference.config import data_module_from_config
from lightning_siamese.models import SiameseModule
from lightning_siamese.models.embedding import embed_all


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ckpt", required=True)
    parser.add_argument("--config", required=True, help="the run's lightning config (its data section)")
    parser.add_argument("--split", default="val")
    parser.add_argument("--fars", type=float, nargs="+", default=[0.01, 0.05, 0.1, 0.2])
    parser.add_argument("--fractions", type=float, nargs="+", default=[0.2, 0.5])
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    start = time.perf_counter()
    data, _ = data_module_from_config(args.config)
    model = SiameseModule.load_from_checkpoint(args.ckpt, map_location="cpu").eval()
    fitting = data.evaluation_set(args.split)  # the model-selection episodes
    testing = data.evaluation_set(args.split, tasks=args.tasks, seed=args.seed)
    table = embed_all(model, fitting.collection.images)
    records, rows = [], []
    for fraction in args.fractions:
        fit_scores, test_scores = (
            score_with_unknowns(
                s.collection,
                s.episodes,
                table,
                model.head.similarity,
                model.scoring.shot_reduction,
                fraction,
                data.within_group,
            )
            for s in (fitting, testing)
        )
        for far in [None, *args.fars]:
            threshold = float("-inf") if far is None else rejection_threshold(fit_scores, far)
            result = evaluate_openset(test_scores, threshold, testing.episodes)
            records.append({"target_far": far, **result.as_dict()})
            print(result, flush=True)
            rows.append(
                f"| {result.unknown_fraction:.0%} | {'none (closed set)' if far is None else f'{far:g}'} | {result.threshold:.4f} "
                f"| {result.closed_acc:.2f} ± {result.closed_ci95:.2f} | {result.open_acc:.2f} ± {result.open_ci95:.2f} "
                f"| {result.auc:.4f} ± {result.auc_ci95:.4f} | {result.pooled_auc:.4f} | {result.false_accept:.2f} | {result.false_reject:.2f} |"
            )
    e = testing.episodes
    header = (
        f"Open-set {e.n_way}-way {e.k_shot}-shot on the {args.split} split ({len(testing.collection.class_names)} characters, "
        f"within-alphabet tasks: {data.within_group}); checkpoint `{args.ckpt}`.\n"
        f"Threshold fitted on the {len(fitting.episodes)} model-selection episodes (seed {fitting.episodes.seed}), "
        f"measured on {len(e)} fresh episodes (seed {e.seed}); ± is the 95% CI over episodes. Unknown queries: "
        f"{'other characters of the task' + chr(39) + 's alphabet' if data.within_group else 'characters outside the task'}.\n\n"
        "| unknown queries | target FAR | threshold | closed-set acc (%) | open-set acc (%) | rejection AUC (per episode) "
        "| pooled AUC | unknowns accepted (%) | knowns rejected (%) |\n"
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|"
    )
    text = header + "\n" + "\n".join(rows) + f"\n\n({time.perf_counter() - start:.0f} s)\n"
    print(text)
    if args.out:
        args.out.write_text(text)
        args.out.with_suffix(".json").write_text(json.dumps(records, indent=2) + "\n")


if __name__ == "__main__":
    main()
